"""The save panel's model, kept apart from Qt: options, the background job, its result.

:class:`SaveJob` writes a snapshot of a layer on a thread and reports progress
through a generator napari's thread workers can drive; testable without a display.
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

from napari_mrcz._napari import writer
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.write import write_array
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, strip_suffix
from napari_mrcz.units import units_per_angstrom

#: Units offered for the pixel size, as shown -> as pint/napari spell them.
PIXEL_UNITS: dict[str, str] = {
    "Å": "angstrom",
    "nm": "nanometer",
    "pm": "picometer",
    "µm": "micrometer",
}
NO_COMPRESSION = writer.NO_COMPRESSION


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


def default_output_path(layer: Any) -> str:
    """Beside the file the layer came from (or in the working folder), named after it.

    Never the file the layer came from: saving must not replace the original
    unless the user picks it.
    """
    source = getattr(getattr(layer, "source", None), "path", None) or layer.metadata.get("path")
    folder = os.path.dirname(os.fspath(source)) if source else os.getcwd()
    stem = strip_suffix(layer.name)
    path = os.path.join(folder, stem + COMPRESSED_SUFFIX)
    if source and os.path.abspath(path) == os.path.abspath(os.fspath(source)):
        path = os.path.join(folder, f"{stem}-saved{COMPRESSED_SUFFIX}")
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


def unit_factor(unit_label: str) -> float:
    """How many of the displayed unit make one Angstrom."""
    return units_per_angstrom(PIXEL_UNITS[unit_label])
