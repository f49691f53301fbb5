"""DM images (napari_mrcz.dm.images): data types read exactly, and lazily."""

from __future__ import annotations

import tracemalloc

import numpy as np
import numpy.testing as npt
import pytest

from napari_mrcz import MRCZFormatError, readDM4
from napari_mrcz.dm.images import (
    DATA_TYPES,
    LazyDMArray,
    read_dm,
    unpack_complex_fft,
)

from tests.dm.builder import (
    F32,
    FORMAT_IDS,
    FORMATS,
    PLAIN_TYPES,
    DMBuilder,
    stored_bytes,
    thumbnail,
    values_of,
    write,
)

# --------------------------------------------------------------------------- data types


@pytest.mark.parametrize(("version", "order"), FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("data_type", sorted(PLAIN_TYPES))
def test_plain_types_read_exactly(tmp_path, rng, version, order, data_type):
    builder = DMBuilder(version, order)
    image = values_of(rng, PLAIN_TYPES[data_type], (3, 4, 5))
    raw = builder.file(
        [thumbnail(builder), builder.image(data_type, [5, 4, 3], stored_bytes(image, order))],
        thumbnails=[0],
    )
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.dtype == image.dtype.newbyteorder("=")
    assert data.dtype.isnative
    npt.assert_array_equal(data, image)
    assert meta["data_type"] == data_type
    assert meta["data_type_name"] == DATA_TYPES[data_type][0]
    assert meta["format"] == f"DM{version}"
    assert meta["shape"] == (3, 4, 5)
    assert data.flags.writeable


@pytest.mark.parametrize(("version", "order"), FORMATS, ids=FORMAT_IDS)
def test_bool_images_are_bool(tmp_path, version, order):
    builder = DMBuilder(version, order)
    stored = np.array([[0, 1, 2], [255, 0, 7]], dtype=np.uint8)
    raw = builder.file([builder.image(14, [3, 2], stored.tobytes())])
    ((data, _),) = read_dm(write(tmp_path, raw))
    assert data.dtype == bool
    npt.assert_array_equal(data, stored != 0)


@pytest.mark.parametrize("data_type", [8, 23])
def test_rgb_images_are_red_green_blue_bytes(tmp_path, rng, data_type):
    builder = DMBuilder()
    pixels = rng.integers(0, 256, size=(2, 3, 4, 4), dtype=np.uint8)  # z, y, x, bytes
    raw = builder.file([builder.image(data_type, [4, 3, 2], pixels.tobytes())])
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.shape == (2, 3, 4, 3)
    assert data.dtype == np.uint8
    npt.assert_array_equal(data, pixels[..., :3])
    assert meta["rgb"] is True
    assert meta["shape"] == (2, 3, 4, 3)
    assert len(meta["axes"]) == 3


def _packed(full: np.ndarray) -> np.ndarray:
    """DM's packed half of a centred FFT: column k holds frequency -k."""
    centre = full.shape[-1] // 2
    return np.ascontiguousarray(full[..., centre::-1])


@pytest.mark.parametrize("shape", [(5, 5), (6, 8), (5, 7), (4, 5), (7, 6), (1, 4), (3, 1)])
@pytest.mark.parametrize("data_type", [27, 28])
def test_packed_complex_fft_comes_back_whole(tmp_path, rng, shape, data_type):
    real = rng.normal(size=shape)
    full = np.fft.fftshift(np.fft.fft2(real)).astype("c8" if data_type == 27 else "c16")
    builder = DMBuilder()
    raw = builder.file([builder.image(data_type, [shape[1], shape[0]], _packed(full).tobytes())])
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.shape == shape
    assert data.dtype == full.dtype
    npt.assert_allclose(data, full, rtol=1e-5, atol=1e-4)
    npt.assert_allclose(np.fft.ifft2(np.fft.ifftshift(data)).real, real, atol=1e-4)
    assert meta["shape"] == shape


def test_packed_complex_stack_unpacks_each_plane(rng):
    real = rng.normal(size=(3, 6, 7))
    full = np.fft.fftshift(np.fft.fft2(real), axes=(-2, -1))
    npt.assert_allclose(unpack_complex_fft(_packed(full), 7), full, atol=1e-12)


def test_packed_complex_1d(rng):
    real = rng.normal(size=9)
    full = np.fft.fftshift(np.fft.fft(real))
    npt.assert_allclose(unpack_complex_fft(_packed(full), 9), full, atol=1e-12)


@pytest.mark.parametrize("data_type", [0, 4, 5, 15, 24, 26, 99])
def test_unsupported_data_types_are_refused(tmp_path, data_type):
    builder = DMBuilder()
    raw = builder.file([builder.image(data_type, [2, 2], bytes(16))])
    path = write(tmp_path, raw)
    with pytest.raises(MRCZFormatError, match=f"DM data type {data_type} ") as info:
        read_dm(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- laziness


@pytest.fixture
def stack_file(tmp_path, rng):
    builder = DMBuilder()
    stack = rng.normal(size=(6, 5, 4)).astype(np.float32)
    raw = builder.file([builder.image(2, [4, 5, 6], stack.tobytes())])
    return write(tmp_path, raw), stack


@pytest.mark.parametrize(
    "key",
    [
        0,
        -1,
        5,
        np.int64(2),
        slice(None),
        slice(1, 4),
        slice(None, None, 2),
        slice(5, 0, -2),
        slice(4, 2),
        (2, 3),
        (slice(1, 3), 0, slice(None, None, -1)),
        (Ellipsis, 1),
        [0, 5, 2],
        (np.array([1, 1]), 2),
        (),
        (slice(None), Ellipsis),
        (3, Ellipsis, 2),
    ],
)
def test_lazy_indexing_matches_numpy(stack_file, key):
    path, stack = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    assert isinstance(lazy, LazyDMArray)
    npt.assert_array_equal(lazy[key], stack[key])


def test_lazy_array_protocol(stack_file):
    path, stack = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    assert lazy.shape == stack.shape
    assert lazy.dtype == stack.dtype
    assert lazy.ndim == 3
    assert lazy.size == stack.size
    assert lazy.nbytes == stack.nbytes
    assert len(lazy) == 6
    assert "LazyDMArray" in repr(lazy)
    npt.assert_array_equal(np.asarray(lazy), stack)
    npt.assert_array_equal(np.asarray(lazy, dtype=np.float64), stack.astype(np.float64))
    with pytest.raises(IndexError):
        lazy[6]
    ((eager, _),) = read_dm(path, lazy=False)
    assert isinstance(eager, np.ndarray)


@pytest.mark.parametrize("kind", ["rgb", "packed", "bool", "1d"])
def test_lazy_special_types_match_eager(tmp_path, rng, kind):
    builder = DMBuilder(3, ">")
    if kind == "rgb":
        image = builder.image(23, [3, 2, 2], rng.integers(0, 256, 48, dtype=np.uint8).tobytes())
    elif kind == "packed":
        image = builder.image(
            27,
            [6, 4],
            _packed(np.fft.fftshift(np.fft.fft2(rng.normal(size=(4, 6))))).astype(">c8").tobytes(),
        )
    elif kind == "bool":
        image = builder.image(14, [2, 3, 2], rng.integers(0, 3, 12, dtype=np.uint8).tobytes())
    else:
        image = builder.image(7, [5], stored_bytes(np.arange(5, dtype=np.int32), ">"))
    path = write(tmp_path, builder.file([image]), "f.dm3")
    ((eager, _),) = read_dm(path, lazy=False)
    ((lazy, _),) = read_dm(path, lazy=True)
    assert lazy.shape == eager.shape
    assert lazy.dtype == eager.dtype
    npt.assert_array_equal(np.asarray(lazy), eager)
    npt.assert_array_equal(lazy[-1], eager[-1])
    npt.assert_array_equal(lazy[::-1], eager[::-1])


def test_huge_movie_opens_without_reading_its_data(tmp_path):
    """A 4 GiB DM3 movie (a sparse file): opening reads none of its data, frames read on demand."""
    builder = DMBuilder(3)
    frames, side = 1024, 1024
    count = frames * side * side  # float32 values
    marker = b"\xab\xcd\xef\x01"
    raw = builder.file(
        [builder.image(2, [side, side, frames], marker, data_code=F32, count=count)]
    )
    assert raw.count(marker) == 1
    at = raw.index(marker)
    path = tmp_path / "movie.dm3"
    with open(path, "wb") as handle:
        handle.write(raw[:at])
        handle.seek(at + 4 * count)
        handle.write(raw[at + len(marker) :])
    tracemalloc.start()
    try:
        ((movie, meta),) = read_dm(path)
        opened_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert opened_peak < 16 * 2**20  # nothing of the 4 GiB is read at open
    assert isinstance(movie, LazyDMArray)
    assert movie.shape == (frames, side, side)
    assert movie.dtype == np.float32
    assert meta["shape"] == (frames, side, side)
    assert meta["tags"]["ImageList"]["0"]["ImageData"]["Data"] == f"<array float32 ({count},)>"
    assert not movie[-1].any()
    dm4 = readDM4(path)
    assert dm4.f is None
    npt.assert_array_equal(dm4.im[0].shape, (frames, side, side))


def test_lazy_read_of_a_file_truncated_after_opening(stack_file):
    path, _ = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    with open(path, "r+b") as handle:
        handle.truncate(lazy.layout.offset + 10)
    with pytest.raises(MRCZFormatError, match="past the end of the file"):
        lazy[-1]
