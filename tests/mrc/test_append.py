"""write_at_index: appending z-slices to files other programs wrote.

The file must come out as mrcfile and python-mrcz expect it: the old slices and the
new ones, in the file's byte order and pixel type; the voxel size kept; NZ, MZ, the
packed size and exact statistics over every slice in the header. What cannot be
appended (4-bit files, slices that do not make whole frames) is refused with the file
untouched, and errors name the file as the user knows it.
"""

from __future__ import annotations

import io

import mrcfile
import mrcz
import numpy as np
import pytest

from napari_mrcz.mrc.append import write_at_index
from napari_mrcz.mrc.pipeline import describe_input

VOXEL_XYZ = (1.5, 2.0, 3.0)


def append(path, frames, idx, progress=None, **kwargs):
    """Append (or write from ``idx``) as writeMRC does, on one thread, at level 1."""
    write_at_index(str(path), describe_input(frames), idx, 1, 1, progress, **kwargs)


def header_stats(path) -> np.ndarray:
    with mrcfile.open(str(path), permissive=True) as mrc:
        header = mrc.header
        return np.array([header.dmin, header.dmax, header.dmean, header.rms], dtype=np.float64)


def assert_exact_stats(path, data) -> None:
    """DMIN/DMAX are float32 of the extremes; DMEAN and RMS numpy's float64 values."""
    values = np.asarray(data, dtype=np.float64)
    stats = header_stats(path)
    assert stats[0] == np.float32(values.min())
    assert stats[1] == np.float32(values.max())
    np.testing.assert_allclose(stats[2:], [values.mean(), values.std()], rtol=1e-6)


def assert_valid(path) -> None:
    report = io.StringIO()
    assert mrcfile.validate(str(path), print_file=report), report.getvalue()


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_appending_to_an_mrcfile_volume_keeps_its_voxel_size(tmp_path, rng, byteorder):
    data = (100 * rng.normal(size=(4, 12, 10))).astype(byteorder + "f4")
    more = (300 * rng.normal(size=(3, 12, 10))).astype(np.float32)
    path = tmp_path / "volume.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = VOXEL_XYZ

    append(path, more, 4)
    full = np.concatenate([data, more])
    with mrcfile.open(str(path)) as mrc:
        assert mrc.data.dtype == data.dtype  # the file's byte order
        np.testing.assert_array_equal(mrc.data, full)
        assert mrc.voxel_size.tolist() == pytest.approx(VOXEL_XYZ)
        assert int(mrc.header.nz) == int(mrc.header.mz) == 7
    assert_exact_stats(path, full)
    assert_valid(path)


def test_statistics_marked_unknown_are_measured_over_every_slice(tmp_path, rng):
    """mrcfile's 'not computed' header: nothing to merge with, so the file is measured."""
    data = rng.integers(-2000, 2000, size=(3, 16, 12)).astype(np.int16)
    more = rng.integers(-5000, 5000, size=(2, 16, 12)).astype(np.int16)
    path = tmp_path / "unknown.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
        mrc.reset_header_stats()
    dmin, dmax, _, rms = header_stats(path)
    assert dmax < dmin  # MRC2014's markers of statistics not computed
    assert rms < 0

    append(path, more, 3)
    assert_exact_stats(path, np.concatenate([data, more]))


def test_statistics_an_mrcfile_header_holds_are_merged_with_the_new_slices(tmp_path, rng):
    data = (1000 + 30 * rng.normal(size=(4, 20, 16))).astype(np.uint16)
    more = (1500 + 60 * rng.normal(size=(2, 20, 16))).astype(np.uint16)
    path = tmp_path / "counts.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
    append(path, more, 4)
    full = np.concatenate([data, more])
    assert_exact_stats(path, full)
    with mrcfile.open(str(path)) as mrc:
        np.testing.assert_array_equal(mrc.data, full)


