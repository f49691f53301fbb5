"""What the napari-mrcz widgets show and do, kept apart from Qt.

The save panel's background job (:class:`SaveJob`) and the inspector's report on a
layer (:func:`layer_report`) are plain Python, testable without a display.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_mrcz._napari import writer as _writer
from napari_mrcz.mrc.header import FIELD_MEANINGS, header_fields
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.modes import mrc_dtype
from napari_mrcz.mrc.write import new_file_header, write_array
from napari_mrcz.suffixes import strip_suffix
from napari_mrcz.units import units_per_angstrom

#: Units offered for the pixel size, as shown -> as pint/napari spell them.
PIXEL_UNITS: dict[str, str] = {
    "Å": "angstrom",
    "nm": "nanometer",
    "pm": "picometer",
    "µm": "micrometer",
}
NO_COMPRESSION = _writer.NO_COMPRESSION
#: Lists longer than this are summarised in the inspector, not listed.
MAX_LISTED = 32


class SaveCancelledError(Exception):
    """The user cancelled a save."""


@dataclass
class SaveOptions:
    """Everything a save needs besides the data."""

    path: str
    codec: str = "zstd"
    level: int = 1
    threads: int = 1
    pixelsize_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)  # Angstrom
    origin_zyx: tuple[float, ...] = (0.0, 0.0, 0.0)  # Angstrom
    dtype: Any = None  # cast to this first (see modes.mrc_dtype), None to keep
    meta: dict = field(default_factory=dict)
    microscope: dict = field(default_factory=dict)  # voltage, cs, gain


@dataclass
class SaveResult:
    """What a finished save did."""

    path: str
    data_bytes: int
    file_bytes: int
    seconds: float

    def summary(self) -> str:
        """One line for a notification: size, compression ratio and speed."""
        ratio = self.data_bytes / self.file_bytes if self.file_bytes else float("nan")
        speed = self.data_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"Saved {os.path.basename(self.path)}: {self.file_bytes / 1e6:.1f} MB, "
            f"compression ratio {ratio:.2f}x, {speed:.0f} MB/s"
        )


def snapshot(data: Any) -> Any:
    """A copy of a layer's data that later edits cannot change.

    numpy arrays are copied; lazy data (dask, LazyMRC) cannot be edited in napari
    and is written as it is.
    """
    if isinstance(data, np.ndarray):
        return np.array(data, copy=True)
    return data


def layer_pixel_size(layer: Any) -> tuple[float, float, float]:
    """A layer's pixel size in Angstrom, (z, y, x); a 2D layer's z is its y."""
    sizes = _writer.pixel_size_angstrom(layer.scale, getattr(layer, "units", None))
    if len(sizes) == 2:
        sizes = [sizes[0], *sizes]
    return tuple(float(size) for size in sizes[-3:])


def default_output_path(layer: Any) -> str:
    """Beside the file the layer came from (or in the working folder), named after it.

    Never the file the layer came from: saving must not replace the original
    unless the user picks it.
    """
    source = getattr(getattr(layer, "source", None), "path", None) or layer.metadata.get("path")
    folder = os.path.dirname(os.fspath(source)) if source else os.getcwd()
    stem = strip_suffix(layer.name)
    path = os.path.join(folder, stem + _writer.COMPRESSED_SUFFIX)
    if source and os.path.abspath(path) == os.path.abspath(os.fspath(source)):
        path = os.path.join(folder, f"{stem}-saved{_writer.COMPRESSED_SUFFIX}")
    return path


class SaveJob:
    """One save running in the background, reporting progress per z-slice.

    :meth:`steps` is a generator for napari's thread workers: it yields
    ``(written, total)`` after each slice and returns a :class:`SaveResult`.
    :meth:`cancel` stops the write at the next slice; the file is then not
    created, and a file it would have replaced is left as it was.
    """

    def __init__(self, data: Any, options: SaveOptions) -> None:
        self.data = data
        self.options = options
        self._cancelled = threading.Event()
        self._writer: threading.Thread | None = None

    @property
    def total(self) -> int:
        """Number of z-slices to write."""
        return int(self.data.shape[0]) if self.data.ndim == 3 else 1

    def cancel(self) -> None:
        """Ask the save to stop at the next slice."""
        self._cancelled.set()

    def wait(self) -> None:
        """Wait until the writing thread is done (written, failed or cancelled)."""
        if self._writer is not None:
            self._writer.join()

    def _progress(self, written: int, total: int, events: queue.Queue) -> None:
        events.put((written, total))
        if self._cancelled.is_set():
            raise SaveCancelledError(f"save of {self.options.path} cancelled")

    def _write(self, events: queue.Queue) -> None:
        options = self.options
        codec = None if options.codec == NO_COMPRESSION else options.codec
        try:
            write_array(
                self.data,
                options.path,
                meta=options.meta or None,
                dtype=options.dtype,
                pixelsize=list(options.pixelsize_zyx),
                origin=list(options.origin_zyx),
                pixelunits="\\AA",
                compressor=codec,
                clevel=options.level,
                n_threads=options.threads,
                progress=lambda written, total: self._progress(written, total, events),
                **options.microscope,
            )
        except BaseException as error:  # handed to the generator, which re-raises it
            events.put(error)
        else:
            events.put(None)

    def steps(self) -> Generator[tuple[int, int], None, SaveResult]:
        """Run the save; yield (written, total) per slice; return what was done."""
        started = time.perf_counter()
        events: queue.Queue = queue.Queue()
        writer = self._writer = threading.Thread(
            target=self._write, args=(events,), daemon=True, name="napari-mrcz-save"
        )
        writer.start()
        try:
            while True:
                event = events.get()
                if event is None:
                    break
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            if writer.is_alive():  # the generator was closed before the end
                self.cancel()
            writer.join()
        seconds = time.perf_counter() - started
        layout = read_layout(self.options.path)
        return SaveResult(
            self.options.path, layout.data_nbytes, os.path.getsize(self.options.path), seconds
        )


@dataclass
class LayerReport:
    """What the metadata inspector shows about one layer."""

    title: str
    origin: str
    facts: list[tuple[str, str]]
    header_rows: list[tuple[str, str, str]]
    tree: dict

    def as_json_ready(self) -> dict:
        """Everything, as a dict :func:`json.dumps` can write."""
        return {
            "layer": self.title,
            "origin": self.origin,
            "facts": dict(self.facts),
            "header": {name: value for name, value, _ in self.header_rows},
            "metadata": self.tree,
        }


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > MAX_LISTED:
        return f"<{len(value)} values>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and all(isinstance(item, float) for item in value):
        return ", ".join(f"{item:.6g}" for item in value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def _header_rows(fields: dict) -> list[tuple[str, str, str]]:
    return [
        (name, _format_value(value), FIELD_MEANINGS.get(name, ""))
        for name, value in fields.items()
    ]


def layer_report(layer: Any) -> LayerReport:
    """Describe ``layer`` for the inspector.

    Layers our reader made show the file's header, its JSON meta or DM tags and its
    compression. Other layers show the header napari-mrcz would write for them.
    """
    metadata = layer.metadata or {}
    pixel = ", ".join(f"{size:.4g}" for size in layer_pixel_size(layer))
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    facts = [
        ("shape", " x ".join(str(n) for n in data.shape)),
        ("dtype", str(data.dtype)),
        ("pixel size (z, y, x)", f"{pixel} Å"),
    ]
    header = metadata.get("header")
    if metadata.get("format") in ("MRC", "MRCZ") and isinstance(header, dict):
        path = metadata.get("path", "")
        facts.insert(0, ("format", metadata["format"]))
        codec = header.get("compressor")
        facts.append(("compression", codec or "none"))
        if codec and os.path.isfile(path):
            packed = int(header.get("packedBytes") or 0)
            data_bytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
            facts.append(("packed size", f"{packed / 1e6:.2f} MB"))
            if packed:
                facts.append(("compression ratio", f"{data_bytes / packed:.2f}x"))
        rows = _header_rows(header.get("mrcHeader", {}))
        tree = {"JSON meta": metadata.get("json_meta") or {}}
        if header.get("extendedHeader"):
            tree["extended header"] = header["extendedHeader"]
        return LayerReport(layer.name, f"read from {path}", facts, rows, tree)
    if metadata.get("format") == "DM":
        facts.insert(0, ("format", "DigitalMicrograph"))
        rows = [
            (str(key), _format_value(value), "")
            for key, value in (header or {}).items()
            if not isinstance(value, dict)
        ]
        return LayerReport(
            layer.name,
            f"read from {metadata.get('path', '')}",
            facts,
            rows,
            {"DM tags": metadata.get("dm_tags") or {}},
        )
    codec = _writer.writer_settings()["codec"]
    codec = None if codec == NO_COMPRESSION else codec
    preview = new_file_header(
        data.shape[-3:] if data.ndim >= 3 else data.shape,
        mrc_dtype(data, plain=codec is None, warn=False, scan=False) or data.dtype,
        layer_pixel_size(layer),
        codec,
    )
    rows = _header_rows(header_fields(preview, "<"))
    tree = {"JSON meta to write": _writer.json_meta(metadata, warn=False)}
    return LayerReport(
        layer.name,
        "not from a file: the header napari-mrcz would write "
        "(statistics are computed while saving)",
        facts,
        rows,
        tree,
    )


def unit_factor(unit_label: str) -> float:
    """How many of the displayed unit make one Angstrom."""
    return units_per_angstrom(PIXEL_UNITS[unit_label])
