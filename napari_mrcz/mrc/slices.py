"""Reading z-slices of an MRC/MRCZ file into arrays, without reading the rest."""

from __future__ import annotations

import mmap
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from napari_mrcz.errors import MRCZFormatError, MRCZWarning
from napari_mrcz.files import open_regular
from napari_mrcz.mrc.checksums import chunk_checksum, mismatched_slices
from napari_mrcz.mrc.chunk_index import remote_chunk_offsets
from napari_mrcz.mrc.codecs import (
    BLOSC1_FORMATS,
    ChunkDecodeError,
    decompress_into,
    indexed_chunk_problem,
)
from napari_mrcz.mrc.layout import MRCLayout
from napari_mrcz.mrc.modes import uint4_row_bytes
from napari_mrcz.threads import slices_per_task

if TYPE_CHECKING:
    from napari_mrcz.remote import RemoteFile

#: About how many bytes of slices are read at a time when a whole file is streamed
#: (statistics, verification, conversion): large enough for parallel decompression,
#: small against a 40 GB movie.
STREAM_BLOCK_BYTES = 64 * 2**20

#: Plain data is read on several threads once each gets at least this many bytes.
PARALLEL_READ_BYTES = 8 * 2**20

#: Bytes of plain data asked of a server per request: the memory a request holds
#: before it is copied into place, and what a dropped connection costs again.
REMOTE_REQUEST_BYTES = 8 * 2**20


