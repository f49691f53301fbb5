"""Gain separation (napari_mrcz.tools.ungain): float32 movies as counts plus one gain.

Inputs are written by mrcfile (plain MRC) or our DM builder; outputs are checked bit
for bit against mrcfile's reading of the input, and read back by mrcfile and the real
python-mrcz.
"""

import filecmp
import io
import os
import pathlib

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.gainmeta import gain_digest
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools import convert as conversion
from napari_mrcz.tools.gain_files import GainReference, GainStore
from napari_mrcz.tools.gain_separation import GainSettings, convert_image
from napari_mrcz.tools.ungain import estimate_gain

from tests.dm.test_dm import DMBuilder, stored_bytes
from tests.helpers import gain_normalised_movie, real_files


def write_movie(path, movie, voxel=0.8):
    """A plain MRC movie, written by mrcfile as camera software would."""
    with mrcfile.new(path) as handle:
        handle.set_data(movie)
        handle.voxel_size = voxel
    return path


def convert(source, target, compressor="zstd", gain=None, keep_json=False):
    """Convert every image of ``source`` to ``target`` and verify it; return the outcome."""
    gain = gain or GainSettings(GainStore(compressor), ungain=True)
    pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
    with conversion.open_images(source) as images:
        (image,) = images
        outcome = convert_image(image, str(target), compressor, gain=gain, keep_json=keep_json)
        conversion.verify_image(image, str(target), counts=gain.counts)
    return outcome


def bits(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def assert_same_bits(first, second):
    np.testing.assert_array_equal(bits(first), bits(second))


def gain_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("gain_"))


@pytest.fixture
def movie_file(tmp_path, rng):
    """40 frames of 1 e/pixel: every pixel holds one count somewhere, so the estimate
    recovers the camera's gain exactly."""
    movie, counts, gain = gain_normalised_movie(rng, (40, 24, 32))
    return write_movie(tmp_path / "movie.mrc", movie), counts, gain


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


# --------------------------------------------------------------------------- one gain per folder


def test_movies_of_a_folder_share_one_gain_file(tmp_path, rng):
    _, _, gain = gain_normalised_movie(rng, (1, 24, 32))
    settings = GainSettings(GainStore("zstd"), ungain=True)
    notes = []
    for name in ("a", "b", "c"):
        counts = rng.poisson(1.0, (40, 24, 32))
        movie = counts.astype(np.float32) * gain
        source = write_movie(tmp_path / f"{name}.mrc", movie)
        notes.append(convert(source, tmp_path / "out" / f"{name}.mrcz", gain=settings).note)
        assert_same_bits(napari_mrcz.readMRC(tmp_path / "out" / f"{name}.mrcz")[0], movie)
    (gain_file,) = gain_files(tmp_path / "out")
    assert (
        notes
        == [f"gain-separated: int8 counts x {gain_file} (new)"]
        + [f"gain-separated: int8 counts x {gain_file}"] * 2
    )
    # A later run into the same folder finds the gain there.
    again = GainSettings(GainStore("zstd"), ungain=True)
    note = convert(tmp_path / "a.mrc", tmp_path / "out" / "again.mrcz", gain=again).note
    assert note == f"gain-separated: int8 counts x {gain_file}"


def test_a_movie_pinning_down_a_pixel_gets_a_refined_gain_and_the_first_keeps_its(tmp_path, rng):
    movie, counts, gain = gain_normalised_movie(rng, (40, 8, 8))
    counts[:, 2, 2] = rng.choice([0, 2, 4], size=40)  # never one count: looks like 2 x gain
    first = counts.astype(np.float32) * gain
    second = rng.poisson(1.0, (40, 8, 8)).astype(np.float32) * gain
    settings = GainSettings(GainStore("zstd"), ungain=True)
    out = tmp_path / "out"
    convert(write_movie(tmp_path / "first.mrc", first), out / "first.mrcz", gain=settings)
    convert(write_movie(tmp_path / "second.mrc", second), out / "second.mrcz", gain=settings)
    assert len(gain_files(out)) == 2
    assert_same_bits(napari_mrcz.read_gain_reference(out / "second.mrcz"), gain)
    for name, movie in (("first", first), ("second", second)):
        assert_same_bits(napari_mrcz.readMRC(out / f"{name}.mrcz")[0], movie)
    # A third movie is whole counts of both: it takes the refined (newest) gain.
    third = write_movie(tmp_path / "third.mrc", first)
    note = convert(third, out / "third.mrcz", gain=settings).note
    assert note.endswith(read_layout(out / "second.mrcz").gain_separation.gain_file)


# --------------------------------------------------------------------------- gain references


def _dm4_gain(path, gain):
    builder = DMBuilder(4, "<")
    ny, nx = gain.shape
    thumbnail = builder.image(23, [4, 3], bytes(range(48)), name="thumb")
    image = builder.image(2, [nx, ny], stored_bytes(gain, "<"), name="gain", data_code=6)
    path.write_bytes(builder.file([thumbnail, image], thumbnails=[0]))
    return path


