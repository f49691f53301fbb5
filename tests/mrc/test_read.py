"""The engine's whole-file readers (read_array, read_header_meta, layout_meta).

They are python-mrcz's ``readMRC`` and ``readMRCHeader`` underneath the public API:
the data, the frames and the meta dict must be what mrcfile and python-mrcz read from
files they wrote themselves. Protected here: pixel sizes in every unit, python-mrcz's
``slices`` splitting, idx refusals, EMAN2 mode numbering, the packed size measured
from the chunks when the header lacks it, gzip downloads asked for as a memory map,
and which meta keys come from the header and which from the JSON.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import mrcfile
import mrcz
import numpy as np
import pytest

from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.read import layout_meta, read_array, read_header_meta
from napari_mrcz.mrc.write import write_array

PIXELSIZE_ZYX = (3.0, 2.0, 1.5)
META = {"k": 1, "name": "grid 3", "values": [1.5, 2.5]}
#: Byte offset of MODE and of python-mrcz's packed size in the 1024-byte header.
MODE_OFFSET, PACKED_BYTES_OFFSET = 12, 144


def write_python_mrcz(path, data, codec=None, **kwargs):
    """A file written by the real python-mrcz, with its pixel size and JSON meta."""
    mrcz.writeMRC(
        data, str(path), meta=dict(META), pixelsize=PIXELSIZE_ZYX, compressor=codec, **kwargs
    )
    return path


def as_array(image):
    """python-mrcz gives a standard stack (MZ = NZ) as a one-element list."""
    if isinstance(image, list):
        assert len(image) == 1
        return image[0]
    return image


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize("units", ["\\AA", "nm", "pm"])
def test_pixel_size_in_each_unit_is_what_python_mrcz_reads(tmp_path, rng, units, codec):
    path = write_python_mrcz(tmp_path / "theirs.mrcz", rng.normal(size=(3, 8, 6)), codec)
    theirs, _ = mrcz.readMRCHeader(str(path), pixelunits=units)
    header, _ = read_header_meta(path, pixelunits=units)
    _, meta = read_array(path, pixelunits=units)
    for ours in (header, meta):
        assert ours["pixelunits"] == theirs["pixelunits"] == units
        np.testing.assert_allclose(ours["pixelsize"], theirs["pixelsize"], rtol=1e-6)


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize("slices", [1, 2, 3])
def test_slices_split_the_stack_into_python_mrczs_frames(tmp_path, rng, slices, codec):
    data = rng.normal(size=(6, 8, 10)).astype(np.float32)
    path = write_python_mrcz(tmp_path / "theirs.mrcz", data, codec)
    theirs, _ = mrcz.readMRC(str(path), slices=slices)
    ours, meta = read_array(path, slices=slices)
    assert isinstance(ours, list)
    assert len(ours) == len(theirs) == 6 // slices
    for got, want in zip(ours, theirs, strict=True):
        assert got.shape == want.shape == ((8, 10) if slices == 1 else (slices, 8, 10))
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.concatenate([np.reshape(f, (-1, 8, 10)) for f in ours]), data)
    assert meta["k"] == META["k"]


@pytest.mark.parametrize("slices", [None, 0, 2, 3])
def test_header_reports_the_slices_asked_for_as_python_mrcz_does(tmp_path, rng, slices):
    frames = [rng.normal(size=(2, 8, 10)).astype(np.float32) for _ in range(3)]
    path = write_python_mrcz(tmp_path / "frames.mrcz", frames, "zstd")
    theirs, their_slices = mrcz.readMRCHeader(str(path), slices=slices)
    ours, our_slices = read_header_meta(path, slices=slices)
    assert our_slices == their_slices == (2 if slices is None else slices)
    np.testing.assert_array_equal(ours["dimensions"], theirs["dimensions"])


def test_slices_that_do_not_divide_the_stack_are_refused_not_dropped(tmp_path, rng):
    """python-mrcz silently drops the slices left over; we refuse the request."""
    data = rng.normal(size=(6, 8, 10)).astype(np.float32)
    path = write_python_mrcz(tmp_path / "theirs.mrcz", data, "zstd")
    theirs, _ = mrcz.readMRC(str(path), slices=4)
    assert len(theirs) == 1  # two of the six slices are lost
    with pytest.raises(ValueError, match="slices=4 does not divide the 6 z-slices"):
        read_array(path, slices=4)


@pytest.mark.parametrize("idx", [6, -7, (0, 6), (-7, 0), (2, 1)], ids=str)
def test_idx_outside_the_stack_or_backwards_is_a_value_error_as_in_python_mrcz(tmp_path, rng, idx):
    path = write_python_mrcz(tmp_path / "theirs.mrc", rng.normal(size=(6, 8, 10)))
    with pytest.raises(ValueError, match=r"out of range|n must be >= 1"):
        mrcz.readMRC(str(path), idx=idx)
    with pytest.raises(ValueError, match=r"out of range|selects no frames"):
        read_array(path, idx)


@pytest.mark.parametrize("n_threads", [1, 3])
def test_thread_count_does_not_change_what_is_read(tmp_path, rng, n_threads):
    data = rng.integers(-1000, 1000, size=(7, 16, 12)).astype(np.int16)
    path = write_python_mrcz(tmp_path / "theirs.mrcz", data, "lz4")
    theirs, _ = mrcz.readMRC(str(path))
    ours, _ = read_array(path, n_threads=n_threads)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    part, meta = read_array(path, (2, 5), n_threads=n_threads)
    np.testing.assert_array_equal(part, data[2:6])
    assert list(meta["dimensions"]) == [4, 16, 12]


def test_a_packed_size_missing_from_the_header_is_measured_from_the_chunks(tmp_path, rng):
    """Byte 144 zeroed: the header reader reports the 0 stored (as python-mrcz does); a
    whole read knows the chunks and reports the size python-mrcz had written."""
    data = rng.normal(size=(5, 16, 12)).astype(np.float32)
    path = write_python_mrcz(tmp_path / "theirs.mrcz", data, "zstd")
    written = mrcz.readMRCHeader(str(path))[0]["packedBytes"]
    assert written > 0
    raw = bytearray(path.read_bytes())
    struct.pack_into("<q", raw, PACKED_BYTES_OFFSET, 0)
    path.write_bytes(bytes(raw))

    assert mrcz.readMRCHeader(str(path))[0]["packedBytes"] == 0
    assert read_header_meta(path)[0]["packedBytes"] == 0
    image, meta = read_array(path)
    assert meta["packedBytes"] == written
    np.testing.assert_array_equal(image, data)


#: (dtype mrcfile writes, EMAN2's mode number for the same bytes, dtype EMAN2 means).
EMAN2_CASES = [
    ("int8", 1, "int8"),
    ("int8", 2, "uint8"),
    ("int16", 3, "int16"),
    ("uint16", 4, "uint16"),
    ("float32", 7, "float32"),
]


@pytest.mark.parametrize(("written", "mode", "meant"), EMAN2_CASES, ids=lambda v: str(v))
def test_eman2_mode_numbers_read_as_python_mrcz_reads_them(tmp_path, rng, written, mode, meant):
    """mrcfile's bytes under EMAN2's old MODE numbering, read with file_convention='eman2'."""
    data = (rng.normal(size=(3, 8, 10)) * 40).astype(written)
    path = tmp_path / "eman2.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<i", raw, MODE_OFFSET, mode)
    path.write_bytes(bytes(raw))

    ours, meta = read_array(path, file_convention="eman2")
    theirs, their_meta = mrcz.readMRC(str(path), fileConvention="eman2")
    theirs = as_array(theirs)
    assert ours.dtype == theirs.dtype == np.dtype(meant)
    np.testing.assert_array_equal(ours, data.view(meant))
    np.testing.assert_array_equal(ours, theirs)
    assert meta["MRCtype"] == their_meta["MRCtype"] == mode
    assert np.dtype(meta["dtype"]) == np.dtype(their_meta["dtype"])


def test_a_gzipped_mrcfile_volume_asked_for_as_a_memmap_is_read_into_memory(tmp_path, rng):
    data = rng.normal(size=(4, 8, 10)).astype(np.float32)
    plain, packed = tmp_path / "volume.mrc", tmp_path / "volume.mrc.gz"
    with mrcfile.new(str(plain)) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (1.5, 2.0, 3.0)
    with open(plain, "rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    with mrcfile.open(str(packed)) as mrc:
        reference = mrc.data.copy()

    image, meta = read_array(packed, use_memmap=True)
    assert type(image) is np.ndarray  # the temporary copy is gone: no map of it
    np.testing.assert_array_equal(image, reference)
    np.testing.assert_allclose(meta["pixelsize"], (3.0, 2.0, 1.5), rtol=1e-6)
    frame, _ = read_array(packed, 2, use_memmap=True)
    np.testing.assert_array_equal(frame, reference[2])
    header, slices = read_header_meta(packed)
    assert slices == 0
    plain_header, _ = read_header_meta(plain)
    for key in ("dimensions", "pixelsize", "minImage", "maxImage", "meanImage", "rmsImage"):
        np.testing.assert_array_equal(header[key], plain_header[key])


def test_json_keys_come_after_the_header_keys_and_only_when_asked_for(tmp_path, rng):
    path = write_python_mrcz(tmp_path / "theirs.mrcz", rng.normal(size=(3, 8, 6)), "zstd")
    theirs, _ = mrcz.readMRCHeader(str(path))
    layout = read_layout(path)
    header_only = layout_meta(layout, with_json=False)
    full = layout_meta(layout)

    assert not set(META) & set(header_only)
    assert set(theirs) - set(META) <= set(header_only)
    assert list(full)[: len(header_only)] == list(header_only)  # JSON keys come last
    for key, value in META.items():
        assert full[key] == theirs[key] == value


def test_our_chunk_checksums_are_the_key_python_mrcz_returns(tmp_path, rng):
    """python-mrcz reads the checksums we record as one more JSON key; ours gives the same."""
    path = tmp_path / "ours.mrcz"
    write_array(rng.normal(size=(4, 8, 6)).astype(np.float32), path, compressor="zstd")
    theirs, _ = mrcz.readMRCHeader(str(path))
    ours = layout_meta(read_layout(path))
    assert len(theirs["chunk_crc32"]) == 4 * 8  # eight hex digits a chunk
    assert ours["chunk_crc32"] == theirs["chunk_crc32"]
    assert "chunk_crc32" not in layout_meta(read_layout(path), with_json=False)
