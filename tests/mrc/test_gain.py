"""Reading gain-separated files (napari_mrcz.mrc.gain): the float32 movie by default,
the counts and the gain when asked, one clear error when the gain cannot be used."""

import json
import os
import shutil

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import MRCZFormatError, formats
from napari_mrcz.gain.separation import GainSettings, convert_image
from napari_mrcz.gain.store import GainStore
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.layout import read_layout

from tests.helpers import gain_normalised_movie


@pytest.fixture
def separated(tmp_path, rng):
    """A gain-separated MRCZ movie (made from an mrcfile-written float32 movie)."""
    movie, counts, gain = gain_normalised_movie(rng, (40, 24, 32))
    source = tmp_path / "raw" / "movie.mrc"
    source.parent.mkdir()
    with mrcfile.new(source) as handle:
        handle.set_data(movie)
        handle.voxel_size = 1.1
    target = tmp_path / "movie.mrcz"
    with formats.open_images(source) as (image,):
        convert_image(image, str(target), "zstd", gain=GainSettings(GainStore("zstd"), True))
    return target, movie, counts, gain


def bits(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def test_lazy_reader_gives_the_float32_movie_slice_by_slice(separated):
    target, movie, counts, gain = separated
    with napari_mrcz.open_lazy(target) as lazy:
        assert lazy.dtype == np.float32
        assert lazy.shape == movie.shape
        np.testing.assert_array_equal(bits(lazy[7]), bits(movie[7]))
        np.testing.assert_array_equal(bits(lazy[3:9, 2:5]), bits(movie[3:9, 2:5]))
        np.testing.assert_array_equal(bits(lazy[[1, 30, 1]]), bits(movie[[1, 30, 1]]))
        np.testing.assert_array_equal(bits(np.asarray(lazy)), bits(movie))
        np.testing.assert_array_equal(lazy.gain_reference, gain)
    with napari_mrcz.open_lazy(target, counts=True) as lazy:
        assert lazy.dtype == np.int8
        np.testing.assert_array_equal(lazy[5], counts[5])


def test_read_mrc_gives_the_movie_and_its_statistics(separated):
    target, movie, counts, _ = separated
    data, meta = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(bits(data), bits(movie))
    assert (meta["dtype"], meta["MRCtype"]) == ("<f4", 2)
    original = mrcfile.open(target.parent / "raw" / "movie.mrc").header
    assert meta["minImage"] == float(original.dmin)
    assert meta["maxImage"] == float(original.dmax)
    assert meta["mrcHeader"]["mode"] % 1000 == 0  # the file as stored: int8 counts
    frame, _ = napari_mrcz.readMRC(target, idx=-1)
    np.testing.assert_array_equal(bits(frame), bits(movie[-1]))
    stored, meta = napari_mrcz.readMRC(target, counts=True)
    np.testing.assert_array_equal(stored, counts)
    assert (meta["dtype"], meta["MRCtype"]) == ("<i1", 0)
    assert read_layout(target).header_contrast_limits == (
        float(original.dmin),
        float(original.dmax),
    )


def test_a_moved_movie_reads_with_its_gain_beside_it(separated, tmp_path):
    target, movie, _, _ = separated
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    gain_file = read_layout(target).gain_separation.gain_file
    shutil.copy(target, elsewhere / "movie.mrcz")
    with pytest.raises(MRCZFormatError, match=f"its gain reference {gain_file} is not beside it"):
        napari_mrcz.readMRC(elsewhere / "movie.mrcz")
    counts, _ = napari_mrcz.readMRC(elsewhere / "movie.mrcz", counts=True)  # still readable
    assert counts.dtype == np.int8
    shutil.copy(tmp_path / gain_file, elsewhere / gain_file)
    np.testing.assert_array_equal(
        bits(napari_mrcz.readMRC(elsewhere / "movie.mrcz")[0]), bits(movie)
    )


def test_another_gain_under_the_name_is_refused(separated, tmp_path):
    target, _, _, gain = separated
    gain_file = tmp_path / read_layout(target).gain_separation.gain_file
    napari_mrcz.writeMRC(gain * np.float32(1.01), gain_file, compressor="zstd")
    with pytest.raises(MRCZFormatError, match="not the gain reference it was made with") as info:
        napari_mrcz.open_lazy(target)
    assert info.value.path == str(target)
    napari_mrcz.writeMRC(np.ones((2, 24, 32), np.float32), gain_file)
    with pytest.raises(MRCZFormatError, match="is not one float32 image"):
        napari_mrcz.readMRC(target)


def _with_record(path, tmp_path, change):
    """A copy of ``path`` whose gain-separation record ``change`` altered."""
    layout = read_layout(path)
    meta = dict(layout.json_meta)
    record = dict(meta[GAIN_KEY])
    change(record)
    meta[GAIN_KEY] = record
    copy = tmp_path / "edited.mrcz"
    data, _ = napari_mrcz.readMRC(path, counts=True)
    napari_mrcz.writeMRC(data, copy, meta=meta, compressor="zstd")
    return copy


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda record: record.update(gain_file="../gain.mrcz"), "is not a file beside it"),
        (lambda record: record.update(gain_file=7), "is not a file beside it"),
        (lambda record: record.pop("gain_sha256"), "record is damaged"),
        (lambda record: record.update(gain_sha256="0" * 63), "is not a SHA-256"),
        (lambda record: record.update(version=2), "later napari-mrcz"),
        (lambda record: record["original"].update(header="!!"), "record is damaged"),
    ],
)
def test_a_damaged_record_is_one_clear_error(separated, tmp_path, change, problem):
    target = _with_record(separated[0], tmp_path, change)
    with pytest.raises(MRCZFormatError, match=problem) as info:
        napari_mrcz.readMRC(target)
    assert info.value.path == str(target)


def test_frames_are_not_appended_to_a_gain_separated_file(separated):
    target, movie, _, _ = separated
    with pytest.raises(ValueError, match="gain-separated"):
        napari_mrcz.writeMRC(movie[:1], target, idx=40, compressor="zstd")


def test_read_gain_reference_refuses_a_file_without_one(tmp_path):
    napari_mrcz.writeMRC(
        np.ones((2, 4, 4), np.float32), tmp_path / "plain.mrcz", compressor="zstd"
    )
    with pytest.raises(ValueError, match="not gain-separated"):
        napari_mrcz.read_gain_reference(tmp_path / "plain.mrcz")


def test_the_record_tells_a_python_mrcz_user_what_the_pixels_are(separated):
    target, *_ = separated
    record = read_layout(target).json_meta[GAIN_KEY]
    assert "integer electron counts" in record["description"]
    assert json.loads(json.dumps(record)) == record
    assert os.path.isfile(target.parent / record["gain_file"])


def test_a_float32_copy_carrying_the_record_reads_as_it_is(separated, tmp_path):
    """napari saves a layer's JSON meta: a float32 copy of a gain-separated movie has
    the record, which means nothing for data that are not counts."""
    target, movie, _, _ = separated
    data, meta = napari_mrcz.readMRC(target)
    copy = tmp_path / "copy.mrcz"
    napari_mrcz.writeMRC(data, copy, meta={GAIN_KEY: meta[GAIN_KEY]}, compressor="zstd")
    assert read_layout(copy).gain_separation is None
    np.testing.assert_array_equal(bits(napari_mrcz.readMRC(copy)[0]), bits(movie))