def _mrc_gain(path, gain):
    with mrcfile.new(path) as handle:
        handle.set_data(gain)
    return path


@pytest.mark.parametrize("write_gain", [_dm4_gain, _mrc_gain], ids=["dm4", "mrc"])
@pytest.mark.parametrize(("rotate", "flip"), [(0, "none"), (0, "y"), (90, "x"), (270, "y")])
def test_a_gain_reference_is_turned_to_fit_the_movie(tmp_path, rng, write_gain, rotate, flip):
    """The file holds the gain as the camera software saw it; the movie's frames are
    turned (SerialEM writes MRC upside down against DigitalMicrograph's DM4 gain)."""
    movie, counts, gain = gain_normalised_movie(rng, (6, 24, 24), dose=2.0)
    as_stored = np.rot90(
        gain[::-1] if flip == "y" else gain[:, ::-1] if flip == "x" else gain, k=-rotate // 90
    )
    reference = write_gain(
        tmp_path / f"gain{'.dm4' if write_gain is _dm4_gain else '.mrc'}",
        np.ascontiguousarray(as_stored),
    )
    settings = GainSettings(
        GainStore("zstd"), ungain=True, reference=GainReference.read(reference)
    )
    target = tmp_path / "out" / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target, gain=settings)
    assert outcome.note.startswith("gain-separated: int8 counts")
    record = read_layout(target).gain_separation
    assert_same_bits(napari_mrcz.read_gain_reference(target), gain)
    assert record.gain_source["orientation"].startswith("found from the data (100.0%")
    np.testing.assert_array_equal(napari_mrcz.readMRC(target, counts=True)[0], counts)
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)


def test_a_given_orientation_is_used_as_given(tmp_path, rng):
    movie, _, gain = gain_normalised_movie(rng, (6, 16, 24))
    reference = _mrc_gain(tmp_path / "gain.mrc", np.ascontiguousarray(gain[::-1]))
    right = GainSettings(
        GainStore("zstd"), ungain=True, reference=GainReference.read(reference, 0, "y")
    )
    source = write_movie(tmp_path / "movie.mrc", movie)
    assert convert(source, tmp_path / "right.mrcz", gain=right).note.startswith("gain-separated")
    assert (
        read_layout(tmp_path / "right.mrcz").gain_separation.gain_source["orientation"] == "given"
    )
    wrong = GainSettings(
        GainStore("zstd"), ungain=True, reference=GainReference.read(reference, 0, "x")
    )
    outcome = convert(source, tmp_path / "wrong.mrcz", gain=wrong)
    assert outcome.note.startswith("stored as float32: not whole counts times the gain")
    assert_same_bits(napari_mrcz.readMRC(tmp_path / "wrong.mrcz")[0], movie)


def test_a_movie_of_another_gain_is_stored_as_float32(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (6, 16, 16))
    other = gain_normalised_movie(rng, (1, 16, 16))[2]
    reference = GainReference.read(_mrc_gain(tmp_path / "gain.mrc", other))
    settings = GainSettings(GainStore("zstd"), ungain=True, reference=reference)
    outcome = convert(
        write_movie(tmp_path / "movie.mrc", movie), tmp_path / "m.mrcz", gain=settings
    )
    assert outcome.note.startswith("stored as float32")
    assert gain_files(tmp_path) == []


def test_a_reference_of_several_images_is_refused(tmp_path, rng):
    path = _mrc_gain(tmp_path / "gains.mrc", np.ones((2, 8, 8), np.float32))
    with pytest.raises(napari_mrcz.MRCZFormatError, match="one 2D image"):
        GainReference.read(path)


# --------------------------------------------------------------------------- other inputs


def test_dm_movie_keeps_its_tags_and_gets_its_statistics(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (40, 16, 20))
    builder = DMBuilder(4, "<")
    image = builder.image(2, [20, 16, 40], stored_bytes(movie, "<"), name="movie", data_code=6)
    source = tmp_path / "movie.dm4"
    source.write_bytes(builder.file([image]))
    target = tmp_path / "movie.mrcz"
    assert convert(source, target).note.startswith("gain-separated: int8 counts")
    data, meta = napari_mrcz.readMRC(target)
    assert_same_bits(data, movie)
    assert "dm_tags" in meta
    np.testing.assert_allclose(
        [meta["minImage"], meta["maxImage"], meta["meanImage"]],
        [movie.min(), movie.max(), movie.mean()],
        rtol=1e-6,
    )
    convert(target, tmp_path / "back.mrc", compressor=None)
    assert_same_bits(mrcfile.read(tmp_path / "back.mrc"), movie)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (np.ones((5, 8, 8), np.int16), "kept as it was: int16 data, not float32"),
        (np.ones((1, 8, 8), np.float32), "kept as it was: a single image, not a movie"),
    ],
)
def test_other_data_is_converted_as_it_is(tmp_path, data, reason):
    source = write_movie(tmp_path / "data.mrc", data)
    outcome = convert(source, tmp_path / "data.mrcz")
    assert outcome.note == reason
    np.testing.assert_array_equal(
        mrcz.readMRC(str(tmp_path / "data.mrcz"))[0], data[0] if len(data) == 1 else data
    )


