"""The save panel's model, kept apart from Qt: options, file names, the background job.

:class:`SaveJob` writes a layer's data on a thread of its own: the data type decision
(which may scan the data), the write and the final size check all run there, so the
GUI thread only starts it and receives its progress and outcome. The layer's array is
not copied: :class:`ReadOnlyWhileSaving` makes it read-only (and a Labels layer not paintable)
while it is written. Testable without a display.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_mrcz._napari import writer
from napari_mrcz._napari.layers import carried_from_source
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.modes import mrc_dtype, storage_dtype
from napari_mrcz.mrc.stats_kernels import expect_bytes, measured_by_kernel
from napari_mrcz.mrc.write import write_array
from napari_mrcz.suffixes import (
    COMPRESSED_SUFFIX,
    PLAIN_SUFFIXES,
    is_mrcz,
    strip_suffix,
)
from napari_mrcz.threads import finish_before_exit
from napari_mrcz.units import units_per_angstrom
from napari_mrcz.wording import human_rate, human_size

logger = logging.getLogger(__name__)

#: Units offered for the pixel size, as shown -> as pint/napari spell them.
PIXEL_UNITS: dict[str, str] = {
    "Å": "angstrom",
    "nm": "nanometer",
    "pm": "picometer",
    "µm": "micrometer",
}
NO_COMPRESSION = writer.NO_COMPRESSION

#: Progress is reported at most this often (seconds), and after the last slice: a
#: stack of 10,000 small particles must not flood the GUI with 10,000 updates, and
#: each update repaints napari's window (costly where OpenGL is software, as on Xvfb).
PROGRESS_INTERVAL = 0.2


class SaveCancelledError(Exception):
    """The user cancelled a save."""


@dataclass
class SaveOptions:
    """Everything a save needs besides the data."""

    path: str
    codec: str = "zstd"
    level: int = 1
    threads: int = 1
    pixelsize_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)  # Angstrom, 0: not a length
    origin_zyx: tuple[float, ...] = (0.0, 0.0, 0.0)  # Angstrom
    meta: dict = field(default_factory=dict)
    microscope: dict = field(default_factory=dict)  # voltage, cs, gain
    #: The layer's metadata, for what the save keeps of its source file (read where
    #: the save runs: see :func:`napari_mrcz._napari.layers.carried_from_source`).
    source_metadata: dict | None = None
    #: The layer was shown with its rows top-down (no y-up mirror): the file says so.
    rows_top_down: bool = False

    @property
    def compressed(self) -> bool:
        """True for MRCZ, False for plain MRC."""
        return self.codec != NO_COMPRESSION

    def write_arguments(self) -> dict[str, Any]:
        """The keywords of :func:`napari_mrcz.mrc.write.write_array` these options give."""
        return {
            "meta": self.meta or None,
            "pixelsize": list(self.pixelsize_zyx),
            "origin": list(self.origin_zyx),
            "pixelunits": "\\AA",
            "compressor": self.codec if self.compressed else None,
            "clevel": self.level,
            "n_threads": self.threads,
            "rows_top_down": self.rows_top_down,
            **self.microscope,
        }


@dataclass
class SaveResult:
    """What a finished save did."""

    path: str
    data_bytes: int
    file_bytes: int
    seconds: float
    compressed: bool = True
    #: The type the data was cast to (MRC has no type for the layer's), or None.
    cast_to: str | None = None
    #: What the file does not hold of the layer, said after the summary, or None.
    left_out: str | None = None

    def summary(self) -> str:
        """One line for a notification: size, compression ratio (MRCZ) and speed."""
        parts = [f"Saved {os.path.basename(self.path)}: {human_size(self.file_bytes)}"]
        if self.compressed and self.file_bytes:
            parts.append(f"compression ratio {self.data_bytes / self.file_bytes:.2f}x")
        if self.seconds > 0:
            parts.append(human_rate(self.data_bytes, self.seconds))
        return ", ".join(parts) + (f"; {self.left_out}" if self.left_out else "")


def output_path(path: str, codec: str) -> str:
    """``path`` with the suffix ``codec`` needs: ``.mrcz`` for MRCZ, a plain one for MRC.

    MRCZ data under a plain-MRC suffix is rejected by every other program, and a
    file without a suffix is opened by none: a compressed save ends in ``.mrcz``
    (replacing a plain MRC or DM suffix), a plain one keeps its plain suffix
    (``.mrc .mrcs .map .st .ali .rec``) or gets ``.mrc``.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    lowered = name.lower()
    if codec != NO_COMPRESSION:
        if is_mrcz(lowered):
            return path
        return os.path.join(folder, strip_suffix(name) + COMPRESSED_SUFFIX)
    if lowered.endswith(PLAIN_SUFFIXES):
        return path
    return os.path.join(folder, strip_suffix(name) + ".mrc")


