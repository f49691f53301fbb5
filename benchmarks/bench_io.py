"""Write and read throughput of napari-mrcz against python-mrcz 0.6.0 and mrcfile.

Run it standalone, from the repository root::

    .venv/bin/python benchmarks/bench_io.py [--size-mb 100] [--repeat 5] [--threads 2]
                                            [--particles 1024] [--out DIR] [--cold]
                                            [--skip-lazy] [--skip-dm]

What is measured, in one run and on the same seeded data:

* Datasets (1 MB = 10**6 bytes):

  - ``int8-movie``: a counting-mode movie, int8 Poisson(1) counts in 4096 x 4096 frames
    (about ``--size-mb`` MB);
  - ``float32-gain``: gain-corrected frames, Poisson(1) counts times a fixed per-pixel
    gain reference of values near 1 (normal, mean 1, sd 0.05), float32, 2048 x 2048
    (about ``--size-mb`` MB);
  - ``float32-particles``: a particle stack, ``--particles`` boxes of 256 x 256 float32
    (268 MB for the default 1024), normalised like RELION's particles: Gaussian noise
    of mean 0 and sd 1 plus a faint smooth blob in the centre (a Gaussian of peak 0.5
    and sd 32 pixels). Noise dominates, so blosc packs it little (about 1.1x), as it
    does real particle stacks;
  - ``float32-frames``: the same boxes laid 8 x 8 side by side into 2048 x 2048 frames
    (``--particles`` / 64 of them): the same values and the same number of bytes as
    the particle stack, in 64 times fewer, larger z-slices. ``--particles 0`` leaves
    out both.

* Codecs: plain MRC (``none``), ``zstd`` clevel 1 and ``lz4`` clevel 9, all bit-shuffled
  blosc chunks, one per z-slice. ``--threads`` blosc threads for both MRCZ libraries
  (their ``n_threads`` keyword), for writing and for reading.

* Libraries: napari-mrcz (``napari_mrcz.writeMRC`` / ``readMRC``), python-mrcz 0.6.0
  (``mrcz.writeMRC`` / ``readMRC``, default keywords otherwise, so ``quickStats=True``:
  it computes header statistics from the first frame only, where napari-mrcz and
  mrcfile compute exact ones over all the data), python-mrcz with ``quickStats=False``
  (``pymrcz-exact``: exact min, max and mean like ours; it still writes RMS 0),
  mrcfile (``mrcfile.write`` / ``mrcfile.read``; plain MRC only), napari-mrcz with
  its fsync turned off (``ours-no-fsync``) and python-mrcz followed by an fsync of its
  file, timed (``pymrcz-fsync``): napari-mrcz flushes every new file to disk before
  renaming it onto its name (durable saves), the others return with the data in the
  page cache. The targets are printed for three pairings: as each library comes,
  both into the page cache, and both durable.

* A reference without any file, ``codec-alone`` (compressed codecs only): python-blosc
  by itself, the z-slices shared out over a pool of ``--threads`` Python threads (one
  blosc thread each, as napari-mrcz shares them), the GIL released and the chunk
  settings of the MRCZ files (napari-mrcz's block size
  :data:`napari_mrcz.mrc.codecs.BLOCK_SIZE`, capped by blosc at the slice size,
  bit-shuffle, typesize of the pixel). Its "write" compresses each z-slice into one
  new ``bytes`` chunk, its "read" decompresses the chunks into one new array
  (``np.empty`` + ``blosc.decompress_ptr``); its "file MB" is the sum of the chunks.
  A dataset of one slice therefore runs on one thread.

* Each library runs as it would run alone: in a fresh process of its own for every
  round (python-mrcz turns on python-blosc's GIL release when imported, which would
  otherwise change how our threads run in the same process). Data is generated once
  and handed over as ``.npy`` files. napari-mrcz loads its compiled statistics kernel
  before timing (printed apart: later saves in a user's session have it).

* Throughput is the uncompressed array size divided by the wall time of one call; the
  best (shortest) of ``--repeat`` rounds of :data:`INNER_REPEAT` calls each is kept
  (the first call of a process pays for page faults and thread start-up, as the
  first save of a session does). Rounds are interleaved across
  libraries (round 1 of every library, then round 2, ...), so that drifting machine
  load hits all of them alike. Every read is checked against the data, and each
  library must read the other's MRCZ files (checked once, untimed, in another
  process). napari-mrcz also writes over its own existing file once per round: the
  cost of a rename over a file (ext4 flushes it) is printed apart.

* Targets of the particle stack and of the codec, printed after the throughput tables,
  each with PASS or FAIL (the ``TARGET`` lines at the end repeat them):

  - particle stack, napari-mrcz against python-mrcz, both durable: our write against
    ``pymrcz-fsync``, our read against python-mrcz's read, for every codec; each at
    least 1.0x and their geometric mean at least 1.5x;
  - particle stack per byte against 2048^2 frames: napari-mrcz's throughput on
    ``float32-particles`` over its throughput on ``float32-frames`` (same codec,
    writes and reads apart), at least 0.8x; python-mrcz and the codec alone are
    shown beside it, without a target;
  - napari-mrcz against the codec alone, every dataset and compressed codec: our
    write (durable, and without our fsync) and read throughput over the codec's;
    compressed writes of napari-mrcz (durable, as users call it) at least 0.75x of
    the codec alone on the 4096 x 4096 int8 movie (not judged with another
    ``--int8-side``).

Page cache, identical for every library:

* before each write the previous output file is deleted (untimed), so no write pays for
  truncating or replacing an old file;
* after each write the file is ``fsync``-ed (untimed), so no dirty pages from one run
  are flushed during the next timed call; write times are therefore "into the page
  cache", as a user sees them, without the disk flush;
* each read comes right after its write: the file is in the page cache (warm read).
  With ``--cold`` the file is instead evicted from the page cache with
  ``posix_fadvise(POSIX_FADV_DONTNEED)`` after the fsync, so reads come from disk.

Further sections:

* lazy access: a >= 4 GB logical MRCZ (1000 mostly constant 2048 x 2048 float32 frames,
  zstd clevel 1), written by ``napari_mrcz.writeMRC`` from an array-like that makes
  each frame in ``__getitem__``; we time ``napari_mrcz.open_lazy`` (first open and best
  of ``--repeat``), report the increase of peak RSS (VmHWM, reset through
  ``/proc/self/clear_refs``) and the tracemalloc peak while opening, and the time to
  fetch the last frame (uncached, then cached);
* peak memory: tracemalloc peak of a zstd write and a zstd read of the int8 movie with
  both MRCZ libraries, relative to the array size. tracemalloc sees numpy buffers and
  Python objects (blosc's output ``bytes`` included), not memory maps or C-internal
  scratch buffers. A read's peak includes the returned array, so 1.00 is a read with
  no overhead; a write's peak excludes the caller's array, so 0.00 is a write with no
  overhead.

* DigitalMicrograph (skipped with ``--skip-dm``, printed last): open + read of the larger
  real DM files in ``../shared/data`` (or ``$NAPARI_MRCZ_TEST_DATA``) with
  ``napari_mrcz.read_dm``, ncempy (``ncempy.io.dm.dmReader``) and rosettasciio
  (``rsciio.digitalmicrograph.file_reader``), best of ``max(--repeat, 20)``, each
  checked against ours; and the lazy open (``read_dm``) of a 4.3 GB sparse DM3 movie.

Files go to a fresh temporary folder inside ``--out`` (default: the system temporary
folder), removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import blosc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.helpers
import napari_mrcz

from tests.helpers import poisson1_frame

MB = 1e6
SEED = 20261125
OURS, THEIRS, MRCFILE = "napari-mrcz", "python-mrcz", "mrcfile"
#: napari-mrcz with its fsync before the rename turned off: what durable saves cost.
OURS_NO_FSYNC = "ours-no-fsync"
#: The benchmark's own flush (untimed), whatever a worker does to os.fsync.
FSYNC = os.fsync
#: python-mrcz with quickStats=False: exact header statistics, as we and mrcfile write.
THEIRS_EXACT = "pymrcz-exact"
#: python-mrcz followed by an fsync of its file (timed): as durable as our saves.
THEIRS_DURABLE = "pymrcz-fsync"
#: python-blosc alone, chunk by chunk in memory: no file, no header, no statistics.
CODEC_ALONE = "codec-alone"
#: Timed calls of each case in one process; the best is kept.
INNER_REPEAT = 3
CODECS: list[tuple[str | None, int]] = [(None, 1), ("zstd", 1), ("lz4", 9)]
LAZY_FRAMES, LAZY_SIDE = 1000, 2048
PARTICLES, PARTICLE_FRAMES = "float32-particles", "float32-frames"
#: Side of a particle box, and of the frames the boxes are laid into (8 x 8 per frame).
PARTICLE_SIDE, PARTICLE_FRAME_SIDE = 256, 2048
BOXES_PER_FRAME = (PARTICLE_FRAME_SIDE // PARTICLE_SIDE) ** 2
#: The issue's targets: on the particle stack, napari-mrcz over python-mrcz with both
#: durable (each write and read, and their geometric mean); the particle stack's
#: throughput over the frames' of the same bytes; compressed writes over the codec
#: alone on int8 frames of CODEC_TARGET_SIDE.
PARTICLE_CASE_TARGET, PARTICLE_MEAN_TARGET = 1.0, 1.5
PER_BYTE_TARGET = 0.8
CODEC_ALONE_TARGET, CODEC_TARGET_SIDE = 0.75, 4096


# --------------------------------------------------------------------------- data


def make_datasets(
    size_mb: float, int8_side: int, float_side: int, particles: int
) -> dict[str, np.ndarray]:
    """The seeded datasets: two of about ``size_mb`` MB, and the particle stack of
    ``particles`` boxes with its frames of the same bytes (none for 0 particles)."""
    rng = np.random.default_rng(SEED)
    nz_int8 = max(1, round(size_mb * MB / (int8_side * int8_side)))
    movie = np.empty((nz_int8, int8_side, int8_side), dtype=np.int8)
    for index in range(nz_int8):
        movie[index] = poisson1_frame(rng, (int8_side, int8_side))

    nz_float = max(1, round(size_mb * MB / (float_side * float_side * 4)))
    gain = np.clip(rng.normal(1.0, 0.05, (float_side, float_side)), 0.8, 1.2).astype(np.float32)
    gained = np.empty((nz_float, float_side, float_side), dtype=np.float32)
    for index in range(nz_float):
        np.multiply(poisson1_frame(rng, (float_side, float_side)), gain, out=gained[index])
    datasets = {"int8-movie": movie, "float32-gain": gained}
    if particles:
        boxes = particle_stack(rng, particles, PARTICLE_SIDE)
        datasets[PARTICLES] = boxes
        datasets[PARTICLE_FRAMES] = tile_boxes(boxes, PARTICLE_FRAME_SIDE)
    return datasets


def particle_stack(rng: np.random.Generator, count: int, side: int) -> np.ndarray:
    """``count`` float32 particle boxes of ``side`` x ``side``, normalised like RELION's.

    Each is Gaussian noise of mean 0 and sd 1 plus the same faint smooth blob in the
    centre (a Gaussian of peak 0.5 and sd ``side`` / 8): the background outside the
    blob has mean 0 and sd 1, and the noise dominates as in real particle images.
    """
    axis = np.arange(side, dtype=np.float32) - (side - 1) / 2
    radius_squared = axis[:, np.newaxis] ** 2 + axis[np.newaxis, :] ** 2
    blob = 0.5 * np.exp(-radius_squared / (2 * (side / 8) ** 2))
    boxes = rng.standard_normal((count, side, side), dtype=np.float32)
    boxes += blob.astype(np.float32)
    return boxes


def tile_boxes(boxes: np.ndarray, frame_side: int) -> np.ndarray:
    """The boxes laid side by side, row by row, into frames of ``frame_side`` squared.

    Their number must fill whole frames; the frames hold the boxes' values, all of them.
    """
    count, side, _ = boxes.shape
    per_row = frame_side // side
    frames = count // per_row**2
    tiled = boxes.reshape(frames, per_row, per_row, side, side).swapaxes(2, 3)
    return tiled.reshape(frames, frame_side, frame_side)  # a copy, C-contiguous


class SyntheticFrames:
    """A (nz, ny, nx) float32 array-like that makes each frame when indexed.

    Frame k is 1.0 everywhere except its first row, which holds k: almost constant,
    so it compresses to little, and each frame can still be told apart.
    """

    def __init__(self, nz: int, ny: int, nx: int) -> None:
        self.shape = (nz, ny, nx)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < self.shape[0]:
            raise IndexError(index)
        frame = np.ones(self.shape[1:], dtype=self.dtype)
        frame[0] = index
        return frame


# ---------------------------------------------------------------------- libraries


def write_ours(data: np.ndarray, path: str, codec: str | None, clevel: int, threads: int) -> None:
    napari_mrcz.writeMRC(data, path, compressor=codec, clevel=clevel, n_threads=threads)


def write_theirs(
    data: np.ndarray, path: str, codec: str | None, clevel: int, threads: int
) -> None:
    import mrcz

    mrcz.writeMRC(data, path, compressor=codec, clevel=clevel, n_threads=threads)


def write_theirs_durable(
    data: np.ndarray, path: str, codec: str | None, clevel: int, threads: int
) -> None:
    write_theirs(data, path, codec, clevel, threads)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        FSYNC(descriptor)
    finally:
        os.close(descriptor)


def write_theirs_exact(
    data: np.ndarray, path: str, codec: str | None, clevel: int, threads: int
) -> None:
    import mrcz

    mrcz.writeMRC(data, path, compressor=codec, clevel=clevel, n_threads=threads, quickStats=False)


def write_mrcfile(
    data: np.ndarray, path: str, codec: str | None, clevel: int, threads: int
) -> None:
    import mrcfile

    assert codec is None
    mrcfile.write(path, data, overwrite=True)


def read_ours(path: str, threads: int) -> np.ndarray:
    return napari_mrcz.readMRC(path, n_threads=threads)[0]


def read_theirs(path: str, threads: int) -> np.ndarray:
    import mrcz

    return mrcz.readMRC(path, n_threads=threads)[0]


def read_mrcfile(path: str, threads: int) -> np.ndarray:
    import mrcfile

    return mrcfile.read(path)


def compress_slices(
    data: np.ndarray, codec: str, clevel: int, pool: ThreadPoolExecutor
) -> list[bytes]:
    """Each z-slice of the C-contiguous ``data`` as one bit-shuffled blosc chunk.

    As the MRCZ files hold them (see :func:`napari_mrcz.mrc.codecs.compress_slice`),
    slices spread over the ``pool``'s threads (a 256 x 256 slice is one blosc block,
    which blosc's own threads cannot share out), the GIL released inside blosc.
    """

    def compress(frame: np.ndarray) -> bytes:
        return blosc.compress_ptr(
            frame.ctypes.data,
            frame.size,
            typesize=data.dtype.itemsize,
            clevel=clevel,
            shuffle=blosc.BITSHUFFLE,
            cname=codec,
        )

    return list(pool.map(compress, data))


def decompress_slices(
    chunks: list[bytes], shape: tuple[int, ...], dtype: np.dtype, pool: ThreadPoolExecutor
) -> np.ndarray:
    """The chunks of :func:`compress_slices` decompressed into one new array."""
    image = np.empty(shape, dtype=dtype)
    list(
        pool.map(
            lambda chunk, frame: blosc.decompress_ptr(chunk, frame.ctypes.data), chunks, image
        )
    )
    return image


LIBRARIES: dict[str, tuple[Callable[..., None], Callable[..., np.ndarray]]] = {
    OURS: (write_ours, read_ours),
    OURS_NO_FSYNC: (write_ours, read_ours),
    THEIRS: (write_theirs, read_theirs),
    THEIRS_EXACT: (write_theirs_exact, read_theirs),
    THEIRS_DURABLE: (write_theirs_durable, read_theirs),
    MRCFILE: (write_mrcfile, read_mrcfile),
}


# ------------------------------------------------------------------------ helpers


def codec_name(codec: str | None, clevel: int) -> str:
    return "none" if codec is None else f"{codec}{clevel}"


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def settle(path: str, cold: bool) -> None:
    """fsync ``path``; with ``cold``, also evict it from the page cache."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        FSYNC(descriptor)
        if cold:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def same(image: np.ndarray, data: np.ndarray) -> bool:
    """Equal data; readers drop the z axis of a single image, so compare sizes first."""
    return image.size == data.size and np.array_equal(np.reshape(image, data.shape), data)


def remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def proc_status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def traced_peak(function: Callable[[], Any]) -> int:
    """tracemalloc peak (bytes) while running ``function``; its result is dropped after."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = function()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(value) for value in values) / len(values))


def verdict(value: float, target: float) -> str:
    return "PASS" if value >= target else "FAIL"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


# ------------------------------------------------------------------ measurements


@dataclass
class Result:
    dataset: str
    codec: str
    library: str
    nbytes: int
    write_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    overwrite_s: list[float] = field(default_factory=list)
    file_size: int = 0

    @property
    def write_mbs(self) -> float:
        return self.nbytes / MB / min(self.write_s)

    @property
    def read_mbs(self) -> float:
        return self.nbytes / MB / min(self.read_s)

    @property
    def overwrite_mbs(self) -> float | None:
        return self.nbytes / MB / min(self.overwrite_s) if self.overwrite_s else None


def cases() -> list[tuple[str | None, int, list[str]]]:
    """(codec, clevel, libraries) of every throughput case."""
    return [
        (
            codec,
            clevel,
            [OURS, OURS_NO_FSYNC, THEIRS, THEIRS_DURABLE, THEIRS_EXACT]
            + ([MRCFILE] if codec is None else [CODEC_ALONE]),
        )
        for codec, clevel in CODECS
    ]


def saved_datasets(data_dir: str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, data) of every dataset saved as ``.npy`` in ``data_dir``, by name."""
    for name in sorted(os.listdir(data_dir)):
        if name.endswith(".npy"):
            yield name[: -len(".npy")], np.load(os.path.join(data_dir, name))


