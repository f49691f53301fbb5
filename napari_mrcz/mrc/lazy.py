"""Random access to the z-slices of an MRC/MRCZ file, for napari and dask."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_mrcz.arraylike import ArrayLike
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.gain import GainAppliedReader, applies_gain, load_gain, slice_reader
from napari_mrcz.mrc.gzipped import DecompressedFile, is_compressed
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.mrc.slices import SliceReader
from napari_mrcz.remote import RemoteFile, is_url, local_only_problem, redact
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

    A LazyMRC pickles without its data: the copy carries the file's absolute name,
    its parsed header and its MRCZ chunk index, and opens the file only where it is
    first read, so that dask can hand it to workers in other processes, or on other
    machines that see the same file system, at the cost of one open there. A
    ``.gz``/``.bz2`` file is decompressed again where it is read. A file whose size
    or header changed meanwhile gives :class:`MRCZFormatError`.

    A file on a web server or object store (``https://``, ``s3://``... see
    :mod:`napari_mrcz.remote`) is read in ranged requests: its size, then its header
    and extended header (one request for most files), then each slice's bytes as it
    is read, a run of slices in a few requests at once. An MRCZ file we wrote records
    its chunk sizes, so opening it walks nothing; other MRCZ files have their chunk
    headers walked in blocks of 64 MiB.

    Parameters
    ----------
    path : str or os.PathLike
        The file, or its address. A local ``.gz`` or ``.bz2`` file is decompressed
        into a temporary copy, kept until :meth:`close`.
    endian : {'le', 'be'}
        Byte order to assume if the file does not declare one.
    cache_bytes : int
        How many bytes of decompressed slices to keep (at least one slice).
    counts : bool
        For a gain-separated file: give the integer counts as stored rather than the
        original float32 movie (counts times the gain).
    checkpoint : callable, optional
        Called after every few MB while a ``.gz``/``.bz2`` file is decompressed; an
        exception it raises stops the decompression (a cancelled run).
    quiet : bool
        Leave out the warnings about the header (see
        :func:`~napari_mrcz.mrc.layout.read_layout`).
    storage_options : dict, optional
        For an address: fsspec's options (credentials, ``endpoint_url``, ``anon``).

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
        checkpoint: Callable[[], None] | None = None,
        quiet: bool = False,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if is_url(path):
            self._open_remote(str(path), endian, cache_bytes, counts, quiet, storage_options)
            return
        source = DecompressedFile(path, checkpoint)
        try:
            with source.original_in_errors():
                layout = read_layout(source.path, endian=endian, quiet=quiet)
                reader = slice_reader(layout, default_threads(), source.original, counts)
        except BaseException:
            source.close()
            raise
        self._start(source.original, layout, cache_bytes, counts=counts)
        self._source, self._opened = source, reader

    def _open_remote(
        self,
        url: str,
        endian: str,
        cache_bytes: int,
        counts: bool,
        quiet: bool,
        storage_options: dict[str, Any] | None,
    ) -> None:
        problem = local_only_problem(url)
        if problem is not None:
            raise MRCZFormatError(redact(url), problem)
        remote = RemoteFile(url, storage_options)
        layout = read_layout(remote.name, endian=endian, quiet=quiet, source=remote)
        reader = slice_reader(layout, default_threads(), url, counts, remote=remote)
        self._start(url, layout, cache_bytes, counts=counts)
        self._storage_options = remote.storage_options
        self._opened = reader

    def _start(
        self,
        path: str,
        layout: MRCLayout,
        cache_bytes: int,
        chunk_offsets: np.ndarray | None = None,
        counts: bool = False,
    ) -> None:
        """Set up everything but the open file (:meth:`_open` opens it)."""
        self._path = path
        self._layout = layout
        self._cache_bytes = cache_bytes
        self._chunk_offsets = chunk_offsets  # carried by a pickled copy
        self._counts = counts
        # float32 for a gain-separated file read as its original movie
        self._dtype = np.dtype(np.float32) if applies_gain(layout, counts) else layout.dtype
        self._source: DecompressedFile | None = None
        self._opened: SliceReader | GainAppliedReader | None = None
        self._closed = False
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        slice_nbytes = math.prod(layout.shape[1:]) * self._dtype.itemsize
        self._cache_slots = max(1, cache_bytes // max(1, slice_nbytes))
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._drops_z = layout.nz == 1
        self._storage_options: dict[str, Any] = {}

    def _open(self) -> SliceReader | GainAppliedReader:
        """Open the file of an unpickled copy, once; check that it is the file pickled."""
        with self._open_lock:
            if self._opened is not None:
                return self._opened
            if self._closed:
                raise ValueError(f"{self._layout.path} is closed")
            carried = self._layout
            if is_url(self._path):
                self._opened = self._reopen_remote(carried)
                return self._opened
            source = DecompressedFile(self._path)
            try:
                with source.original_in_errors():
                    layout = (
                        read_layout(source.path, endian="be" if carried.byteorder == ">" else "le")
                        if source.is_temporary
                        else carried
                    )
                    size = os.path.getsize(source.path)
                    if (
                        size != carried.file_size
                        or layout.header.tobytes() != carried.header.tobytes()
                    ):
                        raise MRCZFormatError(
                            source.path,
                            f"the file changed since it was opened and handed over "
                            f"(now {size} bytes, then {carried.file_size})",
                        )
                    reader = slice_reader(
                        layout,
                        default_threads(),
                        self._path,
                        self._counts,
                        chunk_offsets=self._chunk_offsets,
                    )
            except BaseException:
                source.close()
                raise
            self._source, self._layout, self._opened = source, layout, reader
            return reader

    def _reopen_remote(self, carried: MRCLayout) -> SliceReader | GainAppliedReader:
        """The reader of a pickled copy of a file on a server: the same file, checked."""
        remote = RemoteFile(self._path, self._storage_options)
        head = remote.pread(0, carried.header.nbytes)
        if remote.size != carried.file_size or head != carried.header.tobytes():
            raise MRCZFormatError(
                remote.name,
                f"the file changed since it was opened and handed over "
                f"(now {remote.size} bytes, then {carried.file_size})",
            )
        return slice_reader(
            carried,
            default_threads(),
            self._path,
            self._counts,
            chunk_offsets=self._chunk_offsets,
            remote=remote,
        )

    @property
    def _reader(self) -> SliceReader | GainAppliedReader:
        return self._opened if self._opened is not None else self._open()

    def __reduce__(self) -> tuple:
        """Pickle the file's name, header and chunk index, not its data."""
        path = self._path if is_url(self._path) else os.path.abspath(self._path)
        layout = self._layout
        if not is_compressed(path) and not is_url(path):
            layout = dataclasses.replace(layout, path=path)
        offsets = self._chunk_offsets if self._opened is None else self._opened.chunk_offsets
        return _unpickled_lazy_mrc, (
            path,
            layout,
            offsets,
            self._cache_bytes,
            self._counts,
            self._storage_options,
        )

    @property
    def layout(self) -> MRCLayout:
        """The parsed header (``layout.path`` is the temporary copy of a compressed file)."""
        if self._opened is None and is_compressed(self._path):
            self._open()  # an unpickled copy: make this machine's copy first
        return self._layout

    @property
    def path(self) -> str:
        """The file, as given (``layout.path`` is its temporary copy if compressed)."""
        return self._path

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (uint8 for 4-bit and RGB files, float32 for gain-separated ones)."""
        return self._dtype.base

    @property
    def gain_reference(self) -> np.ndarray | None:
        """The gain reference of a gain-separated file (float32, (ny, nx)), else None."""
        separation = self._layout.gain_separation
        if separation is None:
            return None
        return load_gain(self.path, separation, self._layout.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        """(nz, ny, nx), or (ny, nx) for a single image; RGB adds an axis of 3."""
        shape = self._layout.shape + self._dtype.shape
        return shape[1:] if self._drops_z else shape

    @property
    def data_end(self) -> int:
        """Byte offset just past the data (bytes after it belong to no slice)."""
        return self._reader.data_end

    def __repr__(self) -> str:
        codec = self._layout.compressor or "uncompressed"
        shown = redact(self.path) if is_url(self.path) else self.path
        return f"<LazyMRC {shown!r} shape={self.shape} dtype={self.dtype} {codec}>"

    def read_slices(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Return stored z-slices ``start`` to ``stop`` (exclusive) as a new array, or in ``out``.

        Shape (stop - start, ny, nx), plus 3 for RGB, whatever :attr:`shape` drops.
        Read straight into the array, several slices at once, past the cache: each
        chunk of :func:`napari_mrcz.to_dask` is one such read. ``out``, if given, must
        be C-contiguous, of that shape and of :attr:`dtype`; it is filled and returned.
        """
        nz = self._layout.nz
        if not 0 <= start <= stop <= nz:
            raise IndexError(f"z-slices {start}:{stop} are out of range for {nz} slices")
        reader = self._reader
        if out is None:
            return reader.read_into(start, stop, reader.new_array(stop - start))
        expected = reader.new_array(0).shape[1:]
        if (
            out.shape != (stop - start, *expected)
            or out.dtype != self._dtype.base
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise ValueError(
                f"out must be a writable C-contiguous {self._dtype.base} array of shape "
                f"{(stop - start, *expected)}, not {out.dtype} {out.shape}"
            )
        return reader.read_into(start, stop, out)

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
        with self._open_lock:
            self._closed = True
        self._cache.clear()
        if self._opened is not None:
            self._opened.close()
        if self._source is not None:
            self._source.close()

    def __enter__(self) -> LazyMRC:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _unpickled_lazy_mrc(
    path: str,
    layout: MRCLayout,
    chunk_offsets: np.ndarray | None,
    cache_bytes: int,
    counts: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> LazyMRC:
    """A pickled :class:`LazyMRC` again, its file opened when first read."""
    lazy = LazyMRC.__new__(LazyMRC)
    lazy._start(path, layout, cache_bytes, chunk_offsets, counts)
    lazy._storage_options = dict(storage_options or {})
    return lazy