def layer_source(layer: Any) -> str | None:
    """The file a layer was read from (napari's source, or our reader's metadata)."""
    source = getattr(getattr(layer, "source", None), "path", None) or (
        layer.metadata.get("path") if isinstance(layer.metadata, dict) else None
    )
    return os.fspath(source) if source else None


def _same_file(one: str, other: str | None) -> bool:
    if other is None:
        return False
    if os.path.exists(one) and os.path.exists(other):
        return os.path.samefile(one, other)
    return os.path.abspath(one) == os.path.abspath(other)


def default_output_path(layer: Any, codec: str) -> str:
    """Beside the file the layer came from (or in the working folder), named after it.

    Never the file the layer came from, whatever the codec: saving must not replace
    the original unless the user picks it (and then confirms).
    """
    source = layer_source(layer)
    folder = os.path.dirname(source) if source else os.getcwd()
    plain_suffix = next(
        (suffix for suffix in PLAIN_SUFFIXES if source and source.lower().endswith(suffix)),
        ".mrc",
    )
    stem = strip_suffix(layer.name)
    if source and stem.startswith(os.path.basename(source)):  # "fft.mrc amplitude"
        stem = strip_suffix(os.path.basename(source)) + stem[len(os.path.basename(source)) :]
    suffix = COMPRESSED_SUFFIX if codec != NO_COMPRESSION else plain_suffix
    path = os.path.join(folder, stem + suffix)
    if _same_file(path, source):
        path = os.path.join(folder, f"{stem}-saved{suffix}")
    return path


def expect_statistics(data: Any) -> None:
    """Have the compiled statistics ready before a save of ``data`` needs them.

    Preparing them (numba's import and cache, see :mod:`napari_mrcz.mrc.stats_kernels`)
    is Python work that competes with the viewer for the GIL. Started when a layer of
    a gigabyte or more of 8/16-bit data is chosen, it is done while the user fills
    in the panel, not while the save runs (``benchmarks/bench_gui.py``: with the
    preparation during a 1 GiB save the viewer stalled up to 157-196 ms, 60 ms
    without). Only the shape and type are looked at: the type as it will be stored
    (uint8 as uint16, bool as int8), labels of 32 bits or more as the 16-bit type
    they usually fit.
    """
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "iub":
        return
    stored = np.dtype(np.int16) if dtype.itemsize >= 4 else storage_dtype(dtype)
    if measured_by_kernel(stored):
        expect_bytes(int(np.prod(data.shape, dtype=np.int64)) * stored.itemsize)


def unit_factor(unit_label: str) -> float:
    """How many of the displayed unit make one Angstrom."""
    return units_per_angstrom(PIXEL_UNITS[unit_label])


