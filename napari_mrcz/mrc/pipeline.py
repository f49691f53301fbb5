"""The encode pipeline: z-slices cast, measured, compressed on threads and written in order.

Each z-slice is cast to the file's type, folded into the header statistics and
compressed on a pool of threads while one more thread writes the previous ones, so
compression and I/O overlap and no whole-array copy is ever made. The bytes written
do not depend on the thread count or the timing.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from napari_mrcz.mrc.checksums import chunk_checksum
from napari_mrcz.mrc.codecs import (
    compress_slice,
)
from napari_mrcz.mrc.disk_hints import reserve_blocks, start_writeback
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import (
    uint4_row_bytes,
)
from napari_mrcz.mrc.stats import SliceStats, shift_for
from napari_mrcz.threads import available_cores, default_threads, slices_per_task

#: Runs of slices waiting to be written at most; bounds memory to a few runs.
MAX_PENDING_WRITES = 4


@dataclass
class Frames:
    """The data to write, seen as a sequence of 2D z-slices."""

    source: Any
    count: int
    shape: tuple[int, int]
    dtype: np.dtype
    slices: int  # python-mrcz's slices per frame; 0 for one array

    def __iter__(self) -> Iterator[np.ndarray]:
        if isinstance(self.source, list):
            for frame in self.source:
                yield from (
                    (np.asarray(frame),)
                    if frame.ndim == 2
                    else (np.asarray(frame[index]) for index in range(frame.shape[0]))
                )
            return
        if isinstance(self.source, LazyMRC):
            # Blocks of one task of slices per thread, decompressed in parallel: one
            # slice at a time would leave the encoding threads waiting for this one.
            threads = default_threads()
            run = threads * slices_per_task(self.source.nbytes // self.count, self.count, threads)
            blocks = RecycledBlocks()
            for start in range(0, self.count, run):
                stop = min(start + run, self.count)
                block = blocks.take(lambda: np.empty((run, *self.shape), dtype=self.dtype))
                yield from self.source.read_slices(start, stop, out=block[: stop - start])
                del block  # only the slices still queued keep it from being reused
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


class RecycledBlocks:
    """Arrays for runs of slices read from a file, reused once nothing refers to them.

    Reading every run into a new array makes the kernel hand over, and zero, fresh
    pages for every byte read: 15% of the CPU time of an ``mrcz compress`` of int8
    movies (perf, 2.4 GB). The slices handed out are views, each keeping its block
    alive while it is queued, encoded or written; a block that nothing but this pool
    refers to any more is free to be read into again.
    """

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        #: The count of a block only this pool holds, measured on a new block by the
        #: same code that checks the others: how many references the list, the local
        #: name and the call add differs between Python versions (3.14 borrows some).
        self._unused_count = 0

    @staticmethod
    def _count(block: np.ndarray) -> int:
        return sys.getrefcount(block)

    def take(self, make: Callable[[], np.ndarray]) -> np.ndarray:
        """A block no slice refers to any more, or a new one from ``make()``."""
        for block in self._blocks:
            if self._count(block) <= self._unused_count:
                return block
        block = make()
        self._blocks.append(block)
        self._unused_count = self._count(block)
        return block


def describe_input(input_image: Any) -> Frames:
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
        return Frames(
            frames, len(frames) * slices, tuple(first.shape[-2:]), np.dtype(first.dtype), slices
        )
    data = input_image
    if not hasattr(data, "shape") or not hasattr(data, "dtype") or data.ndim < 3:
        data = np.asarray(data)
        if data.ndim < 3:
            data = data.reshape((1,) * (3 - data.ndim) + data.shape)
    if data.ndim != 3:
        raise ValueError(f"MRC holds 1 to 3 dimensions, got an array of shape {data.shape}")
    if 0 in data.shape:
        raise ValueError(f"cannot write an array of shape {data.shape}: MRC has no empty axes")
    return Frames(
        data, int(data.shape[0]), tuple(int(n) for n in data.shape[1:]), np.dtype(data.dtype), 0
    )


def pack_uint4(frame: np.ndarray) -> np.ndarray:
    """Pack a 2D array of values 0-15 two pixels a byte, low nibble first."""
    if frame.size and (frame.min() < 0 or frame.max() > 15):
        raise ValueError("uint4 (mode 101) holds values 0 to 15 only")
    frame = frame.astype(np.uint8, copy=False)
    ny, nx = frame.shape
    packed = np.zeros((ny, uint4_row_bytes(nx)), dtype=np.uint8)
    packed[:, : uint4_row_bytes(nx)] = frame[:, 0::2]
    packed[:, : nx // 2] |= frame[:, 1::2] << 4
    return packed


def set_header_stats(header: np.ndarray, stats: SliceStats) -> None:
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


@dataclass
class WrittenSlices:
    """What writing slices found out: statistics, compressed size and chunk checksums."""

    stats: SliceStats
    packed_bytes: int  # 0 for plain MRC
    checksums: list[int]  # CRC32 of each compressed chunk; empty for plain MRC
    chunk_sizes: list[int]  # bytes of each compressed chunk; empty for plain MRC


@dataclass(frozen=True)
class Encoding:
    """How a file's slices are stored, and by how many threads they are encoded.

    Attributes
    ----------
    file_dtype : numpy.dtype
        The pixels' type in the file, with the file's byte order (uint8 for 4-bit).
    compressor : str or None
        The blosc codec (None for plain MRC).
    clevel : int
        Its compression level.
    uint4 : bool
        Pack two 4-bit pixels per byte (mode 101; plain MRC only).
    n_threads : int
        Slices encoded at once.
    """

    file_dtype: np.dtype
    compressor: str | None = None
    clevel: int = 1
    uint4: bool = False
    n_threads: int = 1


class SliceEncoder:
    """What happens to one z-slice before it is written: cast, statistics, compression."""

    def __init__(self, encoding: Encoding) -> None:
        self.file_dtype = encoding.file_dtype
        self.native_dtype = encoding.file_dtype.newbyteorder("=")
        self.compressor = encoding.compressor
        self.clevel = encoding.clevel
        self.uint4 = encoding.uint4

    def __call__(
        self, frame: np.ndarray, shift: float | int
    ) -> tuple[Any, SliceStats, int | None]:
        """The bytes to write, the slice's statistics and, compressed, the chunk's CRC32."""
        native = frame
        if native.dtype != self.native_dtype and not self.uint4:
            native = native.astype(self.native_dtype, order="C")
        elif not native.dtype.isnative:
            native = native.astype(native.dtype.newbyteorder("="), order="C")
        stats = SliceStats(shift)
        stats.add(native)
        if self.uint4:
            payload = pack_uint4(native)
        elif self.file_dtype.isnative or self.file_dtype.itemsize == 1:
            payload = np.ascontiguousarray(native)
        else:
            payload = native.astype(self.file_dtype, order="C")
        if self.compressor is None:
            return payload, stats, None
        payload = compress_slice(payload, self.compressor, self.clevel)
        return payload, stats, chunk_checksum(payload)


class SliceWriter:
    """Encodes runs of z-slices on a pool of threads while one more thread writes them.

    Slices are cast, measured and compressed a run at a time (a few MiB of slices,
    see :func:`napari_mrcz.threads.slices_per_task`), ``n_threads`` runs at once
    (blosc releases the GIL and runs single-threaded per slice, see
    :mod:`napari_mrcz.mrc.codecs`); each slice stays one blosc chunk. Runs are written
    strictly in order while the next ones are encoded, so compression and I/O
    overlap. A few runs at most are in flight, and the slices' statistics are merged
    in slice order: the bytes written are the same whatever the timing and the run
    length. Errors of the background threads surface on the next call.
    """

    def __init__(
        self,
        handle: BinaryIO,
        encoder: SliceEncoder,
        n_threads: int,
        stats: SliceStats | None = None,
        progress: Callable[[int], None] | None = None,
        run_length: int = 1,
    ) -> None:
        self.handle = handle
        self.encoder = encoder
        self.stats = stats
        self.progress = progress
        self.run_length = max(1, int(run_length))
        self.written = 0
        self._end = handle.tell()  # where the next run goes
        #: CRC32 and size of each compressed chunk written, in slice order.
        self.checksums: list[int] = []
        self.chunk_sizes: list[int] = []
        self._run: list[np.ndarray] = []  # slices not yet handed to an encoder
        encoders = n_threads
        if encoder.compressor is None:
            # Plain data: the writer copies every byte the encoders measure, so it
            # needs a core of its own (100 MB of int8 on 2 cores: 19.5 ms with one
            # encoder, 23 ms with two).
            encoders = max(1, min(n_threads, available_cores() - 1))
        self._max_in_flight = encoders + MAX_PENDING_WRITES
        self._encoders = ThreadPoolExecutor(
            max_workers=encoders, thread_name_prefix="napari-mrcz-encode"
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-mrcz-write")
        self._encoding: deque[Future] = deque()
        self._writing: deque[tuple[Future, int]] = deque()

    def add(self, frame: np.ndarray) -> None:
        """Queue one 2D z-slice for encoding and writing."""
        if self.stats is None:
            self.stats = SliceStats(shift_for(frame, self.encoder.native_dtype))
        self._run.append(frame)
        if len(self._run) >= self.run_length:
            self._hand_over_run()

    def _hand_over_run(self) -> None:
        """Give the slices gathered so far to an encoder thread, as one task."""
        if not self._run:
            return
        run, self._run = self._run, []
        self._encoding.append(self._encoders.submit(self._encode_run, run, self.stats.shift))
        while len(self._encoding) + len(self._writing) > self._max_in_flight:
            self._advance()

    def _encode_run(
        self, run: list[np.ndarray], shift: float | int
    ) -> list[tuple[Any, SliceStats, int | None]]:
        """Encode the slices of one run (on an encoder thread)."""
        return [self.encoder(frame, shift) for frame in run]

    def _advance(self) -> None:
        """Hand the oldest encoded run to the writer, or wait for the oldest write."""
        if self._encoding and len(self._writing) < MAX_PENDING_WRITES:
            encoded = self._encoding.popleft().result()
            payloads = []
            for payload, stats, checksum in encoded:
                self.stats.merge(stats)
                if checksum is not None:
                    self.checksums.append(checksum)
                    self.chunk_sizes.append(len(payload))
                payloads.append(payload)
            self._writing.append((self._writer.submit(self._append, payloads), len(payloads)))
        else:
            future, count = self._writing.popleft()
            future.result()
            self.written += count
            if self.progress is not None:
                self.progress(self.written)

    def _append(self, payloads: list[Any]) -> None:
        """Write one run's bytes after the previous ones (on the writer thread)."""
        length = sum(memoryview(payload).nbytes for payload in payloads)
        reserve_blocks(self.handle, self._end, length)
        for payload in payloads:
            write_fully(self.handle, payload)
        start_writeback(self.handle, self._end, length)
        self._end += length

    def finish(self) -> None:
        """Wait for every queued slice; raise the first error a background thread met."""
        try:
            self._hand_over_run()
            while self._encoding or self._writing:
                self._advance()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the slices not yet written and stop the threads."""
        self._run = []
        for future in (*self._encoding, *(future for future, _ in self._writing)):
            future.cancel()
        self._encoders.shutdown(wait=True)
        self._writer.shutdown(wait=True)


def write_slices(
    handle: BinaryIO,
    frames: Frames,
    encoding: Encoding,
    stats: SliceStats | None = None,
    progress: Callable[[int], None] | None = None,
) -> WrittenSlices:
    """Write every slice of ``frames``; return what the header needs to know of them.

    The statistics are merged into ``stats`` when given. ``progress(k)`` is called
    once the first k slices are written, after each run of slices (a few MiB);
    whatever it raises stops the write. Each run starts for the disk once written
    (see :mod:`napari_mrcz.mrc.disk_hints`).
    """
    slice_nbytes = int(np.prod(frames.shape)) * encoding.file_dtype.itemsize
    writer = SliceWriter(
        handle,
        SliceEncoder(encoding),
        encoding.n_threads,
        stats,
        progress,
        run_length=slices_per_task(slice_nbytes, frames.count, encoding.n_threads),
    )
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    return WrittenSlices(
        writer.stats if writer.stats is not None else SliceStats(),
        sum(writer.chunk_sizes),
        writer.checksums,
        writer.chunk_sizes,
    )