def test_frames_of_another_type_are_stored_in_the_files_type(tmp_path, rng):
    data = rng.normal(size=(2, 8, 6)).astype(np.float32)
    more = rng.integers(-300, 300, size=(2, 8, 6)).astype(np.int16)
    path = tmp_path / "float.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
    append(path, more, 2)
    with mrcfile.open(str(path)) as mrc:
        assert mrc.data.dtype == np.float32
        np.testing.assert_array_equal(mrc.data, np.concatenate([data, more.astype(np.float32)]))


@pytest.mark.parametrize("endian", ["le", "be"])
def test_appending_to_python_mrczs_mrcz_file_updates_its_packed_size(tmp_path, rng, endian):
    data = rng.integers(0, 50, size=(3, 16, 12)).astype(np.int16)
    more = rng.integers(0, 50, size=(2, 16, 12)).astype(np.int16)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), compressor="zstd", endian=endian, meta={"k": 1})
    append(path, more, 3)

    image, meta = mrcz.readMRC(str(path))
    np.testing.assert_array_equal(image, np.concatenate([data, more]))
    assert list(meta["dimensions"]) == [5, 16, 12]
    assert meta["packedBytes"] == path.stat().st_size - 1024 - meta["extendedBytes"]
    assert meta["k"] == 1


def test_progress_counts_up_to_every_appended_slice(tmp_path, rng):
    """Small slices are reported a run at a time; the count ends at all of them."""
    path = tmp_path / "volume.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(rng.normal(size=(2, 8, 6)).astype(np.float32))
    written: list[int] = []
    append(path, rng.normal(size=(4, 8, 6)).astype(np.float32), 2, written.append)
    assert written == sorted(set(written))
    assert written[-1] == 4


def test_a_4bit_file_is_refused_untouched(tmp_path, rng):
    path = tmp_path / "theirs.mrc"
    mrcz.writeMRC(rng.integers(0, 16, size=(2, 6, 8)).astype(np.uint8), str(path), dtype="uint4")
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"4-bit \(mode 101\)"):
        append(path, np.zeros((1, 6, 8), np.uint8), 2)
    assert path.read_bytes() == before


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_slices_that_do_not_make_whole_frames_are_refused_untouched(tmp_path, rng, codec):
    frames = [rng.normal(size=(2, 6, 8)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "frames.mrcz"
    mrcz.writeMRC(frames, str(path), compressor=codec)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="frames of 2 slices; 3 slices do not make whole"):
        append(path, np.zeros((3, 6, 8), np.float32), 6)
    assert path.read_bytes() == before
    theirs, _ = mrcz.readMRC(str(path))
    assert len(theirs) == 3


def test_a_refusal_names_the_file_as_the_user_knows_it(tmp_path, rng):
    path = tmp_path / "temporary-name.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(rng.normal(size=(2, 8, 6)).astype(np.float32))
    with open(path, "ab") as handle:
        handle.write(b"trailer")
    with pytest.raises(ValueError, match=r"^grid 3/movie\.mrc holds 7 bytes after its data"):
        append(path, np.zeros((1, 8, 6), np.float32), 2, shown="grid 3/movie.mrc")


def test_appending_sections_along_crystal_y_keeps_every_voxel_size(tmp_path, rng):
    """MAPC, MAPR, MAPS = 1, 3, 2: rows along crystal z, sections along crystal y,
    and as many rows as sections (so MZ, the row sampling, equals NZ)."""
    data = rng.normal(size=(4, 4, 6)).astype(np.float32)
    path = tmp_path / "permuted.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 1, 3, 2
        mrc.header.mx, mrc.header.my, mrc.header.mz = 6, 4, 4
        mrc.header.cella = tuple(n * size for n, size in zip((6, 4, 4), VOXEL_XYZ, strict=True))
    with mrcfile.open(str(path)) as mrc:
        assert mrc.voxel_size.tolist() == pytest.approx(VOXEL_XYZ)

    append(path, data[:2], 4)
    with mrcfile.open(str(path)) as mrc:
        np.testing.assert_array_equal(mrc.data, np.concatenate([data, data[:2]]))
        assert mrc.voxel_size.tolist() == pytest.approx(VOXEL_XYZ)
