"""LazyMRC / open_lazy: random access to the z-slices of MRC and MRCZ files.

The lazy array must look like the numpy array it stands for (shape, dtype, indexing),
read only what is asked for (one blosc chunk per z-slice, nothing when opening), hand
out read-only slices, and release its file.
"""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import napari_mrcz
import napari_mrcz.mrc.codecs
import napari_mrcz.mrc.slices
from napari_mrcz import LazyMRC, open_lazy

SHAPE_3D = (7, 5, 6)  # nz odd and distinct axis lengths catch swapped axes; nx even for uint4
SHAPE_2D = (5, 6)

#: (id, compressor, endian, dtype) of the files the indexing tests run on.
SOURCES = [
    ("plain-le", None, "le", None),
    ("plain-be", None, "be", None),
    ("zstd-le", "zstd", "le", None),
    ("zstd-be", "zstd", "be", None),
    ("lz4-le", "lz4", "le", None),
    ("uint4", None, "le", "uint4"),
]
COMPRESSED = ["zstd", "lz4"]


def _make_data(rng: np.random.Generator, shape: tuple[int, ...], dtype: str | None) -> np.ndarray:
    if dtype == "uint4":
        return rng.integers(0, 16, size=shape).astype(np.uint8)
    return rng.normal(size=shape).astype(np.float32)