def run_library(library: str, data_dir: str, threads: int, cold: bool) -> list[dict]:
    """One round of every case for one library, in this (fresh) process.

    Each library runs in a process of its own, as it would run alone: python-mrcz
    turns on python-blosc's GIL release when imported, which would otherwise change
    how our threads run. Ours waits for its compiled statistics kernel first (a
    user's later saves have it; the first-save cost is printed apart). napari-mrcz
    also times a write over its own existing file, which costs a flush on ext4. The
    codec alone, which writes no file, runs :func:`run_codec_alone` instead.
    """
    if library == CODEC_ALONE:
        return run_codec_alone(data_dir, threads)
    write, read = LIBRARIES[library]
    rows = []
    if library == OURS_NO_FSYNC:  # the other libraries flush nothing before returning
        os.fsync = lambda descriptor: None
    if library in (OURS, OURS_NO_FSYNC):
        from napari_mrcz.mrc import stats_kernels

        seconds, kernel = timed(stats_kernels.wait_for_kernel)
        rows.append({"kernel_s": seconds, "kernel": kernel is not None})
    for dataset, data in saved_datasets(data_dir):
        for codec, clevel, libraries in cases():
            if library not in libraries:
                continue
            path = os.path.join(
                data_dir,
                f"{dataset}-{codec_name(codec, clevel)}-{library}.mrc" + ("z" * bool(codec)),
            )
            write_s, read_s = math.inf, math.inf
            for _ in range(INNER_REPEAT):
                remove(path)
                seconds, _ = timed(partial(write, data, path, codec, clevel, threads))
                write_s = min(write_s, seconds)
                settle(path, cold)
                seconds, image = timed(partial(read, path, threads))
                read_s = min(read_s, seconds)
                if not same(image, data):
                    raise AssertionError(
                        f"{library} read back different data ({dataset}, {codec})"
                    )
                del image
            row = {
                "dataset": dataset,
                "codec": codec_name(codec, clevel),
                "write_s": write_s,
                "read_s": read_s,
                "file_size": os.path.getsize(path),
            }
            if library == OURS:
                row["overwrite_s"], _ = timed(partial(write, data, path, codec, clevel, threads))
            rows.append(row)
            if codec is None or library not in (OURS, THEIRS):
                remove(path)
    return rows


