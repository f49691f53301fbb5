"""writeMRC and writeMRCHeader: python-mrcz's writing API on our engine.

New files are written to a temporary file beside the target and renamed over it
only once complete, so a failed save leaves the previous file as it was. Each z-slice
is cast, compressed and folded into the header statistics in turn, while a
background thread writes the previous one: compression and I/O overlap, and no
whole-array copy is ever made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import numpy as np

from . import __about__
from .codecs import (
    MODE_CODEC_FACTOR,
    REVERSE_COMPRESSOR_ENUM,
    check_codec,
    compress_slice,
    recorded_settings,
    settings_label,
)
from .header import (
    HEADER_SIZE,
    ISPG_IMAGE_STACK,
    ISPG_VOLUME,
    new_header,
    set_labels,
    stats_determined,
)
from .jsonmeta import encode_meta
from .layout import MRCLayout, read_layout
from .lazy import LazyMRC
from .modes import (
    MODE_DTYPES,
    REVERSE_CCPEM_ENUM,
    UINT4_MODE,
    mode_for_dtype,
    storage_dtype,
    uint4_row_bytes,
)
from .slices import STREAM_BLOCK_BYTES, SliceReader
from .stats import SliceStats, shift_for
from .threads import default_threads
from .units import units_per_angstrom

logger = logging.getLogger(__name__)

#: Slices in flight at most; bounds memory to a few frames.
MAX_PENDING_WRITES = 4

#: Label 0 of every file we write. It starts like python-mrcz's ``MRCZ<version>``
#: with a format version python-mrcz accepts, and says who wrote the file.
WRITER_LABEL = f"MRCZ0.6.0 napari-mrcz {__about__.__version__}"

#: z pixel size python-mrcz writes when given a (y, x) pixel size, in Angstrom.
DEFAULT_Z_SPACING = 10.0

@dataclass
class _Frames:
    """The data to write, seen as a sequence of 2D z-slices."""

    source: Any
    count: int
    shape: tuple[int, int]
    dtype: np.dtype
    slices: int  # python-mrcz's slices per frame; 0 for one array

    def __iter__(self) -> Iterator[np.ndarray]:
        if isinstance(self.source, list):
            for frame in self.source:
                yield from (np.asarray(frame),) if frame.ndim == 2 else (
                    np.asarray(frame[index]) for index in range(frame.shape[0]))
            return
        if isinstance(self.source, LazyMRC):
            # Runs of slices, decompressed in parallel: one slice at a time would
            # leave the encoding threads waiting for this one.
            run = max(1, min(default_threads(), STREAM_BLOCK_BYTES // max(1, self.source.nbytes
                                                                      // self.count)))
            for start in range(0, self.count, run):
                yield from self.source[start : start + run]
            return
        z_chunks = getattr(self.source, "chunks", None)
        if z_chunks is not None and not isinstance(self.source, np.ndarray):
            # dask: compute each chunk along z once, not once per slice.
            start = 0
            for length in z_chunks[0]:
                block = np.asarray(self.source[start : start + length])
                yield from block
                start += length
            return
        for index in range(self.count):
            yield np.asarray(self.source[index])


def _describe_input(input_image: Any) -> _Frames:
    """Describe ``input_image`` (an array-like of 1-3 dims, or a list of 2D/3D arrays)."""
    if isinstance(input_image, (list, tuple)):
        if not input_image:
            raise ValueError("cannot write an empty list of frames")
        frames = list(input_image)
        first = frames[0]
        if first.ndim not in (2, 3):
            raise ValueError("For a sequence of arrays, only 2D or 3D arrays are handled.")
        for number, frame in enumerate(frames):
            if frame.shape != first.shape:
                raise ValueError(f"Frame {number} has shape {frame.shape}, expected {first.shape}")
            if frame.dtype != first.dtype:
                raise TypeError(f"Frame {number} has dtype {frame.dtype}, expected {first.dtype}")
        if 0 in first.shape:
            raise ValueError(f"cannot write frames of shape {first.shape}: MRC has no empty axes")
        slices = 1 if first.ndim == 2 else first.shape[0]
        return _Frames(frames, len(frames) * slices, tuple(first.shape[-2:]),
                       np.dtype(first.dtype), slices)
    data = input_image
    if not hasattr(data, "shape") or not hasattr(data, "dtype") or data.ndim < 3:
        data = np.asarray(data)
        if data.ndim < 3:
            data = data.reshape((1,) * (3 - data.ndim) + data.shape)
    if data.ndim != 3:
        raise ValueError(f"MRC holds 1 to 3 dimensions, got an array of shape {data.shape}")
    if 0 in data.shape:
        raise ValueError(f"cannot write an array of shape {data.shape}: MRC has no empty axes")
    return _Frames(data, int(data.shape[0]), tuple(int(n) for n in data.shape[1:]),
                   np.dtype(data.dtype), 0)


def _pixelsize_zyx(pixelsize: Any, pixelunits: str) -> np.ndarray:
    """python-mrcz's ``pixelsize`` in Angstrom, as (z, y, x).

    One value is cubic; (y, x) gets python-mrcz's z spacing of 10 Angstrom.
    """
    values = np.atleast_1d(np.asarray(pixelsize, dtype=np.float64)).ravel()
    values = values / units_per_angstrom(pixelunits)
    if values.size == 1:
        return np.repeat(values, 3)
    if values.size == 2:
        return np.array([DEFAULT_Z_SPACING, values[0], values[1]])
    if values.size == 3:
        return values
    raise ValueError(f"pixelsize must have 1, 2 or 3 elements, got {values.size}")


def _resolve_dtype(frames: _Frames, dtype: Any, path: str) -> tuple[np.dtype, bool]:
    """Return (the dtype stored per pixel, whether it is packed 4-bit)."""
    if dtype is not None and str(dtype).lstrip("<>|=") == "uint4":
        return np.dtype(np.uint8), True
    wanted = frames.dtype if dtype is None else np.dtype(dtype)
    stored = storage_dtype(wanted)
    if stored != wanted.newbyteorder("="):
        logger.warning("Casting %s from %s to %s for MRC", path, wanted, stored)
    return stored, False


def _pack_uint4(frame: np.ndarray) -> np.ndarray:
    """Pack a 2D array of values 0-15 two pixels a byte, low nibble first."""
    if frame.size and (frame.min() < 0 or frame.max() > 15):
        raise ValueError("uint4 (mode 101) holds values 0 to 15 only")
    frame = frame.astype(np.uint8, copy=False)
    ny, nx = frame.shape
    packed = np.zeros((ny, uint4_row_bytes(nx)), dtype=np.uint8)
    packed[:, : uint4_row_bytes(nx)] = frame[:, 0::2]
    packed[:, : nx // 2] |= frame[:, 1::2] << 4
    return packed


def _make_header(byteorder: str, shape: tuple[int, int, int], mode: int, codec_id: int,
                 pixelsize_zyx: np.ndarray, mz: int, slices: int, voltage: float, cs: float,
                 gain: float) -> np.ndarray:
    """Build the header of a new file (statistics and extended header are set later)."""
    nz, ny, nx = shape
    header = new_header(byteorder)
    header["nx"], header["ny"], header["nz"] = nx, ny, nz
    header["mode"] = mode + MODE_CODEC_FACTOR * codec_id
    header["mx"], header["my"], header["mz"] = nx, ny, mz
    header["cella"] = pixelsize_zyx[::-1] * np.array([nx, ny, nz])
    header["ispg"] = ISPG_VOLUME if nz > 1 and not slices else ISPG_IMAGE_STACK
    header["voltage"] = voltage or 0.0
    header["cs"] = cs or 0.0
    header["gain"] = gain or 1.0
    set_labels(header, [WRITER_LABEL])
    return header


def new_file_header(shape: Sequence[int], dtype: Any, pixelsize_zyx: Sequence[float],
                    compressor: str | None = None, byteorder: str = "<") -> np.ndarray:
    """The header :func:`writeMRC` would start a file with (statistics still unknown).

    Parameters
    ----------
    shape : sequence of int
        (ny, nx) or (nz, ny, nx).
    dtype : numpy dtype
        The data's dtype (cast as :func:`writeMRC` would cast it).
    pixelsize_zyx : sequence of float
        Pixel size in Angstrom, (z, y, x).
    compressor : str, optional
        MRCZ codec, or None for plain MRC.
    byteorder : {'<', '>'}
        Byte order of the file.
    """
    nz, ny, nx = (1, *shape) if len(shape) == 2 else tuple(shape)
    mode = mode_for_dtype(storage_dtype(dtype))
    codec = None if compressor is None else check_codec(compressor)
    return _make_header(byteorder, (nz, ny, nx), mode, REVERSE_COMPRESSOR_ENUM[codec],
                        np.asarray(pixelsize_zyx, dtype=np.float64),
                        0 if codec is not None else nz, 0, 0.0, 0.0, 1.0)


def _set_stats(header: np.ndarray, stats: SliceStats) -> None:
    header["dmin"], header["dmax"], header["dmean"], header["rms"] = stats.header_values()


def write_fully(handle: BinaryIO, payload: Any) -> None:
    """Write all of ``payload`` to the unbuffered ``handle``.

    A raw file may write fewer bytes than asked (a disk filling up); the rest is
    retried so that the failure, if any, is raised rather than lost.
    """
    view = memoryview(payload).cast("B")
    while view:
        written = handle.write(view)
        if not written:
            raise OSError(f"could not write to {getattr(handle, 'name', 'the file')}")
        view = view[written:]


class _SliceEncoder:
    """What happens to one z-slice before it is written: cast, statistics, compression."""

    def __init__(self, file_dtype: np.dtype, compressor: str | None, clevel: int,
                 uint4: bool) -> None:
        self.file_dtype = file_dtype
        self.native_dtype = file_dtype.newbyteorder("=")
        self.compressor = compressor
        self.clevel = clevel
        self.uint4 = uint4

    def __call__(self, frame: np.ndarray, shift: float | int) -> tuple[Any, SliceStats]:
        native = frame
        if native.dtype != self.native_dtype and not self.uint4:
            native = native.astype(self.native_dtype, order="C")
        elif not native.dtype.isnative:
            native = native.astype(native.dtype.newbyteorder("="), order="C")
        stats = SliceStats(shift)
        stats.add(native)
        if self.uint4:
            payload = _pack_uint4(native)
        elif self.file_dtype.isnative or self.file_dtype.itemsize == 1:
            payload = np.ascontiguousarray(native)
        else:
            payload = native.astype(self.file_dtype, order="C")
        if self.compressor is not None:
            payload = compress_slice(payload, self.compressor, self.clevel)
        return payload, stats


class _SliceWriter:
    """Encodes z-slices on a pool of threads while one more thread writes them.

    Slices are cast, measured and compressed ``n_threads`` at a time (blosc releases
    the GIL and runs single-threaded per slice, see :mod:`napari_mrcz.codecs`), and
    written strictly in order, so compression and I/O overlap. A few slices at most
    are in flight, and their statistics are merged in slice order: the bytes
    written are the same whatever the timing. Errors of the background threads
    surface on the next call.
    """

    def __init__(self, handle: BinaryIO, encoder: _SliceEncoder, n_threads: int,
                 stats: SliceStats | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.handle = handle
        self.encoder = encoder
        self.stats = stats
        self.progress = progress
        self.packed_bytes = 0
        self.written = 0
        self._max_in_flight = n_threads + MAX_PENDING_WRITES
        self._encoders = ThreadPoolExecutor(max_workers=n_threads,
                                            thread_name_prefix="napari-mrcz-encode")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-mrcz-write")
        self._encoding: deque[Future] = deque()
        self._writing: deque[Future] = deque()

    def add(self, frame: np.ndarray) -> None:
        """Queue one 2D z-slice for encoding and writing."""
        if self.stats is None:
            self.stats = SliceStats(shift_for(frame, self.encoder.native_dtype))
        self._encoding.append(self._encoders.submit(self.encoder, frame, self.stats.shift))
        while len(self._encoding) + len(self._writing) > self._max_in_flight:
            self._advance()

    def _advance(self) -> None:
        """Hand the oldest encoded slice to the writer, or wait for the oldest write."""
        if self._encoding and len(self._writing) < MAX_PENDING_WRITES:
            payload, stats = self._encoding.popleft().result()
            self.stats.merge(stats)
            if self.encoder.compressor is not None:
                self.packed_bytes += len(payload)
            self._writing.append(self._writer.submit(write_fully, self.handle, payload))
        else:
            self._writing.popleft().result()
            self.written += 1
            if self.progress is not None:
                self.progress(self.written)

    def finish(self) -> None:
        """Wait for every queued slice; raise the first error a background thread met."""
        try:
            while self._encoding or self._writing:
                self._advance()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the slices not yet written and stop the threads."""
        for future in (*self._encoding, *self._writing):
            future.cancel()
        self._encoders.shutdown(wait=True)
        self._writer.shutdown(wait=True)


