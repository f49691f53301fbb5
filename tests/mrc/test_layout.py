"""Header interpretation: byte order, IMOD flags, axis order, extended headers, MZ."""

import struct

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.header import FIELD_OFFSETS, IMOD_STAMP
from napari_mrcz.mrc.layout import read_layout

from tests.helpers import write_permuted_map


def _patch(path, field, fmt, *values):
    with open(path, "r+b") as handle:
        handle.seek(FIELD_OFFSETS[field])
        handle.write(struct.pack(fmt, *values))


@pytest.fixture
def volume(tmp_path, rng):
    data = rng.integers(0, 255, size=(4, 6, 8)).astype(np.uint8).view(np.int8)
    path = tmp_path / "volume.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (1.5, 2.5, 3.5)
    return path, data


def test_imod_unsigned_bytes(volume):
    """IMOD's stamp with flag bit 0 clear: mode 0 holds unsigned bytes."""
    path, data = volume
    _patch(path, "imod_stamp", "<i", IMOD_STAMP)
    _patch(path, "imod_flags", "<i", 0)
    image, _ = napari_mrcz.readMRC(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, data.view(np.uint8))


def test_imod_signed_bytes(volume):
    """IMOD's stamp with flag bit 0 set, or no stamp at all: mode 0 is signed."""
    path, data = volume
    image, _ = napari_mrcz.readMRC(path)
    assert image.dtype == np.int8
    _patch(path, "imod_stamp", "<i", IMOD_STAMP)
    _patch(path, "imod_flags", "<i", 1)
    image, _ = napari_mrcz.readMRC(path)
    assert image.dtype == np.int8
    np.testing.assert_array_equal(image, data)


@pytest.mark.parametrize(
    "stamp", [b"\0\0\0\0", b"\x44\x00\x00\x00", b"\x44\x20\x20\x20", b"\x00\x00\x44\x44"]
)
def test_odd_machine_stamps_little_endian(volume, stamp):
    """Stamps seen in the field: the header's sanity decides the byte order."""
    path, data = volume
    _patch(path, "machst", "4s", stamp)
    image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["mrcHeader"]["byteorder"] == "little"


def test_missing_stamp_big_endian(tmp_path, rng):
    """A big-endian file with no stamp is recognised from its header."""
    data = rng.normal(size=(3, 5, 7)).astype(">f4")
    path = tmp_path / "be.mrc"
    napari_mrcz.writeMRC(data, path, endian="be")
    _patch(path, "machst", "4s", b"\0\0\0\0")
    image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["mrcHeader"]["byteorder"] == "big"


def test_axis_order_is_reported_and_pixel_size_follows_it(tmp_path, rng):
    """An EMDB-style map with MAPC/MAPR/MAPS = 2, 1, 3: data stays in file order, the
    order is reported, and the pixel size of each data axis is that of its crystal axis."""
    data = rng.normal(size=(4, 6, 8)).astype(np.float32)
    path = tmp_path / "permuted.map"
    write_permuted_map(path, data)  # crystal x along rows (6), y along columns (8)
    image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["mapcrs"] == [2, 1, 3]
    np.testing.assert_allclose(meta["pixelsize"], [3.0, 1.0, 2.0])


def test_foreign_extended_header_is_skipped_and_kept_raw(tmp_path, rng):
    """FEI/SERI/CCP4 extended headers are skipped by NSYMBT and kept as raw bytes."""
    data = rng.normal(size=(2, 4, 4)).astype(np.float32)
    extended = bytes(range(256)) * 2
    path = tmp_path / "fei.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(np.frombuffer(extended, dtype="V1"))
        mrc.header.exttyp = b"SERI"
    image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["extendedBytes"] == len(extended)
    assert meta["metaId"] == b"SERI"
    layout = read_layout(path)
    assert layout.exttyp == "SERI"
    assert layout.read_extended_header() == extended


def test_standard_stack_is_not_python_mrcz_slices(tmp_path, rng):
    """MZ == NZ in a file from mrcfile is sampling, not python-mrcz's slices-per-frame."""
    data = rng.normal(size=(5, 4, 4)).astype(np.float32)
    path = tmp_path / "stack.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
    layout = read_layout(path)
    assert layout.slices == 0
    image, _ = napari_mrcz.readMRC(path)
    assert isinstance(image, np.ndarray)
    assert image.shape == data.shape


def test_python_mrcz_signature_means_slices(tmp_path, rng):
    """python-mrcz's own list files (MRCZ label, MX = MY = 0) use MZ as slices per frame."""
    import mrcz

    frames = [rng.normal(size=(2, 4, 4)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "list.mrcz"
    mrcz.writeMRC(frames, str(path), compressor="zstd")
    layout = read_layout(path)
    assert layout.written_by_python_mrcz
    assert layout.slices == 2


def test_pixel_size_falls_back_to_n_when_m_is_zero(tmp_path, rng):
    """M = 0 (python-mrcz): pixel size = CELLA / N."""
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / "m0.mrc"
    napari_mrcz.writeMRC(data, path, pixelsize=[3.0, 2.0, 1.0])
    for field in ("mx", "my", "mz"):
        _patch(path, field, "<i", 0)
    _, meta = napari_mrcz.readMRC(path)
    np.testing.assert_allclose(meta["pixelsize"], [3.0, 2.0, 1.0])


def test_a_damaged_json_extended_header_leaves_the_pixels_readable(tmp_path, rng):
    """python-mrcz fails on the whole file; we read the pixels and say what is lost."""
    data = rng.normal(size=(2, 8, 8)).astype(np.float32)
    path = tmp_path / "damaged_meta.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd", meta={"note": "hello"})
    raw = bytearray(path.read_bytes())
    raw[raw.index(b'"note"') + 1] = 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(UnicodeDecodeError):
        mrcz.readMRC(str(path))
    with pytest.warns(napari_mrcz.MRCZWarning, match="JSON extended header is invalid") as seen:
        read, _ = napari_mrcz.readMRC(path)
    assert len(seen) == 1
    assert str(path) in str(seen[0].message)
    np.testing.assert_array_equal(read, data)
    layout = read_layout(path, quiet=True)
    assert layout.json_meta is None
    assert "invalid" in layout.damaged_meta