def run_codec_alone(data_dir: str, threads: int) -> list[dict]:
    """One round of the codec alone on every dataset, in this (fresh) process.

    python-blosc in a pool of ``threads`` threads (one blosc thread each), the GIL
    released and the block size of napari-mrcz's chunks; each "write" compresses every
    z-slice into a chunk,
    each "read" decompresses the chunks into a new array, checked against the data.
    """
    from napari_mrcz.mrc.codecs import BLOCK_SIZE

    blosc.set_nthreads(1)  # one per pool thread: the slices are shared out instead
    blosc.set_releasegil(True)
    blosc.set_blocksize(BLOCK_SIZE)
    pool = ThreadPoolExecutor(max_workers=threads)
    rows = []
    for dataset, data in saved_datasets(data_dir):
        for codec, clevel, libraries in cases():
            if CODEC_ALONE not in libraries:
                continue
            assert codec is not None
            compress_s, decompress_s = math.inf, math.inf
            for _ in range(INNER_REPEAT):
                seconds, chunks = timed(partial(compress_slices, data, codec, clevel, pool))
                compress_s = min(compress_s, seconds)
                seconds, image = timed(
                    partial(decompress_slices, chunks, data.shape, data.dtype, pool)
                )
                decompress_s = min(decompress_s, seconds)
                if not np.array_equal(image, data):
                    raise AssertionError(f"blosc gave back different data ({dataset}, {codec})")
                compressed_size = sum(len(chunk) for chunk in chunks)
                del chunks, image
            rows.append(
                {
                    "dataset": dataset,
                    "codec": codec_name(codec, clevel),
                    "write_s": compress_s,
                    "read_s": decompress_s,
                    "file_size": compressed_size,
                }
            )
    pool.shutdown()
    return rows


