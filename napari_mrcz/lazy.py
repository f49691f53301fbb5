"""Random access to the z-slices of an MRC/MRCZ file, for napari and dask."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .layout import MRCLayout, read_layout
from .slices import SliceReader

DEFAULT_CACHE_BYTES = 256 * 2**20


class LazyMRC:
    """An MRC or MRCZ file opened without reading its data.

    Behaves like a read-only numpy array of shape (nz, ny, nx), or (ny, nx) for a
    single image: ``shape``, ``dtype``, ``ndim``, ``size`` and numpy-style indexing,
    which reads only the z-slices asked for. Plain MRC is a memory map; MRCZ slices
    are decompressed on demand from a memory-mapped file and the most recent ones are
    kept in a small cache.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    endian : {'le', 'be'}
        Byte order to assume if the file does not declare one.
    cache_bytes : int
        How many bytes of decompressed slices to keep (at least one slice).

    Examples
    --------
    >>> with LazyMRC("movie.mrcz") as movie:          # doctest: +SKIP
    ...     last = movie[-1]
    """

    def __init__(self, path: str | os.PathLike, endian: str = "le",
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.layout: MRCLayout = read_layout(path, endian=endian)
        self._reader = SliceReader(self.layout)
        nz, ny, nx = self.layout.shape
        self._memmap = None
        if self.layout.compressor is None and not self.layout.is_uint4:
            self._memmap = np.memmap(self.layout.path, dtype=self.layout.dtype, mode="r",
                                     offset=self.layout.data_offset, shape=(nz, ny, nx))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_slots = max(1, cache_bytes // max(1, ny * nx * self.dtype.itemsize))
        self._lock = threading.Lock()
        self._drops_z = nz == 1

    @property
    def path(self) -> str:
        """The file."""
        return self.layout.path

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (uint8 for 4-bit files)."""
        return self.layout.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """(nz, ny, nx), or (ny, nx) for a single image."""
        return self.layout.shape[1:] if self._drops_z else self.layout.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of pixels."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Size of the data once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        codec = self.layout.compressor or "uncompressed"
        return f"<LazyMRC {self.path!r} shape={self.shape} dtype={self.dtype} {codec}>"

    def read_slice(self, index: int) -> np.ndarray:
        """Return z-slice ``index`` (read-only, shape (ny, nx))."""
        nz = self.layout.nz
        if not -nz <= index < nz:
            raise IndexError(f"z-slice {index} is out of range for {nz} slices")
        index %= nz
        if self._memmap is not None:
            return self._memmap[index]
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
        key = key if isinstance(key, tuple) else (key,)
        if self._drops_z:
            key = (0, *key)
        if any(part is None for part in key) or sum(part is Ellipsis for part in key) > 1:
            return np.asarray(self)[key[1:] if self._drops_z else key]
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (4 - len(key)) + key[at + 1 :]
        if len(key) > 3:
            raise IndexError(f"too many indices for a {self.ndim}-dimensional array")
        z_key, rest = key[0], key[1:]
        if isinstance(z_key, (int, np.integer)):
            return self.read_slice(int(z_key))[rest]
        if self._memmap is not None:
            return self._memmap[key]
        indices = np.arange(self.layout.nz)[z_key]
        first = self.read_slice(int(indices[0]))[rest] if indices.size else None
        if first is None:
            return np.empty((0, *self.layout.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
        out = np.empty((indices.size, *first.shape), dtype=self.dtype)
        out[0] = first
        for position, index in enumerate(indices[1:], start=1):
            out[position] = self.read_slice(int(index))[rest]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._memmap is not None:
            data = np.array(self._memmap)
        else:
            nz = self.layout.nz
            data = self._reader.read_into(0, nz, self._reader.new_array(nz), sequential=True)
        data = data.reshape(self.shape)
        return data if dtype is None else data.astype(dtype, copy=False)

    def close(self) -> None:
        """Release the file, its memory map and the cache."""
        self._memmap = None
        self._cache.clear()
        self._reader.close()

    def __enter__(self) -> LazyMRC:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
