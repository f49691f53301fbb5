"""Reading gain-separated files as the float32 movie they were: counts times the gain.

The record in the file's JSON meta (:mod:`napari_mrcz.mrc.gainmeta`) names the gain
reference beside it. :func:`slice_reader` is the one place the readers (``readMRC``,
:class:`~napari_mrcz.mrc.lazy.LazyMRC`, napari) get their slices from: for a
gain-separated file it multiplies each slice by the gain as it is read, so nothing is
computed before a slice is asked for; ``counts=True`` gives the integers as stored.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE, GainSeparation, gain_digest
from napari_mrcz.mrc.gzipped import DecompressedFile
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.mrc.modes import mode_for_dtype
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES, SliceReader
from napari_mrcz.remote import RemoteFile

#: Gains kept in memory, so that the movies of one folder load theirs once.
_CACHED_GAINS = 4
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def apply_gain(counts: np.ndarray, gain: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``counts * gain`` in float32, the one product that defines the original movie.

    The counts are converted to float32 (exactly, below 2**24) and multiplied by the
    gain, one IEEE float32 product per pixel: NaN, infinite and signed-zero gains give
    what float32 arithmetic gives.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf gains, as float32 says
        return np.multiply(counts, gain, out=out, dtype=ORIGINAL_DTYPE)


def gain_path(movie_path: str, separation: GainSeparation) -> str:
    """The gain file of a gain-separated file: in its folder."""
    return os.path.join(os.path.dirname(os.path.abspath(movie_path)), separation.gain_file)


def load_gain(movie_path: str, separation: GainSeparation, shape: tuple[int, int]) -> np.ndarray:
    """Read the gain reference of a gain-separated file and check it is the right one.

    Parameters
    ----------
    movie_path : str
        The counts file, as the user named it (its folder holds the gain).
    separation : GainSeparation
        Its record.
    shape : tuple of int
        (ny, nx) of its frames.

    Returns
    -------
    numpy.ndarray
        The gain, float32 in native byte order, read-only. The last few gains read are
        kept in memory (keyed by file, size, time and checksum).

    Raises
    ------
    MRCZFormatError
        Naming the counts file, if the gain file is missing, damaged, of another shape
        or type, or not the gain the file was made with (its checksum differs).
    """
    path = gain_path(movie_path, separation)
    name = separation.gain_file
    try:
        status = os.stat(path)
    except OSError as error:
        raise MRCZFormatError(
            movie_path,
            f"its gain reference {name} is not beside it ({error.strerror}): put it back in "
            "the movie's folder to read the float32 movie (counts=True reads the counts)",
        ) from None
    key = (path, status.st_mtime_ns, status.st_size, separation.gain_sha256)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        cached = _read_gain(movie_path, path, name)
        if gain_digest(cached) != separation.gain_sha256:
            raise MRCZFormatError(
                movie_path,
                f"{name} beside it is not the gain reference it was made with (its "
                "checksum differs): the float32 movie cannot be rebuilt",
            )
        cached.flags.writeable = False
        with _cache_lock:
            _cache[key] = cached
            while len(_cache) > _CACHED_GAINS:
                _cache.popitem(last=False)
    if cached.shape != tuple(shape):
        raise MRCZFormatError(
            movie_path, f"its gain reference {name} is {cached.shape}, its frames {tuple(shape)}"
        )
    return cached


def read_gain_reference(path: str | os.PathLike) -> np.ndarray:
    """The gain reference of a gain-separated file, the form motion correction takes.

    With ``readMRC(path, counts=True)`` (the integer counts) it gives what the file
    stores; ``readMRC(path)`` gives their product, the original movie.

    Returns
    -------
    numpy.ndarray
        float32, (ny, nx), read-only, checked against the file's checksum.

    Raises
    ------
    ValueError
        If the file is not gain-separated.
    MRCZFormatError
        If its gain reference is missing or not the one it was made with.
    """
    with DecompressedFile(path) as source, source.original_in_errors():
        layout = read_layout(source.path)
        separation = layout.gain_separation
        if separation is None:
            raise ValueError(f"{source.original} is not gain-separated: it has no gain reference")
        return load_gain(source.original, separation, layout.shape[1:])


def _read_gain(movie_path: str, path: str, name: str) -> np.ndarray:
    """The single float32 image of a gain file, in native byte order."""
    try:
        layout = read_layout(path)
        if layout.nz != 1 or layout.dtype.base != ORIGINAL_DTYPE.newbyteorder(layout.byteorder):
            raise MRCZFormatError(
                path,
                f"it is not one float32 image ({layout.nz} slices of {layout.dtype.base})",
            )
        with SliceReader(layout) as reader:
            gain = reader.read_into(0, 1, reader.new_array(1))[0]
    except MRCZFormatError as error:
        raise MRCZFormatError(movie_path, f"its gain reference {name}: {error.problem}") from None
    return gain.astype(ORIGINAL_DTYPE, copy=False)


class GainAppliedReader:
    """A :class:`~napari_mrcz.mrc.slices.SliceReader` that gives counts times the gain.

    The counts are read a block at a time (at most about
    :data:`~napari_mrcz.mrc.slices.STREAM_BLOCK_BYTES`) and multiplied into the
    float32 destination.
    """

    def __init__(self, reader: SliceReader, gain: np.ndarray) -> None:
        self.counts = reader
        self.gain = gain
        self.layout = reader.layout

    @property
    def packed_bytes(self) -> int:
        """Total size of the blosc chunks of the counts."""
        return self.counts.packed_bytes

    @property
    def chunk_offsets(self) -> np.ndarray | None:
        """The counts' MRCZ chunk index (see SliceReader)."""
        return self.counts.chunk_offsets

    @property
    def data_end(self) -> int:
        """Byte offset just past the counts."""
        return self.counts.data_end

    def new_array(self, count: int) -> np.ndarray:
        """An uninitialised (count, ny, nx) float32 array."""
        _, ny, nx = self.layout.shape
        return np.empty((count, ny, nx), dtype=ORIGINAL_DTYPE)

    def read_into(
        self, start: int, stop: int, out: np.ndarray, sequential: bool = False
    ) -> np.ndarray:
        """Read z-slices ``start`` to ``stop`` into the float32 ``out`` (see SliceReader)."""
        block = max(1, STREAM_BLOCK_BYTES // max(1, self.layout.slice_nbytes))
        for first in range(start, stop, block):
            last = min(stop, first + block)
            counts = self.counts.read_into(
                first, last, self.counts.new_array(last - first), sequential
            )
            apply_gain(counts, self.gain, out=out[first - start : last - start])
        return out

    def close(self) -> None:
        """Release the counts file."""
        self.counts.close()

    def __enter__(self) -> GainAppliedReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def slice_reader(
    layout: MRCLayout,
    n_threads: int,
    movie_path: str,
    counts: bool = False,
    chunk_offsets: np.ndarray | None = None,
    remote: RemoteFile | None = None,
) -> SliceReader | GainAppliedReader:
    """The reader of a file's slices: the stored values, or for a gain-separated file
    (unless ``counts``), the original float32 movie.

    Parameters
    ----------
    layout : MRCLayout
        The file's header.
    n_threads : int
        Slices decompressed at once.
    movie_path : str
        The file as the user named it (a ``.gz`` file's layout is its temporary copy):
        the gain reference is looked for beside it.
    counts : bool
        Give a gain-separated file's integer counts as stored.
    chunk_offsets : numpy.ndarray, optional
        The MRCZ chunk index of an earlier reader (see
        :class:`~napari_mrcz.mrc.slices.SliceReader`).
    remote : RemoteFile, optional
        The file on a server that ``layout`` describes.

    Raises
    ------
    MRCZFormatError
        If the gain reference cannot be used (see :func:`load_gain`), or would have
        to be found beside a file on a server.
    """
    separation = None if counts else layout.gain_separation
    if separation is not None and remote is not None:
        raise MRCZFormatError(
            layout.path,
            "a gain-separated file is read as its movie from a local disk only (its "
            "gain reference is a file beside it); counts=True reads its counts",
        )
    reader = SliceReader(layout, n_threads, chunk_offsets, remote=remote)
    if separation is None:
        return reader
    try:
        return GainAppliedReader(reader, load_gain(movie_path, separation, layout.shape[1:]))
    except BaseException:
        reader.close()
        raise


def applies_gain(layout: MRCLayout, counts: bool) -> bool:
    """True if reading ``layout`` (``counts`` or not) gives counts times the gain."""
    return not counts and layout.gain_separation is not None


def original_meta(meta: dict, separation: GainSeparation) -> None:
    """Make python-mrcz's meta dict of a counts file describe the float32 movie read.

    ``dtype`` and ``MRCtype`` become float32's, and the statistics the original's
    (when the record has them); ``mrcHeader`` keeps the file's header as stored.
    """
    meta["dtype"] = ORIGINAL_DTYPE.str
    meta["MRCtype"] = mode_for_dtype(ORIGINAL_DTYPE)
    if separation.statistics is not None:
        keys = ("minImage", "maxImage", "meanImage", "rmsImage")
        meta.update(zip(keys, separation.statistics, strict=True))
