"""Gain references (napari_mrcz.gain.store): one gain file per folder, turned to fit."""

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.gain.separation import GainSettings
from napari_mrcz.gain.store import GainReference, GainStore
from napari_mrcz.mrc.layout import read_layout

from tests.dm.builder import DMBuilder, stored_bytes
from tests.gain.movies import assert_same_bits, convert, gain_files, write_movie
from tests.helpers import gain_normalised_movie

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