def _write(path, data, compressor=None, endian="le", dtype=None) -> str:
    napari_mrcz.writeMRC(
        data, str(path), compressor=compressor, endian=endian, dtype=dtype, n_threads=1
    )
    return str(path)


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, same values and the same kind of pixel (byte order aside)."""
    got = np.asarray(got)
    assert got.shape == expected.shape
    assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, expected)


class DecompressCounter:
    """Counts blosc chunk decompressions and remembers what each one produced."""

    def __init__(self) -> None:
        self.outputs: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.outputs)


@pytest.fixture
def decompressions(monkeypatch) -> DecompressCounter:
    """Count calls of ``decompress_into``.

    napari_mrcz.mrc.slices binds the name at import (``from .codecs import decompress_into``),
    so patching napari_mrcz.mrc.codecs alone would miss every call; both names are patched,
    with wrappers that call the original, so each decompression counts exactly once
    wherever the engine looks the function up.
    """
    counter = DecompressCounter()
    original = napari_mrcz.mrc.codecs.decompress_into

    def counting(chunk, out):
        original(chunk, out)
        with counter._lock:
            counter.outputs.append(out.copy())

    monkeypatch.setattr(napari_mrcz.mrc.codecs, "decompress_into", counting)
    monkeypatch.setattr(napari_mrcz.mrc.slices, "decompress_into", counting)
    return counter


@pytest.fixture(params=SOURCES, ids=[source[0] for source in SOURCES])
def opened(request, tmp_path, rng):
    """(lazy array, the numpy data it holds) for each kind of file in SOURCES."""
    _, compressor, endian, dtype = request.param
    data = _make_data(rng, SHAPE_3D, dtype)
    path = _write(tmp_path / "stack.mrcz", data, compressor, endian, dtype)
    with open_lazy(path) as lazy:
        yield lazy, data


# ----------------------------------------------------------------- shape and dtype


@pytest.mark.parametrize("endian", ["le", "be"])
@pytest.mark.parametrize("compressor", [None, *COMPRESSED])
@pytest.mark.parametrize("shape", [SHAPE_3D, SHAPE_2D, (1, *SHAPE_2D)], ids=["3d", "2d", "1x2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.int8])
def test_array_attributes(tmp_path, rng, shape, compressor, endian, dtype):
    data = (rng.normal(size=shape) * 20).astype(dtype)
    path = _write(tmp_path / "a.mrcz", data, compressor, endian)
    expected_shape = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape  # z of 1 drops
    with open_lazy(path) as lazy:
        assert isinstance(lazy, LazyMRC)
        assert lazy.shape == expected_shape
        assert lazy.ndim == len(expected_shape)
        assert lazy.size == data.size
        assert lazy.nbytes == data.nbytes
        assert len(lazy) == expected_shape[0]
        assert lazy.dtype.newbyteorder("=") == np.dtype(dtype)
        if endian == "be" and np.dtype(dtype).itemsize > 1:
            assert lazy.dtype.byteorder == ">"  # the file's byte order, as readMRC gives
        assert lazy.path == path
        assert str(expected_shape) in repr(lazy)
        assert_same(np.asarray(lazy), data.reshape(expected_shape))


def test_uint4_file_reads_unpacked(tmp_path, rng):
    data = _make_data(rng, SHAPE_3D, "uint4")
    path = _write(tmp_path / "packed.mrc", data, dtype="uint4")
    with open_lazy(path) as lazy:
        assert lazy.shape == SHAPE_3D
        assert lazy.dtype == np.uint8
        assert_same(np.asarray(lazy), data)


def test_open_lazy_and_lazymrc_agree(tmp_path, rng):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, "zstd")
    with open_lazy(path) as through_function, LazyMRC(path) as through_class:
        assert type(through_function) is type(through_class)
        assert through_function.shape == through_class.shape
        assert_same(through_function[3], through_class[3])


# ------------------------------------------------------------------------- indexing

NZ = SHAPE_3D[0]
KEYS_3D = [
    # integers, negative ones and numpy integers
    0,
    3,
    NZ - 1,
    -1,
    -NZ,
    np.int64(2),
    np.intp(-3),
    # slices, with steps, negative steps, clipping and empty results
    slice(None),
    slice(2, 5),
    slice(None, None, 2),
    slice(1, None, 3),
    slice(None, None, -1),
    slice(5, 1, -2),
    slice(-2, None, -3),
    slice(0, 100),
    slice(-100, 2),
    slice(3, 3),
    slice(5, 2),
    slice(2, 5, -1),
    slice(None, None, 100),
    # lists and arrays of indices (repeats, any order, negative, empty)
    [0, 2, 4],
    [6, 0, 3],
    [-1, 0],
    [2, 2, 2],
    np.array([5, 1]),
    np.array([], dtype=np.intp),
    # boolean masks on z
    np.arange(NZ) % 2 == 0,
    np.zeros(NZ, dtype=bool),
    np.ones(NZ, dtype=bool),
    [True, False, True, False, False, False, True],
    # Ellipsis
    Ellipsis,
    (Ellipsis, 2),
    (2, Ellipsis),
    (Ellipsis, slice(1, 4), 2),
    (1, Ellipsis, 3),
    (slice(None, None, 2), Ellipsis),
    (Ellipsis, slice(None, None, -1)),
    # tuples mixing ints and slices on y and x
    (2, 3),
    (2, slice(1, 4)),
    (-1, -1, -1),
    (0, 0, 0),
    (slice(None), 3),
    (slice(None), slice(None), 2),
    (slice(1, 6, 2), slice(None, None, -1), slice(1, 5)),
    (2, slice(None, None, -1), 0),
    (slice(2, 5), 1, slice(None)),
    (-2, slice(4, 1, -1), -1),
    (slice(3, 3), slice(1, 4)),
    (slice(None), slice(2, 2)),
    # an index array on z with ints or slices on y/x
    ([0, 3], slice(1, 3)),
    ([0, 3], 1),
    ([0, 3], slice(None), 2),
    (np.arange(NZ) % 3 == 0, slice(None, 2)),
    ([5, 1], -1, slice(None, None, -2)),
    # index arrays on y/x only
    (slice(None), [1, 3]),
    (slice(1, 3), slice(None), [0, 5]),
    (3, [1, 2], [3, 4]),
    (slice(None), [1, 2], [3, 4]),
    (2, np.arange(5) > 2),
]


def _key_params(keys):
    """pytest params with readable ids."""
    return [pytest.param(key, id=repr(key).replace(" ", "")) for key in keys]


@pytest.mark.parametrize("key", _key_params(KEYS_3D))
def test_indexing_matches_numpy(opened, key):
    lazy, data = opened
    assert_same(lazy[key], data[key])


def test_single_slice_selections_as_napari_asks(opened):
    lazy, data = opened
    for k in range(NZ):
        assert_same(lazy[k : k + 1, :, :], data[k : k + 1, :, :])
        assert_same(lazy[(slice(k, k + 1), slice(None), slice(None))], data[k : k + 1])
        assert_same(lazy[k], data[k])


@pytest.mark.parametrize(
    "bad",
    [NZ, -NZ - 1, (0, 0, 0, 0), (NZ, 0)],
    ids=["past-end", "before-start", "too-many", "tuple-past-end"],
)
def test_out_of_range_raises_indexerror(opened, bad):
    lazy, data = opened
    with pytest.raises(IndexError):
        data[bad]
    with pytest.raises(IndexError):
        lazy[bad]


def test_newaxis_matches_numpy(opened):
    lazy, data = opened
    for key in [(None,), (slice(None), None), (Ellipsis, None), (2, None, slice(1, 3))]:
        assert_same(lazy[key], data[key])


KEYS_2D = [
    0,
    -1,
    4,
    slice(1, 4),
    slice(None, None, -2),
    slice(3, 3),
    (1, 2),
    (-1, -1),
    (slice(None), 3),
    (slice(None), slice(None, None, -1)),
    Ellipsis,
    (Ellipsis, 1),
    (1, Ellipsis),
    [0, 2, 2],
    [True, False, False, True, True],
    np.arange(5) % 2 == 1,
    (slice(1, 3), [0, 4]),
]


@pytest.mark.parametrize("key", _key_params(KEYS_2D))
@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_indexing_2d_matches_numpy(tmp_path, rng, compressor, key):
    data = _make_data(rng, SHAPE_2D, None)
    path = _write(tmp_path / "image.mrcz", data, compressor)
    with open_lazy(path) as lazy:
        assert_same(lazy[key], data[key])
        assert_same(np.asarray(lazy), data)


_NOT_MEMMAP = ["zstd", "uint4"]  # files LazyMRC decodes itself instead of memory-mapping


SOURCE_KINDS = ["plain", *_NOT_MEMMAP]


def _open_kind(tmp_path, rng, kind):
    dtype = "uint4" if kind == "uint4" else None
    data = _make_data(rng, SHAPE_3D, dtype)
    path = _write(tmp_path / "f.mrcz", data, "zstd" if kind == "zstd" else None, dtype=dtype)
    return open_lazy(path), data


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_index_arrays_on_z_and_another_axis_broadcast(tmp_path, rng, kind):
    lazy, data = _open_kind(tmp_path, rng, kind)
    with lazy:
        for key in [([0, 1], [1, 2]), ([0, 1], slice(None), [3, 4]), ([4, 2], [0, 1], [5, 0])]:
            assert_same(lazy[key], data[key])


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_zero_dimensional_integer_array_on_z(tmp_path, rng, kind):
    lazy, data = _open_kind(tmp_path, rng, kind)
    with lazy:
        assert_same(lazy[np.array(2)], data[np.array(2)])
        assert_same(lazy[np.array(-1), 1], data[np.array(-1), 1])


# -------------------------------------------------------------------------- asarray


def test_asarray(opened):
    lazy, data = opened
    assert_same(np.asarray(lazy), data)
    assert_same(np.array(lazy), data)
    as_double = np.asarray(lazy, dtype=np.float64)
    assert as_double.dtype == np.float64
    np.testing.assert_array_equal(as_double, data.astype(np.float64))


def test_asarray_after_slice_reads_still_complete(opened):
    lazy, data = opened
    lazy[2]
    lazy[-1]
    assert_same(np.asarray(lazy), data)


# ------------------------------------------------------------------- read-only data


def test_returned_slices_are_read_only(opened):
    lazy, data = opened
    for frame in (lazy[3], lazy[-1], lazy[3][1:3], lazy[3, 1], lazy[3, :, ::2]):
        assert not frame.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            frame[...] = 0
    assert_same(lazy[3], data[3])


def test_writable_results_are_copies(opened):
    """Whatever the caller may write into never reaches the cache or the file."""
    lazy, data = opened
    lazy[2]  # cached now, for compressed files
    for result in (lazy[2:4], lazy[[2, 3]], np.asarray(lazy), lazy[2:3, :, :]):
        if result.flags.writeable:
            result[...] = 9
    assert_same(lazy[2], data[2])
    assert_same(lazy[2:4], data[2:4])


# ------------------------------------------------------- what gets decompressed, when


@pytest.mark.parametrize("endian", ["le", "be"])
@pytest.mark.parametrize("compressor", COMPRESSED)
def test_opening_decompresses_nothing(tmp_path, rng, decompressions, compressor, endian):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor, endian)
    with open_lazy(path) as lazy:
        lazy.shape, lazy.dtype, lazy.ndim, lazy.size, len(lazy), repr(lazy)
        assert decompressions.count == 0


def _slice_index(decoded: np.ndarray, data: np.ndarray) -> int:
    """Which z-slice of ``data`` a decoded chunk holds."""
    return next(index for index, plane in enumerate(data) if np.array_equal(decoded, plane))


@pytest.mark.parametrize("compressor", COMPRESSED)
def test_reading_a_slice_decompresses_only_its_chunk(tmp_path, rng, decompressions, compressor):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    with open_lazy(path) as lazy:
        assert_same(lazy[4], data[4])
        assert decompressions.count == 1
        # the one chunk decompressed was slice 4's
        np.testing.assert_array_equal(decompressions.outputs[0], data[4])

        # cache hits, however the slice is asked for
        assert_same(lazy[4], data[4])
        assert_same(lazy[4:5, :, :], data[4:5, :, :])
        assert_same(lazy[4, 1:3], data[4, 1:3])
        assert_same(lazy[4 - NZ], data[4])
        assert_same(lazy[[4]], data[[4]])
        assert_same(lazy[[False, False, False, False, True, False, False]], data[4:5])
        assert decompressions.count == 1

        assert_same(lazy[1:3], data[1:3])
        assert decompressions.count == 3
        # decoded in parallel: in either order
        decoded = decompressions.outputs[1:]
        assert sorted(_slice_index(out, data) for out in decoded) == [1, 2]


def test_napari_style_reads_decompress_one_chunk_each(tmp_path, rng, decompressions):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, "zstd")
    with open_lazy(path) as lazy:
        for k in (5, 0, 6):
            before = decompressions.count
            assert_same(lazy[k : k + 1, :, :], data[k : k + 1])
            assert decompressions.count == before + 1
        lazy[5:6, :, :]
        assert decompressions.count == 3


def test_cache_is_bounded_by_cache_bytes(tmp_path, rng, decompressions):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, "zstd")
    one_slice = data[0].nbytes
    with LazyMRC(path, cache_bytes=one_slice) as lazy:
        lazy[1]
        lazy[2]
        lazy[1]  # evicted by slice 2
        assert decompressions.count == 3
    with LazyMRC(path, cache_bytes=2 * one_slice) as lazy:
        lazy[1]
        lazy[2]
        lazy[1]
        assert decompressions.count == 5
    with LazyMRC(path) as lazy:  # the default cache holds this whole small file
        for _ in range(2):
            for k in range(NZ):
                lazy[k]
        assert decompressions.count == 5 + NZ


def test_asarray_decompresses_each_chunk_at_most_once(tmp_path, rng, decompressions):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, "zstd")
    with open_lazy(path) as lazy:
        assert_same(np.asarray(lazy), data)
        assert decompressions.count <= NZ


def test_plain_files_never_decompress(tmp_path, rng, decompressions):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrc", data)
    with open_lazy(path) as lazy:
        lazy[3]
        lazy[1:4]
        np.asarray(lazy)
    assert decompressions.count == 0


# --------------------------------------------------------------- dask and threading


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_dask_from_array(tmp_path, rng, decompressions, compressor):
    da = pytest.importorskip("dask.array")
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    with open_lazy(path) as lazy:
        per_slice = da.from_array(lazy, chunks=(1, *SHAPE_3D[1:]))
        assert per_slice.shape == data.shape
        assert per_slice.dtype.newbyteorder("=") == data.dtype
        assert decompressions.count == 0  # building the graph reads nothing
        assert_same(per_slice[3].compute(), data[3])
        assert decompressions.count == (1 if compressor else 0)
        assert_same(per_slice.compute(scheduler="threads"), data)
        assert_same(per_slice[::-1, 1:4, ::2].compute(scheduler="threads"), data[::-1, 1:4, ::2])
        whole = da.from_array(lazy)
        assert_same(whole.compute(), data)
        np.testing.assert_allclose(float(whole.sum().compute()), float(data.sum()), rtol=1e-5)


@pytest.mark.parametrize("compressor", [None, "zstd", "lz4"])
def test_concurrent_reads_from_threads(tmp_path, rng, compressor):
    data = _make_data(rng, (16, 64, 48), None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    order = rng.integers(-16, 16, size=400)
    # a two-slice cache keeps evicting, so threads decompress concurrently
    with LazyMRC(path, cache_bytes=2 * data[0].nbytes) as lazy:
        with ThreadPoolExecutor(max_workers=4) as pool:
            frames = list(pool.map(lambda k: np.array(lazy[int(k)]), order))
        for k, frame in zip(order, frames, strict=True):
            assert_same(frame, data[k])


# ------------------------------------------------------------------ closing the file


def _open_handles(path: str) -> tuple[int, int]:
    """(file descriptors, memory maps) of this process that refer to ``path``."""
    real = os.path.realpath(path)
    descriptors = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == real:
                descriptors += 1
        except OSError:
            pass
    with open("/proc/self/maps") as maps:
        mapped = sum(1 for line in maps if line.rstrip("\n").endswith(" " + real))
    return descriptors, mapped


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_context_manager_releases_the_file(tmp_path, rng, compressor):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    with open_lazy(path) as lazy:
        first = np.array(lazy[0])
        assert sum(_open_handles(path)) >= 1
    gc.collect()
    assert _open_handles(path) == (0, 0)
    assert_same(first, data[0])


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_no_resource_warning(tmp_path, rng, compressor):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_lazy(path) as lazy:
            lazy[1]
            lazy[2:4]
        del lazy
        explicit = open_lazy(path)
        explicit[0]
        explicit.close()
        explicit.close()  # closing twice is harmless
        del explicit
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_reading_after_close_raises_valueerror(tmp_path, rng, compressor):
    data = _make_data(rng, SHAPE_3D, None)
    path = _write(tmp_path / "a.mrcz", data, compressor)
    lazy = open_lazy(path)
    lazy.close()
    with pytest.raises(ValueError, match="closed"):
        lazy[1]


# ------------------------------------------------------- a large file, read lazily


class SyntheticStack:
    """A (nz, ny, nx) float32 array-like whose frames are made on demand.

    Frame k is 1.0 except for its first row, which holds k: it compresses to almost
    nothing and each frame is recognisable.
    """

    def __init__(self, nz: int, ny: int, nx: int) -> None:
        self.shape = (nz, ny, nx)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < self.shape[0]:
            raise IndexError(index)
        return self.frame(index)

    def frame(self, index: int) -> np.ndarray:
        frame = np.ones(self.shape[1:], dtype=self.dtype)
        frame[0] = index
        return frame


def test_large_logical_file_opens_small_and_reads_the_last_frame(tmp_path, decompressions):
    stack = SyntheticStack(300, 1024, 1024)
    logical = 300 * 1024 * 1024 * 4  # 1.26 GB
    path = str(tmp_path / "large.mrcz")
    napari_mrcz.writeMRC(stack, path, compressor="zstd", clevel=1, n_threads=2)
    assert os.path.getsize(path) < logical / 100

    gc.collect()
    tracemalloc.start()
    try:
        lazy = open_lazy(path)
        opening_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        last = lazy[-1]
        fetching_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with lazy:
        assert opening_peak < 1_000_000  # a few kB of chunk offsets, not 1.26 GB
        assert fetching_peak < 3 * stack.frame(0).nbytes  # about one slice
        assert decompressions.count == 1
        assert lazy.shape == stack.shape
        assert lazy.dtype == np.float32
        assert lazy.nbytes == logical
        assert_same(last, stack.frame(299))
        assert_same(lazy[150, :3, :3], stack.frame(150)[:3, :3])
        assert_same(lazy[298:299, :, :], stack.frame(298)[np.newaxis])


# --------------------------------------------------- files the engine did not write


@pytest.mark.parametrize("compressor", COMPRESSED)
def test_python_mrcz_files_open_lazily(tmp_path, rng, compressor):
    mrcz = pytest.importorskip("mrcz")
    data = _make_data(rng, (5, 40, 30), None)
    path = str(tmp_path / "theirs.mrcz")
    mrcz.writeMRC(data, path, compressor=compressor, clevel=3, n_threads=1)
    with open_lazy(path) as lazy:
        assert lazy.shape == data.shape
        assert_same(lazy[-1], data[-1])
        assert_same(lazy[1:4, 5:9, ::3], data[1:4, 5:9, ::3])
        assert_same(np.asarray(lazy), data)


def test_mrcfile_files_open_lazily(tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    data = _make_data(rng, (5, 40, 30), None)
    path = str(tmp_path / "theirs.mrc")
    mrcfile.write(path, data)
    with open_lazy(path) as lazy:
        assert lazy.shape == data.shape
        assert_same(lazy[2], data[2])
        assert_same(lazy[::-2, :, 7], data[::-2, :, 7])
