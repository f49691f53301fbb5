"""MRC mode 16 (RGB, three uint8 a pixel, as IMOD writes it): read as (..., 3) uint8.

mrcfile 1.5.4 cannot write mode 16, so the files are written by mrcfile as int8 with three
times the columns (the same bytes), then NX and MODE are patched with ``struct``; one is
crafted from nothing with ``struct``.
"""

from __future__ import annotations

import struct

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.header import FIELD_OFFSETS, HEADER_SIZE


def patch(raw: bytes, **fields: int) -> bytes:
    """``raw`` with int32 header fields set (little endian)."""
    out = bytearray(raw)
    for name, value in fields.items():
        struct.pack_into("<i", out, FIELD_OFFSETS[name], value)
    return bytes(out)


def rgb_file(path, rgb: np.ndarray) -> None:
    """Write (nz, ny, nx, 3) uint8 as mode 16 via mrcfile (int8, 3 * nx columns)."""
    nz, ny, nx, _ = rgb.shape
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(rgb.reshape(nz, ny, nx * 3).view(np.int8))
        mrc.voxel_size = 1.5
    raw = bytearray(patch(path.read_bytes(), nx=nx, mx=nx, mode=16))
    struct.pack_into("<f", raw, FIELD_OFFSETS["cella"], nx * 1.5)
    path.write_bytes(bytes(raw))


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)


@pytest.fixture
def rgb_path(tmp_path, rgb):
    path = tmp_path / "rgb.mrc"
    rgb_file(path, rgb)
    return path


@pytest.mark.parametrize("memmap", [False, True])
def test_read_rgb_stack(rgb_path, rgb, memmap):
    image, meta = napari_mrcz.readMRC(rgb_path, useMemmap=memmap)
    assert image.shape == (4, 6, 5, 3)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, rgb)
    assert meta["rgb"] is True
    assert meta["MRCtype"] == 16
    assert meta["dtype"] == "<u1"
    assert list(meta["dimensions"]) == [4, 6, 5]
    np.testing.assert_allclose(meta["pixelsize"], 1.5)


def test_read_rgb_frames(rgb_path, rgb):
    np.testing.assert_array_equal(napari_mrcz.readMRC(rgb_path, idx=2)[0], rgb[2])
    np.testing.assert_array_equal(napari_mrcz.readMRC(rgb_path, idx=(1, 3))[0], rgb[1:4])
    meta, _ = napari_mrcz.readMRCHeader(rgb_path)
    assert meta["rgb"] is True


def test_lazy_rgb(rgb_path, rgb):
    with napari_mrcz.open_lazy(rgb_path) as lazy:
        assert lazy.shape == (4, 6, 5, 3)
        assert lazy.dtype == np.uint8
        assert lazy.ndim == 4
        assert lazy.nbytes == rgb.nbytes
        for key in [
            1,
            -1,
            slice(1, 3),
            slice(None, None, 2),
            [3, 0, 3],
            (2, 4),
            (0, 1, 2),
            (Ellipsis, 1),
            (slice(None), 0, slice(None), 2),
            np.int64(3),
        ]:
            np.testing.assert_array_equal(lazy[key], rgb[key], err_msg=str(key))
        np.testing.assert_array_equal(np.asarray(lazy), rgb)


def test_single_rgb_image_crafted_with_struct(tmp_path, rng):
    """A single 3 x 4 RGB image, header written field by field: (ny, nx, 3)."""
    pixels = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    header = bytearray(HEADER_SIZE)
    struct.pack_into("<10i", header, 0, 4, 3, 1, 16, 0, 0, 0, 4, 3, 1)
    struct.pack_into("<6f", header, FIELD_OFFSETS["cella"], 8.0, 6.0, 2.0, 90, 90, 90)
    struct.pack_into("<3i", header, FIELD_OFFSETS["mapc"], 1, 2, 3)
    struct.pack_into("<i", header, FIELD_OFFSETS["nversion"], 20141)
    header[FIELD_OFFSETS["map"] : FIELD_OFFSETS["map"] + 8] = b"MAP DA\0\0"
    path = tmp_path / "single.mrc"
    path.write_bytes(bytes(header) + pixels.tobytes())

    image, meta = napari_mrcz.readMRC(path)
    assert image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image, pixels)
    np.testing.assert_allclose(meta["pixelsize"], [2.0, 2.0, 2.0])
    with napari_mrcz.open_lazy(path) as lazy:
        assert lazy.shape == (3, 4, 3)
        np.testing.assert_array_equal(lazy[1], pixels[1])
        np.testing.assert_array_equal(lazy[..., 2], pixels[..., 2])
        np.testing.assert_array_equal(np.asarray(lazy), pixels)


def test_truncated_rgb_is_a_format_error(rgb_path):
    rgb_path.write_bytes(rgb_path.read_bytes()[:-1])
    with pytest.raises(napari_mrcz.MRCZFormatError, match="truncated"):
        napari_mrcz.readMRC(rgb_path)


def test_compressed_rgb_is_refused(tmp_path, rng):
    path = tmp_path / "rgb.mrcz"
    napari_mrcz.writeMRC(rng.random((2, 4, 4), dtype=np.float32), path, compressor="zstd")
    path.write_bytes(patch(path.read_bytes(), mode=6016))
    with pytest.raises(napari_mrcz.MRCZFormatError, match=r"compressed RGB \(mode 16\)"):
        napari_mrcz.readMRC(path)


def test_no_rgb_key_for_other_modes(tmp_path, rng):
    path = tmp_path / "grey.mrc"
    napari_mrcz.writeMRC(rng.random((2, 4, 4), dtype=np.float32), path)
    assert "rgb" not in napari_mrcz.readMRC(path)[1]