def unpack_uint4(packed: np.ndarray, nx: int, out: np.ndarray) -> None:
    """Unpack mode-101 bytes (two pixels a byte, low nibble first) into ``out``.

    ``packed`` has shape (..., ny, ceil(nx / 2)); ``out`` has shape (..., ny, nx).
    """
    np.bitwise_and(packed[..., : uint4_row_bytes(nx)], 0x0F, out=out[..., 0::2])
    np.right_shift(packed[..., : nx // 2], 4, out=out[..., 1::2])


_SEEK_LOCK = threading.Lock()


def _pread_into(handle: BinaryIO, view: memoryview, offset: int) -> int:
    """Read into ``view`` from byte ``offset`` without moving a shared file position.

    ``os.preadv`` where the platform has it; elsewhere (Windows) seek and read under
    a lock.
    """
    if hasattr(os, "preadv"):
        return os.preadv(handle.fileno(), [view], offset)
    with _SEEK_LOCK:
        handle.seek(offset)
        return handle.readinto(view)


class SliceReader:
    """Read any range of z-slices of one file into caller-supplied arrays.

    Plain MRC is read with ``pread`` straight into the destination. MRCZ is
    memory-mapped; its blosc chunks are indexed once by walking their headers, and
    each requested chunk is decompressed straight into the destination. A file on a
    server (``remote``) is read in ranged requests instead: one per run of slices
    (a few MiB) or per part of a plain read, several at once. Several threads may
    read at once; :meth:`close` waits for them.

    Parameters
    ----------
    layout : MRCLayout
        The file's parsed header (from :func:`napari_mrcz.mrc.layout.read_layout`).
    n_threads : int
        Slices decompressed at the same time when a range is read.
    chunk_offsets : numpy.ndarray, optional
        The MRCZ chunk index (:attr:`chunk_offsets`) of an earlier reader of the same
        file, so that it is not walked again (a reader rebuilt in another process).
    check_all_headers : bool
        Check every chunk header now, also those whose size the file records (see
        :meth:`~napari_mrcz.mrc.layout.MRCLayout.index_chunks`); otherwise each is
        checked when its chunk is read.
    remote : RemoteFile, optional
        The file on a server that ``layout`` describes (see :mod:`napari_mrcz.remote`).
    """

    def __init__(
        self,
        layout: MRCLayout,
        n_threads: int = 1,
        chunk_offsets: np.ndarray | None = None,
        check_all_headers: bool = False,
        remote: RemoteFile | None = None,
    ) -> None:
        self.layout = layout
        self.n_threads = max(1, int(n_threads))
        self._remote = remote
        self._closed = False
        self._file = open_regular(layout.path, buffering=0) if remote is None else None
        self._mmap: mmap.mmap | None = None
        self.chunk_offsets: np.ndarray | None = None
        self._readers = 0
        self._idle = threading.Condition()
        self._damage_told = threading.Event()  # a CRC32 mismatch is warned about once
        self._first_format: int | None = None  # the first chunk's blosc format version
        try:
            if layout.compressor is not None and chunk_offsets is not None:
                self.chunk_offsets = chunk_offsets
            elif layout.compressor is not None and remote is not None:
                self.chunk_offsets = remote_chunk_offsets(layout, remote)
            if layout.compressor is not None and self._file is not None:
                self._mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                if self.chunk_offsets is None:
                    self.chunk_offsets = layout.index_chunks(self._mmap, check_all_headers)
        except BaseException:
            self.close()
            raise

    @property
    def packed_bytes(self) -> int:
        """Total size of the blosc chunks (0 for plain MRC)."""
        if self.chunk_offsets is None:
            return 0
        return int(self.chunk_offsets[-1] - self.chunk_offsets[0])

    @property
    def data_end(self) -> int:
        """Byte offset just past the data: the end of the last slice or blosc chunk."""
        if self.chunk_offsets is not None:
            return int(self.chunk_offsets[-1])
        return self.layout.data_offset + self.layout.data_nbytes

    def damaged_chunks(self) -> list[int] | None:
        """The z-slices whose compressed bytes differ from the checksums the writer recorded.

        None when the file records none (plain MRC, other writers' MRCZ); see
        :mod:`napari_mrcz.mrc.checksums`.
        """
        if self._remote is not None:
            return self._remote_damaged_chunks()
        if self._mmap is None or self.chunk_offsets is None:
            return None
        self._check_still_holds(int(self.chunk_offsets[-1]))
        return mismatched_slices(self.layout.chunk_checksums, self._mmap, self.chunk_offsets)

    def _remote_damaged_chunks(self) -> list[int] | None:
        """:meth:`damaged_chunks` of a file on a server: its chunks fetched in blocks."""
        recorded, offsets = self.layout.chunk_checksums, self.chunk_offsets
        if recorded is None or offsets is None:
            return None
        count = min(len(recorded), len(offsets) - 1)
        damaged: list[int] = []
        first = 0
        while first < count:
            last = first + 1
            while last < count and offsets[last + 1] - offsets[first] <= STREAM_BLOCK_BYTES:
                last += 1
            block = self._remote.pread(int(offsets[first]), int(offsets[last] - offsets[first]))
            found = mismatched_slices(
                list(recorded[first:last]), block, offsets[first : last + 1] - offsets[first]
            )
            damaged += [first + index for index in found or []]
            first = last
        return damaged

    def new_array(self, count: int) -> np.ndarray:
        """Return an uninitialised (count, ny, nx) array of the file's pixel type.

        For RGB (mode 16) the 3-byte pixel dtype makes it (count, ny, nx, 3) uint8.
        """
        _, ny, nx = self.layout.shape
        return np.empty((count, ny, nx), dtype=self.layout.dtype)

    def read_into(
        self, start: int, stop: int, out: np.ndarray, sequential: bool = False
    ) -> np.ndarray:
        """Read z-slices ``start`` to ``stop`` (exclusive) into the C-contiguous ``out``.

        Parameters
        ----------
        start, stop : int
            Slice range, 0 <= start <= stop <= nz.
        out : numpy.ndarray
            Destination of shape (stop - start, ny, nx) and the file's dtype, as
            :meth:`new_array` returns it.
        sequential : bool
            Hint that the whole range is read front to back (enables read-ahead).

        Returns
        -------
        numpy.ndarray
            ``out``.
        """
        layout = self.layout
        if not 0 <= start <= stop <= layout.nz:
            raise IndexError(f"z-slices {start}:{stop} are out of range for {layout.nz} slices")
        with self._idle:
            if self._closed:
                raise ValueError(f"{layout.path} is closed")
            self._readers += 1
        try:
            if layout.compressor is not None:
                self._decompress_range(start, stop, out, sequential)
            elif layout.is_uint4:
                _, ny, nx = layout.shape
                packed = np.empty((stop - start, ny, uint4_row_bytes(nx)), dtype=np.uint8)
                self._read_raw(start, packed)
                unpack_uint4(packed, nx, out)
            else:
                self._read_raw(start, out)
        finally:
            with self._idle:
                self._readers -= 1
                self._idle.notify_all()
        return out

    def _read_raw(self, start: int, out: np.ndarray) -> None:
        # pread: no shared file position, so parts are read on several threads at
        # once, each copying from the page cache on a core of its own (100 MB here:
        # 4.1 GB/s on one thread, 7.0 on two).
        if not out.size:
            return  # nothing to read (a byte view of an empty array cannot be made)
        offset = self.layout.data_offset + start * self.layout.slice_nbytes
        view = memoryview(out).cast("B")
        parts = min(self.n_threads, len(view) // PARALLEL_READ_BYTES)
        if self._remote is not None:  # requests of a few MiB, n_threads at once
            parts = -(-len(view) // REMOTE_REQUEST_BYTES)
        if parts <= 1:
            self._pread_fully(view, offset)
            return
        step = -(-len(view) // parts // mmap.PAGESIZE) * mmap.PAGESIZE
        workers = min(parts, self.n_threads)
        with ThreadPoolExecutor(workers, thread_name_prefix="napari-mrcz-read") as pool:
            list(
                pool.map(
                    lambda at: self._pread_fully(view[at : at + step], offset + at),
                    range(0, len(view), step),
                )
            )

    def _pread_fully(self, view: memoryview, offset: int) -> None:
        if self._remote is not None:
            self._remote.read_into(view, offset)
            return
        while view:
            count = _pread_into(self._file, view, offset)
            if not count:
                raise MRCZFormatError(
                    self.layout.path,
                    "the file ended while reading data; was it truncated after opening?",
                )
            view = view[count:]
            offset += count

    def _check_still_holds(self, end: int) -> None:
        """Raise if the file shrank below ``end`` since it was opened.

        Touching a memory map past the end of a file kills the process (SIGBUS).
        A file on a server is not mapped: a shorter one gives short reads.
        """
        if self._file is None:
            return
        size = os.fstat(self._file.fileno()).st_size
        if size < end:
            raise MRCZFormatError(
                self.layout.path,
                f"the file shrank to {size} bytes since it "
                "was opened (truncated by another program?)",
            )

    def _decompress_range(self, start: int, stop: int, out: np.ndarray, sequential: bool) -> None:
        if self.chunk_offsets is None or (self._mmap is None and self._remote is None):
            raise ValueError(f"{self.layout.path} is closed")
        mapped = self._mmap
        if sequential and mapped is not None and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        offsets = self.chunk_offsets
        self._check_still_holds(int(offsets[stop]))
        recorded = self.layout.chunk_checksums
        checksums = (
            recorded if recorded is not None and len(recorded) == len(offsets) - 1 else None
        )
        workers = min(self.n_threads, stop - start)
        run = slices_per_task(self.layout.slice_nbytes, stop - start, workers)

        def decompress_run(first: int) -> None:
            last = min(first + run, stop)
            if self._remote is not None:  # one request for the run's chunks
                window = memoryview(
                    self._remote.pread(int(offsets[first]), int(offsets[last] - offsets[first]))
                )
                base = int(offsets[first])
            else:
                window, base = memoryview(mapped), 0
            with window:
                for index in range(first, last):
                    begin = int(offsets[index]) - base
                    with window[begin : begin + int(offsets[index + 1] - offsets[index])] as chunk:
                        self._decompress_chunk(index, chunk, out[index - start], checksums)

        if workers <= 1:
            for first in range(start, stop, run):
                decompress_run(first)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="napari-mrcz-read") as pool:
                list(pool.map(decompress_run, range(start, stop, run)))
        if sequential and mapped is not None and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_NORMAL)

    def _decompress_chunk(
        self, index: int, chunk: memoryview, out: np.ndarray, checksums: np.ndarray | None
    ) -> None:
        """Check z-slice ``index``'s blosc chunk and decompress it into ``out``."""
        if len(chunk) and (chunk[0] in BLOSC1_FORMATS) != self._blosc1_file(chunk):
            raise MRCZFormatError(
                self.layout.path,
                f"blosc chunk {index} is damaged: its format version {chunk[0]} "
                "does not match the file's first chunk",
            )
        problem = indexed_chunk_problem(chunk, self.layout.slice_nbytes)
        if problem is not None:
            raise MRCZFormatError(
                self.layout.path,
                f"damaged blosc chunk {index} at byte {self.chunk_offsets[index]}: {problem}",
            )
        try:
            decompress_into(chunk, out)
        except ChunkDecodeError as error:
            raise MRCZFormatError(
                self.layout.path,
                f"blosc chunk {index} is damaged and cannot be decompressed: {error}",
            ) from None
        if checksums is not None and chunk_checksum(chunk) != checksums[index]:
            self._tell_damage(index)

    def _blosc1_file(self, chunk: memoryview) -> bool:
        """True if the file's first chunk is in the c-blosc1 format.

        Of a file on a server, the first chunk read stands for the first chunk.
        """
        if self._first_format is None:
            first = int(self.chunk_offsets[0])
            self._first_format = (
                self._mmap[first]
                if self._mmap is not None and first < len(self._mmap)
                else chunk[0]
            )
        return self._first_format in BLOSC1_FORMATS

    def _tell_damage(self, index: int) -> None:
        """Warn (once per open file) that z-slice ``index`` differs from its CRC32."""
        if self._damage_told.is_set():
            return
        self._damage_told.set()
        warnings.warn(
            f"{self.layout.path}: z-slice {index} is not as it was written (its CRC32 "
            "differs): the file is damaged there and its pixels may be wrong; "
            "mrcz validate lists every damaged slice",
            MRCZWarning,
            stacklevel=2,
        )

    def close(self) -> None:
        """Release the file and its memory map, once reads in progress are done."""
        idle = getattr(self, "_idle", None)
        if idle is not None:
            with idle:
                self._closed = True
                idle.wait_for(lambda: self._readers == 0)
        if getattr(self, "_mmap", None) is not None:
            self._mmap.close()
            self._mmap = None
        if getattr(self, "_file", None) is not None and not self._file.closed:
            self._file.close()

    def __enter__(self) -> SliceReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