class ReadOnlyWhileSaving:
    """Keep a layer's array from changing while it is saved, without copying it.

    A numpy array is made read-only (an edit from a script raises instead of
    reaching the file half-written) and a Labels layer not editable (napari greys out
    its paint tools). :meth:`release` undoes exactly what was done; call it on the
    GUI thread (napari's layer events reach Qt widgets). Lazy data (dask, LazyMRC)
    cannot be edited and is left alone.
    """

    def __init__(self, layer: Any, data: Any) -> None:
        self.layer = layer
        self.array = data if isinstance(data, np.ndarray) and data.flags.writeable else None
        self.made_uneditable = False
        if self.array is not None:
            self.array.flags.writeable = False
        from napari.layers import Labels

        if isinstance(layer, Labels) and layer.editable:
            layer.editable = False
            self.made_uneditable = True

    def release(self) -> None:
        """Make the array writable and the layer editable again (if they were)."""
        if self.array is not None:
            self.array.flags.writeable = True
            self.array = None
        if self.made_uneditable:
            self.made_uneditable = False
            self.layer.editable = True


class SaveJob:
    """One save running on a thread of its own, reporting progress per z-slice.

    :meth:`start` runs it; ``on_progress(written, total)`` and ``on_done(outcome)``
    are called from that thread (the outcome is a :class:`SaveResult` or the
    exception that stopped the save, :class:`SaveCancelledError` after
    :meth:`cancel`). A cancelled or failed save leaves no file, and a file it would
    have replaced as it was. The thread is not a daemon: a process that ends while a
    save runs waits for it rather than leaving a temporary file behind.
    """

    def __init__(self, data: Any, options: SaveOptions) -> None:
        self.data = data
        self.options = options
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_report = 0.0
        self.written = 0
        self.outcome: SaveResult | BaseException | None = None

    @property
    def total(self) -> int:
        """Number of z-slices to write."""
        return int(self.data.shape[0]) if self.data.ndim == 3 else 1

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the thread has ended."""
        return self._thread is not None and self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the save to stop at the next slice."""
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the thread has ended; return False if it still runs after ``timeout``."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def start(
        self,
        on_progress: Callable[[int, int], None],
        on_done: Callable[[SaveResult | BaseException], None],
    ) -> None:
        """Start the save on its thread."""
        self._thread = threading.Thread(
            target=self._run, args=(on_progress, on_done), name="napari-mrcz-save"
        )
        finish_before_exit(self._thread)  # a script that ends meanwhile gets its file
        self._thread.start()

    def _progress(self, written: int, total: int, on_progress: Callable[[int, int], None]) -> None:
        self.written = written
        now = time.perf_counter()
        if written == total or now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            on_progress(written, total)
        if self._cancelled.is_set():
            raise SaveCancelledError(f"save of {self.options.path} cancelled")

    def _run(
        self,
        on_progress: Callable[[int, int], None],
        on_done: Callable[[SaveResult | BaseException], None],
    ) -> None:
        try:
            outcome: SaveResult | BaseException = self._write(on_progress)
        except BaseException as error:  # handed to the GUI, which reports it
            outcome = error
        self.outcome = outcome
        try:
            on_done(outcome)
        except Exception:  # the GUI went away meanwhile: nothing left to tell
            logger.debug("could not report the end of the save", exc_info=True)

    def _write(self, on_progress: Callable[[int, int], None]) -> SaveResult:
        options = self.options
        started = time.perf_counter()
        if self._cancelled.is_set():
            raise SaveCancelledError(f"save of {options.path} cancelled")
        cast_to = mrc_dtype(self.data, plain=not options.compressed, warn=False)
        arguments = {
            **options.write_arguments(),
            **carried_from_source(options.source_metadata, tuple(self.data.shape)),
        }
        left_out = None
        if "extended_header" in arguments and arguments["meta"]:
            left_out = (
                f"the layer's metadata ({', '.join(arguments['meta'])}) is not in the file, "
                f"which keeps the {arguments['extended_header'][0]} extended header of "
                "its source"
            )
            arguments["meta"] = None
        write_array(
            self.data,
            options.path,
            dtype=cast_to,
            progress=lambda written, total: self._progress(written, total, on_progress),
            **arguments,
        )
        seconds = time.perf_counter() - started
        layout = read_layout(options.path)
        return SaveResult(
            options.path,
            layout.data_nbytes,
            os.path.getsize(options.path),
            seconds,
            options.compressed,
            None if cast_to is None else np.dtype(cast_to).name,
            left_out,
        )
