"""The gain and counts of a movie (napari_mrcz.gain.estimate), found exactly or not at all.

Inputs are written by mrcfile; outputs are checked bit for bit against mrcfile's
reading of the input.
"""

import filecmp

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.gain.estimate import estimate_gain
from napari_mrcz.mrc.gainmeta import gain_digest
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.layout import read_layout

from tests.gain.movies import assert_same_bits, convert, gain_files, write_movie
from tests.helpers import gain_normalised_movie

# --------------------------------------------------------------------------- estimate


def test_estimate_recovers_the_gain_and_counts_bit_for_bit(movie_file, tmp_path):
    source, counts, gain = movie_file
    target = tmp_path / "out" / "movie.mrcz"
    outcome = convert(source, target)
    (gain_file,) = gain_files(tmp_path / "out")
    assert outcome.note == f"gain-separated: int8 counts x {gain_file} (new)"
    assert outcome.gain_files == [str(tmp_path / "out" / gain_file)]
    stored, header = mrcz.readMRC(str(target))  # the real python-mrcz: the counts
    assert stored.dtype == np.int8
    np.testing.assert_array_equal(stored, counts)
    record = header[GAIN_KEY]
    assert record["gain_file"] == gain_file
    stored_gain, _ = mrcz.readMRC(str(tmp_path / "out" / gain_file))
    assert_same_bits(stored_gain, gain)
    assert record["gain_sha256"] == gain_digest(gain)
    assert gain_file == f"gain_{gain_digest(gain)[:12]}.mrcz"
    movie, meta = napari_mrcz.readMRC(target)
    assert_same_bits(movie, mrcfile.read(source))
    assert meta["dtype"] == "<f4"
    assert meta["MRCtype"] == 2


def test_restoring_gives_the_original_file_byte_for_byte(movie_file, tmp_path):
    source, _, _ = movie_file
    convert(source, tmp_path / "movie.mrcz")
    outcome = convert(tmp_path / "movie.mrcz", tmp_path / "back.mrc", compressor=None)
    assert outcome.note == "restored from counts x gain, with its original header"
    assert filecmp.cmp(source, tmp_path / "back.mrc", shallow=False)


def test_a_pixel_whose_smallest_value_is_three_counts_gets_one_count(rng):
    movie, counts, gain = gain_normalised_movie(rng, (30, 8, 8))
    counts[:, 2, 3] = rng.choice([0, 3, 4, 7], size=30)
    counts[:2, 2, 3] = (3, 4)
    counts[:, 5, 5] = rng.choice([0, 2, 5], size=30)
    counts[:2, 5, 5] = (2, 5)
    movie = counts.astype(np.float32) * gain
    estimate = estimate_gain(movie)
    assert estimate.problem is None
    assert_same_bits(estimate.gain[2, 3], gain[2, 3])
    assert_same_bits(estimate.gain[5, 5], gain[5, 5])


def test_a_short_movie_whose_pixel_never_held_one_count_is_refined(tmp_path, rng):
    """Two and four counts look like a gain twice as large; five counts show it is not."""
    movie, counts, gain = gain_normalised_movie(rng, (6, 16, 16))
    counts[:, 1, 1] = (2, 4, 0, 5, 0, 2)
    counts[:, 9, 3] = (0, 3, 6, 0, 7, 0)  # three and six counts, then seven
    movie = counts.astype(np.float32) * gain
    assert estimate_gain(movie).gain[1, 1] == 2 * gain[1, 1]  # the first pass's guess
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("gain-separated: int8 counts")
    stored = napari_mrcz.readMRC(target, counts=True)[0]
    np.testing.assert_array_equal(stored[:, 1, 1], counts[:, 1, 1])
    np.testing.assert_array_equal(stored[:, 9, 3], counts[:, 9, 3])
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)


def test_pixels_never_hit_get_the_median_gain(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (12, 20, 30), dose=0.05)
    movie[:, :, 7] = 0.0  # a dead column
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("gain-separated: int8 counts")
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)
    never_hit = ~(movie > 0).any(axis=0)
    stored = napari_mrcz.read_gain_reference(target)
    assert never_hit.sum() > 100
    (placeholder,) = np.unique(stored[never_hit])  # one value: the typical gain
    assert placeholder == pytest.approx(np.median(stored[~never_hit]), rel=0.01)
    np.testing.assert_array_equal(napari_mrcz.readMRC(target, counts=True)[0][:, never_hit], 0)


@pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")
def test_nan_and_signed_zero_pixels_come_back_bit_for_bit(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (40, 16, 16))
    payload = np.array([0x7FC0BEEF], dtype=np.uint32).view(np.float32)[0]
    movie[:, 3, 4] = payload  # a defect pixel marked NaN (with its payload)
    movie[:, 5, 6] = np.float32(-np.nan)  # x86's default NaN: the sign bit set
    movie[:, 7, 8] = np.where(np.arange(40) % 3, np.float32(0.0), np.float32(-0.0))
    movie[:, 9, 10] = np.float32(-2.5)  # a constant, negative pixel
    movie[:, 11, 12] = np.float32(np.inf)
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("gain-separated")
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)
    convert(target, tmp_path / "back.mrc", compressor=None)
    assert filecmp.cmp(tmp_path / "movie.mrc", tmp_path / "back.mrc", shallow=False)


@pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")
def test_nan_in_one_frame_only_is_kept_as_float32(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (40, 16, 16))
    movie[17, 3, 4] = np.array([0x7FC0BEEF], dtype=np.uint32).view(np.float32)[0]
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("stored as float32: not whole counts times the gain")
    assert "frame 17" in outcome.note
    assert read_layout(target).mode == 2
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)


def _motion_corrected(movie):
    return (0.5 * (movie + np.roll(movie, 1, axis=2))).astype(np.float32)


def _dose_weighted(movie):
    weights = np.float32(0.97) ** np.arange(movie.shape[0], dtype=np.float32)
    return movie * weights[:, None, None]


@pytest.mark.parametrize("processed", [_motion_corrected, _dose_weighted])
def test_processed_movies_are_stored_as_float32_saying_why(tmp_path, rng, processed):
    movie = processed(gain_normalised_movie(rng, (40, 16, 16))[0])
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("stored as float32: not whole counts times one gain")
    assert "not a movie as the camera saved it" in outcome.note
    assert gain_files(tmp_path) == []
    assert read_layout(target).gain_separation is None
    assert_same_bits(mrcz.readMRC(str(target))[0], movie)


@pytest.mark.parametrize(
    ("dtype", "peak", "mode"), [("int16", 200, 1), ("uint16", 40000, 6), ("int32", 70000, 7)]
)
def test_counts_take_the_smallest_integer_type(tmp_path, rng, dtype, peak, mode):
    movie, counts, gain = gain_normalised_movie(rng, (40, 8, 8))
    counts = counts.astype(np.int32)
    counts[25, 4, 4] = peak
    movie = counts.astype(np.float32) * gain
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith(f"gain-separated: {dtype} counts")
    assert read_layout(target).mode == mode
    np.testing.assert_array_equal(napari_mrcz.readMRC(target, counts=True)[0], counts)
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)


def test_whole_multiples_beyond_the_float32_check_fail_over_to_float32(tmp_path, rng):
    """A camera that multiplied in float64 rounds some products differently."""
    _, counts, gain = gain_normalised_movie(rng, (40, 16, 16), dose=6.0)
    movie = (counts * gain.astype(np.float64) * (1 + 1e-7)).astype(np.float32)
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("stored as float32")
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)