def test_counts_copy_is_plain_mrc_with_a_plain_gain_for_motion_correction(movie_file, tmp_path):
    source, counts, gain = movie_file
    convert(source, tmp_path / "movie.mrcz")
    settings = GainSettings(GainStore(None), counts=True)
    target = tmp_path / "counts" / "movie.mrc"
    outcome = convert(tmp_path / "movie.mrcz", target, compressor=None, gain=settings)
    (gain_file,) = gain_files(tmp_path / "counts")
    assert gain_file.endswith(".mrc")
    assert outcome.note == f"counts x {gain_file} (new)"
    np.testing.assert_array_equal(mrcfile.read(target), counts)
    assert_same_bits(mrcfile.read(tmp_path / "counts" / gain_file), gain)
    for path in (target, tmp_path / "counts" / gain_file):
        report = io.StringIO()
        assert mrcfile.validate(str(path), print_file=report), report.getvalue()
    # Plain MRC2014 has no place for the record naming the gain: read as the counts.
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], counts)
    # Kept with keep_json (mrcfile then rejects the EXTTYP): read as the movie again.
    kept = tmp_path / "kept" / "movie.mrc"
    convert(tmp_path / "movie.mrcz", kept, compressor=None, gain=settings, keep_json=True)
    assert_same_bits(napari_mrcz.readMRC(kept)[0], mrcfile.read(source))
    assert not mrcfile.validate(str(kept), print_file=io.StringIO())


def _float32_stacks():
    """The real float32 stacks in ../shared/data: maps and particle stacks, no movie."""
    stacks = []
    for path in real_files("mrc"):
        layout = read_layout(path)
        if layout.dtype.base.name == "float32" and layout.nz > 1:
            stacks.append(path)
    return stacks


@pytest.mark.filterwarnings("ignore::RuntimeWarning:mrcfile")
@pytest.mark.parametrize("path", _float32_stacks(), ids=lambda path: path.name)
def test_real_maps_and_stacks_are_kept_as_float32(tmp_path, path):
    target = tmp_path / "out.mrcz"
    if read_layout(path).mapcrs != (1, 2, 3):
        target = tmp_path / "out.mrc"  # permuted axes convert to plain MRC only
    outcome = convert(path, target, compressor="zstd" if target.suffix == ".mrcz" else None)
    assert outcome.note.startswith(("stored as float32: not whole counts", "kept as it was"))
    assert gain_files(tmp_path) == []
    np.testing.assert_array_equal(bits(napari_mrcz.readMRC(target)[0]), bits(mrcfile.read(path)))


@pytest.mark.parametrize("gain_value", [0.9962297, 1.0173, 0.87312])
@pytest.mark.parametrize("counts", [(3, 4), (6, 7), (5, 7), (2, 3)])
def test_pixels_that_never_held_one_count_get_a_gain_that_gives_their_values_back(
    gain_value, counts
):
    """Only ever 3 and 4 counts (say): value / 4 reproduces both bit for bit, so the
    movie is separable; every float32 near smallest / q and larger / p is tried."""
    gain = np.float32(gain_value)
    movie = np.full((8, 4, 4), np.float32(counts[0]) * gain, dtype=np.float32)
    movie[1::2] = np.float32(counts[1]) * gain
    estimate = estimate_gain(movie, 1)
    assert estimate.problem is None
    again = (np.rint(movie / estimate.gain) * estimate.gain).astype(np.float32)
    assert again.view(np.uint32).tolist() == movie.view(np.uint32).tolist()


def test_a_short_poisson_movie_is_separated(tmp_path, rng):
    """Eight frames at 1.5 counts a pixel: some pixels never held one count."""
    gain = rng.uniform(0.9, 1.1, size=(64, 64)).astype(np.float32)
    movie = (rng.poisson(1.5, size=(8, 64, 64)).astype(np.float32) * gain).astype(np.float32)
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("gain-separated: int8 counts"), outcome.note
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)


def test_a_movie_of_three_and_four_counts_is_separated(tmp_path):
    movie = np.full((8, 4, 4), np.float32(3) * np.float32(0.9962297), dtype=np.float32)
    movie[1::2] = np.float32(4) * np.float32(0.9962297)
    target = tmp_path / "movie.mrcz"
    outcome = convert(write_movie(tmp_path / "movie.mrc", movie), target)
    assert outcome.note.startswith("gain-separated: int8 counts"), outcome.note
    assert_same_bits(napari_mrcz.readMRC(target)[0], movie)