def _write_slices(handle: BinaryIO, frames: _Frames, file_dtype: np.dtype,
                  compressor: str | None, clevel: int, uint4: bool, n_threads: int,
                  stats: SliceStats | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[SliceStats, int]:
    """Write every slice of ``frames``; return their statistics (merged into ``stats``).

    ``progress(k)`` is called once slice k (counting from 1) is written; whatever it
    raises stops the write.
    """
    writer = _SliceWriter(handle, _SliceEncoder(file_dtype, compressor, clevel, uint4),
                          n_threads, stats, progress)
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    return writer.stats if writer.stats is not None else SliceStats(), writer.packed_bytes


def _hidden_name(path: str) -> str:
    """A hidden name beside ``path`` for a file still being made: ``.name.<random>.partial``."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(6)}.partial")


def temporary_name(path: str) -> str:
    """A free, short hidden name (``.mrcz-<random>.partial``) beside ``path``, not created.

    A finished file renamed onto it replaces nothing, which on ext4 spares the
    flush of its blocks that a rename over an existing file costs. Short, so that
    the writer's own temporary name beside it stays short too.
    """
    directory = os.path.dirname(path)
    while True:
        candidate = os.path.join(directory, f".mrcz-{secrets.token_hex(8)}.partial")
        if not os.path.lexists(candidate):
            return candidate


def create_temporary(path: str) -> tuple[int, str]:
    """Create a hidden, empty file beside ``path``; return its descriptor and name.

    Created with mode 0o666 so that the umask applies, as for any new file; when
    ``path`` exists, the new file takes its permission bits.
    """
    for _ in range(100):
        temporary = _hidden_name(path)
        try:
            descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        return descriptor, temporary
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _write_new_file(path: str, frames: _Frames, header: np.ndarray,
                    extended_header: bytes | None,
                    file_dtype: np.dtype, compressor: str | None, clevel: int,
                    uint4: bool, n_threads: int,
                    progress: Callable[[int], None] | None = None) -> None:
    """Write a whole file to a temporary name and rename it over ``path``."""
    descriptor, temporary = create_temporary(path)
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as handle:
            write_fully(handle, bytes(HEADER_SIZE))
            if extended_header:
                write_fully(handle, extended_header)
            stats, packed_bytes = _write_slices(handle, frames, file_dtype, compressor, clevel,
                                                uint4, n_threads, progress=progress)
            _set_stats(header, stats)
            header["packed_bytes"] = packed_bytes
            handle.seek(0)
            write_fully(handle, header.tobytes())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_with_header(path: str | os.PathLike, data: Any, header: np.ndarray,
                      extended_header: bytes = b"", compressor: str | None = None,
                      clevel: int = 1, n_threads: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> None:
    """Write ``data`` under a header the caller made, as the converters need.

    Unlike :func:`writeMRC`, nothing about the header is decided here but what the
    data determine: the statistics and the packed size. The pixels are stored as
    ``data.dtype`` in the header's byte order, so MODE must already name that type.
    The file is replaced only once complete, as by :func:`writeMRC`.

    Parameters
    ----------
    path : str or os.PathLike
        Target file.
    data : array-like
        (nz, ny, nx), indexable slice by slice (numpy, memmap, lazy arrays).
    header : numpy.ndarray
        The 0-d structured header (see :mod:`napari_mrcz.header`); its NSYMBT must
        equal ``len(extended_header)``.
    extended_header : bytes
        Written verbatim between the header and the data.
    compressor : str, optional
        The codec MODE names (None for plain MRC).
    clevel : int
        Compression level.
    n_threads : int, optional
        Slices encoded in parallel; all cores by default.
    progress : callable, optional
        Called as ``progress(written, total)`` after each z-slice (see :func:`writeMRC`).
    """
    path = os.path.realpath(os.fspath(path))
    frames = _describe_input(data)
    if int(header["nsymbt"]) != len(extended_header):
        raise ValueError(f"NSYMBT is {int(header['nsymbt'])} but the extended header has "
                         f"{len(extended_header)} bytes")
    byteorder = header.dtype["nx"].str[0]  # '<' or '>', also on a big-endian machine
    report = None if progress is None else partial(_report, progress, frames.count)
    threads = default_threads() if n_threads is None else int(n_threads)
    _write_new_file(path, frames, header.copy(), extended_header,
                    frames.dtype.newbyteorder(byteorder),
                    None if compressor is None else check_codec(compressor), clevel, False,
                    threads, report)


def _write_at_index(path: str, frames: _Frames, idx: int, clevel: int, n_threads: int,
                    progress: Callable[[int], None] | None = None) -> None:
    """Write frames into an existing file from z-slice ``idx`` on.

    Plain MRC: any ``idx`` from 0 to nz (nz appends). MRCZ: appending only. Only the
    written slices and the header change; nothing else in the file is touched.
    """
    layout = read_layout(path)
    nz = layout.nz
    start = idx + nz if idx < 0 else idx
    if not 0 <= start <= nz:
        raise ValueError(f"Error: image or slice index out of range. idx = {idx}, "
                         f"z_dimension = {nz}")
    if frames.shape != layout.shape[1:]:
        raise ValueError(f"Error: x,y dimensions of image {frames.shape} do not match that of "
                         f"MRC file {path}: {layout.shape[1:]}")
    if layout.is_uint4:
        raise ValueError(f"{path}: writing into a 4-bit (mode 101) file is not supported")
    if layout.compressor is not None and start != nz:
        raise RuntimeError("Writing at arbitrary positions not supported for compressed files: "
                           f"MRCZ frames can only be appended (idx={nz}). "
                           f"Compressor = {layout.compressor}")
    if layout.slices and frames.count % layout.slices:
        raise ValueError(f"{path} holds frames of {layout.slices} slices; "
                         f"{frames.count} slices do not make whole frames")
    new_nz = max(nz, start + frames.count)
    header = layout.header.copy()
    recorded = recorded_settings(layout.labels)
    if recorded is not None and recorded != (layout.compressor, int(clevel)):
        # The new slices are packed otherwise: the label no longer says how.
        set_labels(header, [label for label in layout.labels
                            if recorded_settings([label]) is None])
    old_stats = _trusted_stats(layout) if start == nz else None
    with open(path, "r+b", buffering=0) as handle:
        if layout.compressor is not None:
            with SliceReader(layout) as reader:
                handle.seek(int(reader.chunk_offsets[-1]))
                packed_before = reader.packed_bytes
            header["packed_bytes"] = packed_before
        else:
            handle.seek(layout.data_offset + start * layout.slice_nbytes)
        stats, packed_bytes = _write_slices(handle, frames, layout.dtype, layout.compressor,
                                            clevel, False, n_threads, stats=old_stats,
                                            progress=progress)
        header["packed_bytes"] += packed_bytes
        header["nz"] = new_nz
        sections_axis = layout.mapcrs[2] - 1
        mz = int(header["mz"])
        if mz in (0, nz) or layout.slices:
            # CELLA along z counts sections (CELLA / MZ or CELLA / NZ): it grows with
            # them; an image stack (MZ = 1) keeps its cell, and so its voxel size.
            if mz == nz and not layout.slices:
                header["mz"] = new_nz
            header["cella"][sections_axis] = layout.pixelsize[0] * new_nz
        if old_stats is not None:
            _set_stats(header, stats)
        else:
            handle.seek(0)
            write_fully(handle, header.tobytes())
            _set_stats(header, _file_stats(path, n_threads))
        handle.seek(0)
        write_fully(handle, header.tobytes())


def _trusted_stats(layout: MRCLayout) -> SliceStats | None:
    """The header statistics of ``layout`` as an accumulator, if they can be believed.

    python-mrcz estimates them from the first frame and writes RMS 0, so an RMS of 0
    in its files, and statistics marked unknown (RMS < 0, DMIN > DMAX, complex data),
    are not trusted.
    """
    header = layout.header
    dmin, dmax, dmean, rms = (float(header[name]) for name in ("dmin", "dmax", "dmean", "rms"))
    if not all(stats_determined(dmin, dmax, dmean, rms).values()) or layout.dtype.kind == "c":
        return None
    if rms == 0 and (dmin != dmax or layout.written_by_python_mrcz):
        return None
    shift = round(dmean) if layout.dtype.kind in "iub" else dmean
    return SliceStats.from_header(dmin, dmax, dmean, rms, layout.nz * layout.shape[1]
                                  * layout.shape[2], shift=shift)


def _file_stats(path: str, n_threads: int) -> SliceStats:
    """Statistics of all the data of a file, read about 64 MB at a time."""
    layout = read_layout(path)
    stats: SliceStats | None = None
    block = max(1, STREAM_BLOCK_BYTES // max(1, layout.slice_nbytes))
    with SliceReader(layout, n_threads) as reader:
        for first in range(0, layout.nz, block):
            count = min(block, layout.nz - first)
            data = reader.read_into(first, first + count, reader.new_array(count))
            data = data.astype(data.dtype.newbyteorder("="), copy=False)
            if stats is None:
                stats = SliceStats(shift_for(data, data.dtype))
            stats.add(data)
    return stats if stats is not None else SliceStats()


def writeMRC(input_image: Any, MRCfilename: str | os.PathLike, meta: dict | None = None,
             endian: str = "le", dtype: Any = None,
             pixelsize: Sequence[float] | float = (0.1, 0.1, 0.1), pixelunits: str = "\\AA",
             shape: Any = None, voltage: float = 0.0, C3: float = 0.0, gain: float = 1.0,
             compressor: str | None = None, clevel: int = 1, n_threads: int | None = None,
             quickStats: bool = True, idx: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             origin: Sequence[float] | None = None) -> None:
    """Write an array (or a list of frames) as plain MRC or compressed MRCZ.

    Parameters
    ----------
    input_image : array-like or list of numpy.ndarray
        1 to 3 dimensions (z, y, x), a numpy array, memmap, dask array or anything
        indexable slice by slice; or a list of equally shaped 2D or 3D arrays, which
        python-mrcz and :func:`readMRC` give back as a list.
    MRCfilename : str or os.PathLike
        Target file. It is replaced only once the new file is complete.
    meta : dict, optional
        Written as JSON into the extended header (EXTTYP ``json``). numpy values and
        Enums are converted as python-mrcz does.
    endian : {'le', 'be'}
        Byte order of the file.
    dtype : str or numpy.dtype, optional
        Cast to this type before writing; ``'uint4'`` packs values 0-15 two a byte
        (plain MRC only). float64, complex128 and bool are cast to float32, complex64
        and int8, uint8 is widened to uint16 (as mrcfile does).
    pixelsize : float or sequence of float
        One value, (y, x) or (z, y, x), in ``pixelunits``; with (y, x) the z spacing
        is 10 Angstrom, as in python-mrcz.
    pixelunits : str
        ``'\\AA'`` (default), ``'nm'``, ``'\\mum'`` or ``'pm'``.
    shape : optional
        Accepted for python-mrcz compatibility and ignored.
    voltage, C3, gain : float
        Accelerating voltage (kV), spherical aberration (mm) and detector gain, kept in
        the header where python-mrcz keeps them.
    compressor : str, optional
        None for plain MRC, or a blosc codec: ``'zstd'``, ``'lz4'``, ``'lz4hc'``,
        ``'blosclz'``, ``'zlib'`` (``'snappy'`` where the installed blosc has it).
    clevel : int
        Compression level 1 (fastest) to 9.
    n_threads : int, optional
        Slices encoded (cast, measured, compressed) in parallel; all cores by default
        (see :func:`setDefaultThreads`).
    quickStats : bool
        Accepted for python-mrcz compatibility: the header statistics are always exact,
        gathered slice by slice while writing.
    idx : int, optional
        Write the frames into the existing file from z-slice ``idx`` on; ``idx`` equal
        to the number of slices appends. Compressed files can only be appended to.
        Without an existing file, ``idx`` must be 0.
    origin : sequence of float, optional
        Not in python-mrcz. ORIGIN of a new file, (z, y, x) in ``pixelunits`` like
        ``pixelsize``; 0 by default.
    progress : callable, optional
        Not in python-mrcz. Called as ``progress(written, total)`` from the calling
        thread each time a z-slice is on disk; an exception it raises stops the
        write (a new file is then not created and the old one is left as it was).

    Raises
    ------
    ValueError
        For arguments that cannot be written (wrong pixelsize, unknown codec, ...).
    TypeError
        For data MRC cannot store, such as int64 (cast it first).
    """
    path = os.path.realpath(os.fspath(MRCfilename))  # through symlinks, to their target
    frames = _describe_input(input_image)
    report = None if progress is None else partial(_report, progress, frames.count)
    threads = default_threads() if n_threads is None else int(n_threads)
    if idx is not None and os.path.isfile(path):
        _write_at_index(path, frames, int(idx), clevel, threads, report)
        return
    if idx is not None and int(idx) != 0:
        raise ValueError(f"{path} does not exist yet: only idx=0 can start it")

    stored, uint4 = _resolve_dtype(frames, dtype, path)
    codec = None if compressor is None else check_codec(compressor)
    if uint4 and codec is not None:
        raise TypeError("uint4 packing is not compatible with compression, use int8 datatype.")
    if uint4 and frames.shape[1] % 2:
        raise ValueError("uint4 (mode 101) needs an even number of columns")
    byteorder = ">" if endian == "be" else "<"
    mode = UINT4_MODE if uint4 else mode_for_dtype(stored)

    json_meta = dict(meta) if isinstance(meta, dict) else None
    if frames.slices:
        json_meta = {**(json_meta or {}), "slices": frames.slices}
    elif json_meta is not None:
        # The writer owns this key: in a single array it would turn it into a list.
        json_meta.pop("slices", None)
    encoded_meta = encode_meta(json_meta) if json_meta is not None else None

    nz = frames.count
    if frames.slices:
        mz = frames.slices
    elif codec is not None or uint4:
        # python-mrcz reads MZ as slices per frame (0 is one array), and it is the
        # only reader of MRCZ and of the 4-bit mode besides us.
        mz = 0
    else:
        mz = nz
    header = _make_header(byteorder, (nz, *frames.shape), mode,
                          REVERSE_COMPRESSOR_ENUM[codec], _pixelsize_zyx(pixelsize, pixelunits),
                          mz, frames.slices, voltage, C3, gain)
    if codec is not None:
        set_labels(header, [WRITER_LABEL, settings_label(codec, clevel)])
    if encoded_meta is not None:
        header["nsymbt"] = len(encoded_meta)
        header["exttyp"] = b"json"
    if origin is not None:
        origin_zyx = np.atleast_1d(np.asarray(origin, dtype=np.float64))[-3:]
        origin_zyx = np.concatenate([np.zeros(3 - origin_zyx.size), origin_zyx])
        header["origin"] = origin_zyx[::-1] / units_per_angstrom(pixelunits)
    file_dtype = stored.newbyteorder(byteorder)
    _write_new_file(path, frames, header, encoded_meta, file_dtype, codec, clevel, uint4,
                    threads, report)


def _report(progress: Callable[[int, int], None], total: int, written: int) -> None:
    progress(written, total)


def writeMRCHeader(f: BinaryIO, header: dict, slices: int, endchar: str = "<") -> int:
    """Write python-mrcz's header dict as an MRC header (and JSON meta) at the start of ``f``.

    Parameters
    ----------
    f : binary file
        Open for writing; left positioned after the extended header.
    header : dict
        With python-mrcz's keys: ``dimensions`` (z, y, x), ``dtype``, and optionally
        ``compressor``, ``pixelsize``, ``pixelunits``, ``minImage``, ``maxImage``,
        ``meanImage``, ``voltage``, ``C3``, ``gain``, ``packedBytes`` and ``meta``.
    slices : int
        Slices per frame, stored in MZ as python-mrcz does (0 for one array).
    endchar : {'<', '>'}
        Byte order.

    Returns
    -------
    int
        Length of the JSON extended header (0 without one).
    """
    dims = [int(n) for n in header["dimensions"]]
    if len(dims) == 2:
        dims = [1, *dims]
    dtype_name = str(header["dtype"]).lower().lstrip("<>|=")
    try:
        mode = REVERSE_CCPEM_ENUM[dtype_name]
    except KeyError:
        raise ValueError(f"Unknown dtype for MRC encountered = {dtype_name}") from None
    if np.dtype(MODE_DTYPES[mode]).itemsize != np.dtype(
            "u1" if dtype_name == "uint4" else dtype_name).itemsize and mode != UINT4_MODE:
        raise ValueError(f"{dtype_name} data is written as {MODE_DTYPES[mode]} (MRC mode "
                         f"{mode}): cast it before writing it after this header")
    codec = header.get("compressor")
    codec_id = REVERSE_COMPRESSOR_ENUM.get(codec, 0)
    mrc_header = _make_header(endchar, (dims[0], dims[1], dims[2]), mode, codec_id,
                              _pixelsize_zyx(header.get("pixelsize", 0.1),
                                             header.get("pixelunits", "\\AA")),
                              int(slices), int(slices), header.get("voltage", 0.0),
                              header.get("C3", 0.0), header.get("gain", 1.0))
    if slices:
        # python-mrcz's signature (MX = MY = 0): MZ then counts slices per frame.
        mrc_header["mx"] = mrc_header["my"] = 0
    mrc_header["dmin"] = header.get("minImage", 0.0)
    mrc_header["dmax"] = header.get("maxImage", 1.0)
    mrc_header["dmean"] = header.get("meanImage", 0.0)
    mrc_header["packed_bytes"] = int(header.get("packedBytes", 0) or 0)
    encoded = encode_meta(header["meta"]) if isinstance(header.get("meta"), dict) else b""
    if encoded:
        mrc_header["nsymbt"] = len(encoded)
        mrc_header["exttyp"] = b"json"
    f.seek(0)
    f.write(mrc_header.tobytes())
    f.write(encoded)
    return len(encoded)


def defaultHeader() -> dict:
    """Return python-mrcz's default header dict, for :func:`writeMRCHeader`."""
    return {
        "fileConvention": "ccpem",
        "endian": "le",
        "MRCtype": 0,
        "dimensions": np.array([0, 0, 0], dtype=int),
        "dtype": "u1",
        "compressor": None,
        "backend": None,
        "packedBytes": 0,
        "clevel": 1,
        "maxImage": 1.0,
        "minImage": 0.0,
        "meanImage": 0.0,
        "pixelsize": 0.1,
        "pixelunits": "nm",
        "voltage": 300.0,
        "C3": 2.7,
        "gain": 1.0,
        "n_threads": default_threads(),
    }

