"""Random access to the z-slices of an MRC/MRCZ file, for napari and dask."""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from napari_mrcz.arraylike import ArrayLike
from napari_mrcz.mrc.gain import load_gain, slice_reader
from napari_mrcz.mrc.gzipped import DecompressedFile
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.threads import default_threads

DEFAULT_CACHE_BYTES = 256 * 2**20


class LazyMRC(ArrayLike):
    """An MRC or MRCZ file opened without reading its data.

    Behaves like a read-only numpy array of shape (nz, ny, nx), or (ny, nx) for a
    single image, with a trailing axis of 3 for RGB (mode 16): ``shape``, ``dtype``,
    ``ndim``, ``size`` and numpy-style indexing, which reads only the z-slices asked
    for. Plain MRC slices are read with ``pread``; MRCZ slices are decompressed on
    demand from a memory-mapped file. The most recent slices are kept in a small
    cache. A file truncated while open gives :class:`MRCZFormatError`, not a crash.
    A gain-separated file (integer counts and a gain reference beside it, see
    :mod:`napari_mrcz.mrc.gainmeta`) reads as its original float32 movie: each slice
    is multiplied by the gain as it is read.

    Parameters
    ----------
    path : str or os.PathLike
        The file. A ``.gz`` or ``.bz2`` file is decompressed into a temporary copy,
        kept until :meth:`close`.
    endian : {'le', 'be'}
        Byte order to assume if the file does not declare one.
    cache_bytes : int
        How many bytes of decompressed slices to keep (at least one slice).
    counts : bool
        For a gain-separated file: give the integer counts as stored rather than the
        original float32 movie (counts times the gain).

    Examples
    --------
    >>> with LazyMRC("movie.mrcz") as movie:          # doctest: +SKIP
    ...     last = movie[-1]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        endian: str = "le",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        counts: bool = False,
    ) -> None:
        self._source = DecompressedFile(path)
        try:
            with self._source.original_in_errors():
                self.layout: MRCLayout = read_layout(self._source.path, endian=endian)
                self._reader = slice_reader(
                    self.layout, default_threads(), self._source.original, counts
                )
        except BaseException:
            self._source.close()
            raise
        empty = self._reader.new_array(0)  # float32 for a gain-separated file
        self._dtype = empty.dtype
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        slice_nbytes = math.prod(empty.shape[1:]) * empty.itemsize
        self._cache_slots = max(1, cache_bytes // max(1, slice_nbytes))
        self._lock = threading.Lock()
        self._drops_z = self.layout.nz == 1

    @property
    def path(self) -> str:
        """The file, as given (``layout.path`` is its temporary copy if compressed)."""
        return self._source.original

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (uint8 for 4-bit and RGB files, float32 for gain-separated ones)."""
        return self._dtype.base

    @property
    def gain_reference(self) -> np.ndarray | None:
        """The gain reference of a gain-separated file (float32, (ny, nx)), else None."""
        separation = self.layout.gain_separation
        if separation is None:
            return None
        return load_gain(self.path, separation, self.layout.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        """(nz, ny, nx), or (ny, nx) for a single image; RGB adds an axis of 3."""
        shape = self.layout.shape + self.layout.dtype.shape
        return shape[1:] if self._drops_z else shape

    @property
    def data_end(self) -> int:
        """Byte offset just past the data (bytes after it belong to no slice)."""
        return self._reader.data_end

    def __repr__(self) -> str:
        codec = self.layout.compressor or "uncompressed"
        return f"<LazyMRC {self.path!r} shape={self.shape} dtype={self.dtype} {codec}>"

    def read_slice(self, index: int) -> np.ndarray:
        """Return z-slice ``index`` (read-only, shape (ny, nx), or (ny, nx, 3) for RGB)."""
        nz = self.layout.nz
        if not -nz <= index < nz:
            raise IndexError(f"z-slice {index} is out of range for {nz} slices")
        index %= nz
        with self._lock:
            frame = self._cache.get(index)
            if frame is not None:
                self._cache.move_to_end(index)
                return frame
        frame = self._reader.read_into(index, index + 1, self._reader.new_array(1))[0]
        frame.flags.writeable = False
        with self._lock:
            self._cache[index] = frame
            while len(self._cache) > self._cache_slots:
                self._cache.popitem(last=False)
        return frame

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._drops_z:
            return self.read_slice(0)[key]
        full_key = self.expand_key(key)
        if full_key is None:  # newaxis or several Ellipses: numpy's rules on all the data
            return np.asarray(self)[key]
        key = full_key
        z_key, rest = key[0], key[1:]
        if isinstance(z_key, (int, np.integer)) or (
            isinstance(z_key, np.ndarray) and z_key.ndim == 0 and z_key.dtype.kind in "iu"
        ):
            return self.read_slice(int(z_key))[rest]
        wanted = np.arange(self.layout.nz)[z_key]
        if isinstance(z_key, slice) and wanted.size > 1 and z_key.step in (None, 1):
            # A run of slices: read it in one go, in parallel, past the cache.
            start, stop = int(wanted[0]), int(wanted[-1]) + 1
            run = self._reader.read_into(start, stop, self._reader.new_array(stop - start))
            return run[(slice(None), *rest)]
        if isinstance(z_key, slice):
            stack_key: Any = slice(None)
            needed = wanted
        else:
            needed = np.unique(wanted)
            stack_key = np.searchsorted(needed, wanted)
        stack = self._reader.new_array(needed.size)
        for position, index in enumerate(needed):
            stack[position] = self.read_slice(int(index))
        return stack[(stack_key, *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        nz = self.layout.nz
        data = self._reader.read_into(0, nz, self._reader.new_array(nz), sequential=True)
        data = data.reshape(self.shape)
        return data if dtype is None else data.astype(dtype, copy=False)

    def close(self) -> None:
        """Release the file, its memory map, the cache and any temporary copy."""
        self._cache.clear()
        self._reader.close()
        self._source.close()

    def __enter__(self) -> LazyMRC:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
