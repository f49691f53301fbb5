"""Converting movies with --ungain (napari_mrcz.gain.separation): counts plus one gain,
or the movie as it is with the reason.

Outputs are read back by mrcfile and the real python-mrcz.
"""

import io

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.gain.estimate import estimate_gain
from napari_mrcz.gain.separation import GainSettings
from napari_mrcz.gain.store import GainStore
from napari_mrcz.mrc.layout import read_layout

from tests.dm.builder import DMBuilder, stored_bytes
from tests.gain.movies import assert_same_bits, bits, convert, gain_files, write_movie
from tests.helpers import gain_normalised_movie, real_files

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
        (
            np.ones((5, 8, 8), ">f4"),
            "kept as it was: big-endian float32 (gain separation takes little-endian movies)",
        ),
    ],
    ids=["int16", "single image", "big-endian"],
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


def test_a_value_that_is_no_count_is_named_in_plain_numbers(tmp_path, rng):
    _, counts, gain = gain_normalised_movie(rng, (40, 24, 32))
    movie = counts.astype(np.float32) * gain
    movie[3, 4, 5] = np.inf
    source = write_movie(tmp_path / "movie.mrc", movie)
    outcome = convert(source, tmp_path / "movie.mrcz")
    assert "such as inf at (y=4, x=5) with gain " in outcome.note
    assert "np.float32" not in outcome.note