def bench_throughput(
    datasets: dict[str, np.ndarray], folder: str, repeat: int, threads: int, cold: bool
) -> tuple[list[Result], list[float]]:
    """Every case, each library in a fresh process per round; rounds interleave libraries.

    Returns the results and the seconds napari-mrcz took to load its compiled kernel.
    """
    data_dir = os.path.join(folder, "data")
    os.makedirs(data_dir, exist_ok=True)
    for dataset, data in datasets.items():
        np.save(os.path.join(data_dir, dataset + ".npy"), data)
    rows: dict[tuple[str, str, str], Result] = {}
    kernel_s: list[float] = []
    libraries = [OURS, OURS_NO_FSYNC, THEIRS, THEIRS_DURABLE, THEIRS_EXACT, MRCFILE, CODEC_ALONE]
    for run in range(repeat):
        for library in libraries:
            command = [sys.executable, __file__, "--worker", library, "--out", data_dir]
            command += ["--threads", str(threads)] + (["--cold"] if cold else [])
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            for row in json.loads(output):
                if "kernel_s" in row:
                    kernel_s.append(row["kernel_s"])
                    continue
                key = (row["dataset"], row["codec"], library)
                nbytes = datasets[row["dataset"]].nbytes
                result = rows.setdefault(key, Result(*key, nbytes))
                result.write_s.append(row["write_s"])
                result.read_s.append(row["read_s"])
                if "overwrite_s" in row:
                    result.overwrite_s.append(row["overwrite_s"])
                result.file_size = row["file_size"]
        print(f"  done: round {run + 1} of {repeat}", flush=True)
    for dataset in datasets:  # each MRCZ library reads the other's files
        for codec, clevel, _ in cases():
            if codec is None:
                continue
            name = codec_name(codec, clevel)
            ours = os.path.join(data_dir, f"{dataset}-{name}-{OURS}.mrcz")
            theirs = os.path.join(data_dir, f"{dataset}-{name}-{THEIRS}.mrcz")
            command = [sys.executable, "-c", CROSS_READ, ours, theirs, str(threads)]
            command.append(os.path.join(data_dir, dataset + ".npy"))
            subprocess.run(command, check=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    order = {(d, c): i for i, (d, c) in enumerate(dict.fromkeys((k[0], k[1]) for k in rows))}
    results = sorted(
        rows.values(), key=lambda r: (order[(r.dataset, r.codec)], libraries.index(r.library))
    )
    return results, kernel_s


#: Checked once, untimed: python-mrcz reads our file and we read python-mrcz's.
CROSS_READ = """
import sys, numpy as np, mrcz, napari_mrcz
ours, theirs, threads, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), np.load(sys.argv[4])
for image in (mrcz.readMRC(ours, n_threads=threads)[0], napari_mrcz.readMRC(theirs)[0]):
    assert image.size == data.size and np.array_equal(image.reshape(data.shape), data)
"""


def bench_lazy(folder: str, repeat: int, threads: int) -> dict[str, Any]:
    frames = SyntheticFrames(LAZY_FRAMES, LAZY_SIDE, LAZY_SIDE)
    path = os.path.join(folder, "lazy-large.mrcz")
    write_s, _ = timed(
        lambda: napari_mrcz.writeMRC(frames, path, compressor="zstd", clevel=1, n_threads=threads)
    )
    settle(path, cold=False)
    out: dict[str, Any] = {
        "logical": frames.nbytes,
        "file_size": os.path.getsize(path),
        "write_s": write_s,
    }

    gc.collect()
    rss_before = proc_status_kb("VmRSS")
    hwm_reset = reset_peak_rss()
    hwm_before = proc_status_kb("VmHWM") if hwm_reset else rss_before
    start = time.perf_counter()
    lazy = napari_mrcz.open_lazy(path)
    out["first_open_s"] = time.perf_counter() - start
    after = proc_status_kb("VmHWM") if hwm_reset else proc_status_kb("VmRSS")
    out["rss_kind"] = "peak RSS (VmHWM)" if hwm_reset else "RSS (VmRSS)"
    out["rss_increase"] = (
        None if after is None or hwm_before is None else ((after - hwm_before) * 1024)
    )
    try:
        if lazy.shape != frames.shape or lazy.dtype != np.float32:
            raise AssertionError(f"open_lazy gives {lazy.shape} {lazy.dtype}")
        out["last_s"], last = timed(lambda: lazy[-1])
        if not (np.all(last[0] == LAZY_FRAMES - 1) and np.all(last[1:] == 1.0)):
            raise AssertionError("the last frame of the large file reads back wrong")
        out["last_cached_s"], _ = timed(lambda: lazy[-1])
        out["mid_s"], _ = timed(lambda: lazy[LAZY_FRAMES // 2])
    finally:
        lazy.close()

    opens = []
    for _ in range(repeat):
        seconds, lazy = timed(lambda: napari_mrcz.open_lazy(path))
        lazy.close()
        opens.append(seconds)
    out["open_s"] = min(opens)

    def open_and_close() -> None:
        with napari_mrcz.open_lazy(path) as handle:
            handle.shape  # noqa: B018 (touch it, as napari does)

    out["open_traced_peak"] = traced_peak(open_and_close)
    remove(path)
    return out


def bench_memory(data: np.ndarray, folder: str, threads: int) -> dict[str, dict[str, int]]:
    path_ours = os.path.join(folder, "memory-ours.mrcz")
    path_theirs = os.path.join(folder, "memory-theirs.mrcz")
    peaks: dict[str, dict[str, int]] = {}
    for lib, path in ((OURS, path_ours), (THEIRS, path_theirs)):
        write, read = LIBRARIES[lib]
        remove(path)
        peaks[lib] = {
            "write": traced_peak(lambda w=write, p=path: w(data, p, "zstd", 1, threads)),
            "read": traced_peak(lambda r=read, p=path: r(p, threads)),
        }
        remove(path)
    return peaks


# ------------------------------------------------------------------------ output


def print_table(results: list[Result]) -> None:
    header = (
        f"{'dataset':<17} {'codec':<6} {'library':<12} {'write MB/s':>10} "
        f"{'read MB/s':>10} {'file MB':>9} {'write':>7} {'read':>7} {'size':>7}"
    )
    print_header(header, f"{'':<59}{'--- ours/python-mrcz ---':>33}")
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    for result in results:
        theirs = by_key.get((result.dataset, result.codec, THEIRS))
        ratios = ("-", "-", "-")
        if result.library in (OURS, OURS_NO_FSYNC) and theirs is not None:
            ratios = (
                ratio(result.write_mbs, theirs.write_mbs),
                ratio(result.read_mbs, theirs.read_mbs),
                ratio(result.file_size, theirs.file_size),
            )
        print(
            f"{result.dataset:<17} {result.codec:<6} {result.library:<12} "
            f"{result.write_mbs:>10.0f} {result.read_mbs:>10.0f} "
            f"{result.file_size / MB:>9.2f} {ratios[0]:>7} {ratios[1]:>7} {ratios[2]:>7}"
        )


def print_targets(results: list[Result]) -> None:
    """The figures with speed targets: geometric mean and the worst case.

    Three pairings: our durable saves against python-mrcz as it is (which leaves its
    data in the page cache), both in the page cache (our fsync off), and both durable
    (python-mrcz followed by an fsync). Reads are the same call in all three.
    """
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    pairings = [
        (OURS, THEIRS, "durable napari-mrcz/python-mrcz"),
        (OURS_NO_FSYNC, THEIRS, "both into the page cache"),
        (OURS, THEIRS_DURABLE, "both durable (python-mrcz + fsync)"),
    ]
    for library, reference, label in pairings:
        ratios = []
        for (dataset, codec, name), ours in by_key.items():
            if name != library:
                continue
            theirs = by_key[(dataset, codec, reference)]
            plain_theirs = by_key[(dataset, codec, THEIRS)]
            ratios += [
                (f"{dataset} {codec} write", ours.write_mbs / theirs.write_mbs),
                (f"{dataset} {codec} read", ours.read_mbs / plain_theirs.read_mbs),
            ]
        mean = geometric_mean([value for _, value in ratios])
        worst = min(ratios, key=lambda item: item[1])
        print(
            f"SUMMARY {label}, {len(ratios)} write/read cases: "
            f"geometric mean {mean:.2f}x, lowest {worst[1]:.2f}x ({worst[0]})"
        )


def print_overwrite(results: list[Result]) -> None:
    """napari-mrcz writing over its own existing file against writing a new one."""
    print("\nnapari-mrcz, new file against a rename over the existing one (ext4 flushes it):")
    for result in results:
        if result.library == OURS and result.overwrite_mbs:
            print(
                f"  {result.dataset:<17} {result.codec:<6} new {result.write_mbs:6.0f} MB/s, "
                f"over an existing file {result.overwrite_mbs:6.0f} MB/s "
                f"({ratio(result.overwrite_mbs, result.write_mbs)})"
            )


def print_summary(results: list[Result]) -> None:
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    for (dataset, codec, library), ours in by_key.items():
        if library != OURS:
            continue
        theirs = by_key[(dataset, codec, THEIRS)]
        exact = by_key[(dataset, codec, THEIRS_EXACT)]
        no_fsync = by_key[(dataset, codec, OURS_NO_FSYNC)]
        durable = by_key[(dataset, codec, THEIRS_DURABLE)]
        print(
            f"SUMMARY {dataset:<17} {codec:<6} napari-mrcz/python-mrcz: "
            f"write {ratio(ours.write_mbs, theirs.write_mbs)} "
            f"({ratio(ours.write_mbs, exact.write_mbs)} against quickStats=False; "
            f"{ratio(no_fsync.write_mbs, theirs.write_mbs)} without our fsync; "
            f"{ratio(ours.write_mbs, durable.write_mbs)} against python-mrcz + fsync), "
            f"read {ratio(ours.read_mbs, theirs.read_mbs)}, "
            f"file size {ratio(ours.file_size, theirs.file_size)} "
            f"(ours {ours.write_mbs:.0f}/{ours.read_mbs:.0f} MB/s, "
            f"python-mrcz {theirs.write_mbs:.0f}/{theirs.read_mbs:.0f} MB/s write/read)"
        )


#: (case, ratio) pairs measured against one target.
Ratios = list[tuple[str, float]]


def print_header(header: str, groups: str = "") -> None:
    """A table's column header, then ``groups`` (a line naming groups of columns), underlined."""
    print(header)
    if groups:
        print(groups)
    print("-" * len(header))


def print_particles_against_theirs(results: list[Result]) -> Ratios:
    """The particle stack, napari-mrcz against python-mrcz with both durable.

    Our writes against python-mrcz followed by an fsync, our reads against
    python-mrcz's read (the same call whatever wrote the file), as in the "both
    durable" pairing of :func:`print_targets`. Returns the (case, ratio) pairs.
    """
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    print(
        f"\nparticle stack ({PARTICLES}), napari-mrcz against python-mrcz, both durable "
        f"(write against {THEIRS_DURABLE}); target >= {PARTICLE_CASE_TARGET:.2f}x each, "
        f"geometric mean >= {PARTICLE_MEAN_TARGET:.2f}x:"
    )
    print_header(
        f"{'codec':<6} {'write MB/s ours':>15} {'theirs':>7} {'ratio':>7} {'':>4}  "
        f"{'read MB/s ours':>14} {'theirs':>7} {'ratio':>7} {'':>4}"
    )
    ratios: Ratios = []
    for codec, clevel in CODECS:
        name = codec_name(codec, clevel)
        ours = by_key[(PARTICLES, name, OURS)]
        durable = by_key[(PARTICLES, name, THEIRS_DURABLE)]
        theirs = by_key[(PARTICLES, name, THEIRS)]
        write = ours.write_mbs / durable.write_mbs
        read = ours.read_mbs / theirs.read_mbs
        ratios += [(f"{name} write", write), (f"{name} read", read)]
        print(
            f"{name:<6} {ours.write_mbs:>15.0f} {durable.write_mbs:>7.0f} {write:>6.2f}x "
            f"{verdict(write, PARTICLE_CASE_TARGET):>4}  {ours.read_mbs:>14.0f} "
            f"{theirs.read_mbs:>7.0f} {read:>6.2f}x {verdict(read, PARTICLE_CASE_TARGET):>4}"
        )
    mean = geometric_mean([value for _, value in ratios])
    print(
        f"geometric mean of the {len(ratios)} ratios {mean:.2f}x "
        f"{verdict(mean, PARTICLE_MEAN_TARGET)}"
    )
    return ratios


def print_per_byte(results: list[Result]) -> Ratios:
    """Throughput on the particle stack over throughput on frames of the same bytes.

    For napari-mrcz (the target), with python-mrcz and the codec alone beside it.
    Returns napari-mrcz's (case, ratio) pairs.
    """
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    print(
        f"\nparticle stack per byte vs {PARTICLE_FRAME_SIDE}^2 frames ({PARTICLES} MB/s over "
        f"{PARTICLE_FRAMES} MB/s, the same bytes); target >= {PER_BYTE_TARGET:.2f}x "
        "for napari-mrcz:"
    )
    print_header(
        f"{'library':<12} {'codec':<6} {'write MB/s particles':>20} {'frames':>7} "
        f"{'ratio':>7} {'':>4}  {'read MB/s particles':>19} {'frames':>7} {'ratio':>7} {'':>4}"
    )
    ours_ratios: Ratios = []
    for library in (OURS, THEIRS, CODEC_ALONE):
        for codec, clevel in CODECS:
            name = codec_name(codec, clevel)
            particles = by_key.get((PARTICLES, name, library))
            frames = by_key.get((PARTICLE_FRAMES, name, library))
            if particles is None or frames is None:
                continue  # the codec alone has no plain case
            write = particles.write_mbs / frames.write_mbs
            read = particles.read_mbs / frames.read_mbs
            judged = library == OURS
            if judged:
                ours_ratios += [(f"{name} write", write), (f"{name} read", read)]
            print(
                f"{library:<12} {name:<6} {particles.write_mbs:>20.0f} {frames.write_mbs:>7.0f} "
                f"{write:>6.2f}x {verdict(write, PER_BYTE_TARGET) if judged else '':>4}  "
                f"{particles.read_mbs:>19.0f} {frames.read_mbs:>7.0f} {read:>6.2f}x "
                f"{verdict(read, PER_BYTE_TARGET) if judged else '':>4}"
            )
    return ours_ratios


def print_against_codec_alone(results: list[Result], int8_side: int, threads: int) -> Ratios:
    """napari-mrcz's compressed throughput over the codec alone's, every dataset.

    The target is judged on our durable writes of the int8 movie, when its frames are
    CODEC_TARGET_SIDE square; returns those (case, ratio) pairs (none otherwise).
    """
    by_key = {(r.dataset, r.codec, r.library): r for r in results}
    judged_dataset = "int8-movie" if int8_side == CODEC_TARGET_SIDE else None
    print(
        f"\nnapari-mrcz against the codec alone (python-blosc in {threads} threads, "
        f"one chunk per z-slice, no file); target: durable writes >= "
        f"{CODEC_ALONE_TARGET:.2f}x on the {CODEC_TARGET_SIDE}^2 int8 movie"
        + ("" if judged_dataset else f" (not judged: --int8-side {int8_side})")
        + ":"
    )
    header = (
        f"{'dataset':<17} {'codec':<6} {'write':>7} {'read':>7}  "
        f"{'write':>7} {'':>4} {'no-fsync':>8} {'read':>7}"
    )
    print_header(header, f"{'':<24}{'- codec MB/s -':>16}  {'- napari-mrcz/codec -':>28}")
    ratios: Ratios = []
    for result in results:
        if result.library != CODEC_ALONE:
            continue
        ours = by_key[(result.dataset, result.codec, OURS)]
        no_fsync = by_key[(result.dataset, result.codec, OURS_NO_FSYNC)]
        write = ours.write_mbs / result.write_mbs
        judged = result.dataset == judged_dataset
        if judged:
            ratios.append((f"{result.dataset} {result.codec} write", write))
        print(
            f"{result.dataset:<17} {result.codec:<6} {result.write_mbs:>7.0f} "
            f"{result.read_mbs:>7.0f}  {write:>6.2f}x "
            f"{verdict(write, CODEC_ALONE_TARGET) if judged else '':>4} "
            f"{ratio(no_fsync.write_mbs, result.write_mbs):>8} "
            f"{ratio(ours.read_mbs, result.read_mbs):>7}"
        )
    return ratios


def print_lowest_target(label: str, ratios: Ratios, target: float) -> None:
    """A TARGET line: the lowest of ``ratios`` against ``target``, with PASS or FAIL."""
    if not ratios:
        print(f"TARGET {label}: not measured")
        return
    case, value = min(ratios, key=lambda item: item[1])
    print(f"TARGET {label}, lowest: {value:.2f}x ({case}) {verdict(value, target)}")


def print_issue_targets(
    particle_ratios: Ratios, per_byte_ratios: Ratios, codec_ratios: Ratios
) -> None:
    """The TARGET lines of the issue, from the pairs the target tables returned.

    Empty pairs (no particle stack, or int8 frames of another side) say "not measured".
    """
    print_lowest_target(
        "particle stack, every write and read napari-mrcz/python-mrcz both durable "
        f">= {PARTICLE_CASE_TARGET:.2f}x",
        particle_ratios,
        PARTICLE_CASE_TARGET,
    )
    label = (
        "particle stack, geometric mean napari-mrcz/python-mrcz both durable "
        f">= {PARTICLE_MEAN_TARGET:.2f}x"
    )
    if particle_ratios:
        mean = geometric_mean([value for _, value in particle_ratios])
        print(f"TARGET {label}: {mean:.2f}x {verdict(mean, PARTICLE_MEAN_TARGET)}")
    else:
        print(f"TARGET {label}: not measured")
    print_lowest_target(
        f"particle stack per byte >= {PER_BYTE_TARGET:.2f}x {PARTICLE_FRAME_SIDE}^2 frames",
        per_byte_ratios,
        PER_BYTE_TARGET,
    )
    print_lowest_target(
        f"compressed writes >= {CODEC_ALONE_TARGET:.2f}x codec alone on "
        f"{CODEC_TARGET_SIDE}^2 int8",
        codec_ratios,
        CODEC_ALONE_TARGET,
    )


# ------------------------------------------------------------- DigitalMicrograph

#: Real DM files timed, under the shared data folder (the larger ones).
DM_FILES = (
    "dm3/scifi_DMReader_SpectrumImage_SI-EELS.dm3",
    "dm4/openncem_dmTest_3D_int16_64_65_66.dm4",
    "dm4/rsciio_2D_test-MonarcCL_spectrum-SI.dm4",
)
DM_MIN_REPEAT = 20
#: The sparse movie for the lazy open: 1024 frames of 1024 x 1024 float32 (4.3 GB).
DM_LAZY_FRAMES, DM_LAZY_SIDE = 1024, 1024


def shared_data_folder() -> Path | None:
    """The real-file folder: $NAPARI_MRCZ_TEST_DATA, ../shared/data or /work/shared/data."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (
        os.environ.get("NAPARI_MRCZ_TEST_DATA"),
        repo.parent / "shared" / "data",
        "/work/shared/data",
    ):
        if candidate and (Path(candidate) / "PROVENANCE.md").is_file():
            return Path(candidate)
    return None


def _dm3_tag(kind: int, name: bytes, body: bytes) -> bytes:
    return bytes([kind]) + struct.pack(">H", len(name)) + name + body


def _dm3_group(name: bytes, children: list[bytes]) -> bytes:
    return _dm3_tag(20, name, b"\0\0" + struct.pack(">I", len(children)) + b"".join(children))


def _dm3_scalar(name: bytes, code: int, fmt: str, value: int) -> bytes:
    info = struct.pack(">II", 1, code)
    return _dm3_tag(21, name, b"%%%%" + info + struct.pack("<" + fmt, value))


def write_sparse_dm3(path: str, frames: int, side: int) -> int:
    """A DM3 movie of float32 zeros whose data is a hole in a sparse file; its size."""
    count = frames * side * side
    marker = b"\0data-goes-here\0"
    data = _dm3_tag(21, b"Data", b"%%%%" + struct.pack(">IIII", 3, 20, 6, count) + marker)
    dims = [_dm3_scalar(b"", 5, "I", n) for n in (side, side, frames)]
    image = _dm3_group(
        b"",
        [
            _dm3_group(
                b"ImageData",
                [data, _dm3_scalar(b"DataType", 3, "i", 2), _dm3_group(b"Dimensions", dims)],
            )
        ],
    )
    body = b"\1\0" + struct.pack(">I", 1) + _dm3_group(b"ImageList", [image])
    raw = struct.pack(">iIi", 3, 0, 1) + body + bytes(8)
    at = raw.index(marker)
    with open(path, "wb") as handle:
        handle.write(raw[:at])
        handle.seek(at + 4 * count)
        handle.write(raw[at + len(marker) :])
    return os.path.getsize(path)


def bench_dm(folder: str, repeat: int) -> dict[str, Any]:
    """Time DM open + read with napari-mrcz, ncempy and rosettasciio; and the lazy open."""
    from ncempy.io.dm import dmReader
    from rsciio.digitalmicrograph import file_reader

    def ours(path: str) -> np.ndarray:
        return np.asarray(napari_mrcz.read_dm(path)[0][0])

    def ncempy(path: str) -> np.ndarray:
        return dmReader(path)["data"]

    def rsciio(path: str) -> np.ndarray:
        return file_reader(path)[0]["data"]

    readers = {OURS: ours, "ncempy": ncempy, "rosettasciio": rsciio}
    shared = shared_data_folder()
    rows = []
    runs = max(repeat, DM_MIN_REPEAT)
    for name in DM_FILES if shared else ():
        path = str(shared / name)
        if not os.path.exists(path):
            continue
        reference = ours(path)
        best: dict[str, float] = {}
        for lib, read in readers.items():
            if not np.array_equal(read(path), reference):
                raise AssertionError(f"{lib} reads {name} differently from napari-mrcz")
            best[lib] = min(timed(partial(read, path))[0] for _ in range(runs))
        lazy_s = min(timed(partial(napari_mrcz.read_dm, path, lazy=True))[0] for _ in range(runs))
        rows.append(
            {
                "file": Path(name).name,
                "size": os.path.getsize(path),
                "best": best,
                "lazy_s": lazy_s,
            }
        )

    movie = os.path.join(folder, "movie.dm3")
    movie_size = write_sparse_dm3(movie, DM_LAZY_FRAMES, DM_LAZY_SIDE)
    first_s, images = timed(lambda: napari_mrcz.read_dm(movie))
    lazy = images[0][0]
    if lazy.shape != (DM_LAZY_FRAMES, DM_LAZY_SIDE, DM_LAZY_SIDE):
        raise AssertionError(f"the sparse DM3 movie reads as {lazy.shape}")
    open_s = min(timed(partial(napari_mrcz.read_dm, movie))[0] for _ in range(runs))
    frame_s, frame = timed(lambda: lazy[-1])
    if frame.any():
        raise AssertionError("the last frame of the sparse DM3 movie is not zeros")
    remove(movie)
    return {
        "rows": rows,
        "runs": runs,
        "movie_size": movie_size,
        "movie_first_s": first_s,
        "movie_open_s": open_s,
        "movie_frame_s": frame_s,
        "movie_type": type(lazy).__name__,
    }


def print_dm(dm: dict[str, Any]) -> None:
    print(
        f"{'file':<45} {'MB':>6} {'ours ms':>8} {'ncempy':>8} {'rsciio':>8} "
        f"{'ncempy/ours':>11} {'rsciio/ours':>11} {'lazy ms':>8}"
    )
    for row in dm["rows"]:
        best = row["best"]
        print(
            f"{row['file']:<45} {row['size'] / MB:>6.2f} {best[OURS] * 1e3:>8.2f} "
            f"{best['ncempy'] * 1e3:>8.2f} {best['rosettasciio'] * 1e3:>8.2f} "
            f"{ratio(best['ncempy'], best[OURS]):>11} "
            f"{ratio(best['rosettasciio'], best[OURS]):>11} {row['lazy_s'] * 1e3:>8.2f}"
        )
    if not dm["rows"]:
        print("(no shared real DM files found: set NAPARI_MRCZ_TEST_DATA)")
    print(
        f"lazy open of a {dm['movie_size'] / 1e9:.2f} GB sparse DM3 movie "
        f"({DM_LAZY_FRAMES} x {DM_LAZY_SIDE} x {DM_LAZY_SIDE} float32, {dm['movie_type']}): "
        f"first {dm['movie_first_s'] * 1e3:.2f} ms, best {dm['movie_open_s'] * 1e3:.2f} ms; "
        f"last frame {dm['movie_frame_s'] * 1e3:.2f} ms"
    )
    for row in dm["rows"]:
        best = row["best"]
        print(
            f"SUMMARY dm {row['file']} open+read napari-mrcz/ncempy "
            f"{ratio(best['ncempy'], best[OURS])} faster, napari-mrcz/rosettasciio "
            f"{ratio(best['rosettasciio'], best[OURS])} faster"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-mb", type=float, default=100.0, help="size of each dataset in MB (default 100)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement; the best is kept (default 5)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="blosc threads for both MRCZ libraries (default 2)"
    )
    parser.add_argument(
        "--out", default=None, help="folder for the temporary files (default: system temp folder)"
    )
    parser.add_argument(
        "--cold", action="store_true", help="evict each file from the page cache before reading it"
    )
    parser.add_argument(
        "--int8-side", type=int, default=4096, help="frame side of the int8 movie (default 4096)"
    )
    parser.add_argument(
        "--float-side",
        type=int,
        default=2048,
        help="frame side of the gain-corrected float32 frames (default 2048)",
    )
    parser.add_argument(
        "--particles",
        type=int,
        default=1024,
        help=f"256 x 256 boxes in the particle stack, a multiple of {BOXES_PER_FRAME}; "
        "0 leaves out the particle stack and its frames (default 1024)",
    )
    parser.add_argument("--skip-lazy", action="store_true", help="skip the large lazy file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one library's round, as JSON
    parser.add_argument(
        "--skip-dm",
        action="store_true",
        help="skip the DigitalMicrograph section (needs ncempy, rosettasciio)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1:
        parser.error("--repeat and --threads must be at least 1")
    if args.particles < 0 or args.particles % BOXES_PER_FRAME:
        parser.error(
            f"--particles must be 0 or a multiple of {BOXES_PER_FRAME} (the boxes that fill "
            f"one {PARTICLE_FRAME_SIDE} x {PARTICLE_FRAME_SIDE} frame)"
        )

    if args.worker:
        print(json.dumps(run_library(args.worker, args.out, args.threads, args.cold)))
        return 0

    started = time.perf_counter()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="bench_io-", dir=args.out)
    try:
        print(
            f"napari-mrcz {napari_mrcz.__version__}, "
            f"python-mrcz {importlib.metadata.version('mrcz')}, "
            f"mrcfile {importlib.metadata.version('mrcfile')}, python-blosc {blosc.__version__} "
            f"(c-blosc {blosc.blosclib_version.split()[0]}), numpy {np.__version__}, "
            f"Python {platform.python_version()}"
        )
        print(
            f"{os.cpu_count()} CPUs, blosc threads={args.threads}, best of {args.repeat}, "
            f"files in {folder}, reads {'cold (evicted)' if args.cold else 'warm (page cache)'}"
            ", 1 MB = 10^6 bytes"
        )
        seconds, datasets = timed(
            lambda: make_datasets(args.size_mb, args.int8_side, args.float_side, args.particles)
        )
        for name, data in datasets.items():
            print(f"dataset {name}: {data.shape} {data.dtype}, {data.nbytes / MB:.1f} MB")
        print(f"(data generated in {seconds:.1f} s)")

        print("\n== Throughput (uncompressed MB per second of wall time) ==", flush=True)
        results, kernel_s = bench_throughput(
            datasets, folder, args.repeat, args.threads, args.cold
        )
        print()
        print(
            "each library in a fresh process per round (python-mrcz's import turns on blosc's "
            "GIL release; ours sets what it needs itself); napari-mrcz's compiled statistics "
            f"kernel loaded in {min(kernel_s) * 1e3:.0f}-{max(kernel_s) * 1e3:.0f} ms per process"
        )
        print_table(results)
        print_overwrite(results)
        print_targets(results)
        particle_ratios: Ratios = []
        per_byte_ratios: Ratios = []
        if args.particles:
            particle_ratios = print_particles_against_theirs(results)
            per_byte_ratios = print_per_byte(results)
        codec_ratios = print_against_codec_alone(results, args.int8_side, args.threads)

        if not args.skip_lazy:
            print("\n== Lazy open of a large MRCZ (napari_mrcz.open_lazy) ==", flush=True)
            lazy = bench_lazy(folder, args.repeat, args.threads)
            print(
                f"file: {LAZY_FRAMES} x {LAZY_SIDE} x {LAZY_SIDE} float32, logical "
                f"{lazy['logical'] / 1e9:.2f} GB, on disk {lazy['file_size'] / MB:.1f} MB "
                f"(zstd1), written in {lazy['write_s']:.1f} s"
            )
            print(
                f"open: first {lazy['first_open_s'] * 1e3:.2f} ms, best of {args.repeat} "
                f"{lazy['open_s'] * 1e3:.2f} ms"
            )
            increase = lazy["rss_increase"]
            print(
                f"open: {lazy['rss_kind']} increase "
                f"{'n/a' if increase is None else f'{increase / MB:.2f} MB'}, "
                f"tracemalloc peak {lazy['open_traced_peak'] / 1e3:.1f} kB "
                f"({lazy['open_traced_peak'] / lazy['logical']:.2e} of the logical size)"
            )
            print(
                f"fetch last frame: {lazy['last_s'] * 1e3:.2f} ms uncached, "
                f"{lazy['last_cached_s'] * 1e3:.3f} ms cached; middle frame "
                f"{lazy['mid_s'] * 1e3:.2f} ms"
            )

        movie = datasets["int8-movie"]
        print("\n== Peak memory, zstd1, int8 movie (tracemalloc peak / array size) ==", flush=True)
        peaks = bench_memory(movie, folder, args.threads)
        for lib, peak in peaks.items():
            print(
                f"{lib:<12} write {peak['write'] / MB:8.1f} MB = "
                f"{peak['write'] / movie.nbytes:.2f}x   "
                f"read {peak['read'] / MB:8.1f} MB = {peak['read'] / movie.nbytes:.2f}x"
            )

        print()
        print_summary(results)
        print(
            f"SUMMARY memory int8-movie zstd1 napari-mrcz/python-mrcz peak: write "
            f"{ratio(peaks[OURS]['write'], peaks[THEIRS]['write'])}, "
            f"read {ratio(peaks[OURS]['read'], peaks[THEIRS]['read'])}"
        )
        print_issue_targets(particle_ratios, per_byte_ratios, codec_ratios)

        if not args.skip_dm:
            runs = max(args.repeat, DM_MIN_REPEAT)
            print(f"\n== DigitalMicrograph: open + read, best of {runs} ==", flush=True)
            print_dm(bench_dm(folder, args.repeat))
        print(f"total time {time.perf_counter() - started:.1f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
