"""``mrcz compress --ungain``, ``--gain-reference`` and ``mrcz decompress --counts``,
driven as a facility would drive them: in a subprocess, on folders of movies."""

import io
import json
import os

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.wording import human_size

from tests.cli.commands import digest, leftovers, run
from tests.dm.builder import DMBuilder, stored_bytes
from tests.helpers import gain_normalised_movie


def write_movie(path, movie):
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path) as handle:
        handle.set_data(movie)
        handle.voxel_size = 0.85
    return path


def notes(result):
    """The summary's notes, by file name."""
    return {
        os.path.basename(line.split(": ", 2)[1]): line.split(": ", 2)[2]
        for line in result.stdout.splitlines()
        if line.startswith("note: ")
    }


def bits(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


@pytest.fixture
def session(tmp_path, rng):
    """A session folder: two gain-normalised movies of one gain, a motion-corrected
    movie and an int16 counting movie; each file's checksum, the gain and the aligned."""
    raw = tmp_path / "raw"
    movie_a, _, gain = gain_normalised_movie(rng, (40, 24, 32))
    movie_b = rng.poisson(1.0, movie_a.shape).astype(np.float32) * gain
    aligned = (0.5 * (movie_a + np.roll(movie_a, 1, axis=2))).astype(np.float32)
    files = {
        "a.mrc": write_movie(raw / "a.mrc", movie_a),
        "b.mrc": write_movie(raw / "b.mrc", movie_b),
        "aligned.mrc": write_movie(raw / "aligned.mrc", aligned),
        "counts.mrc": write_movie(
            raw / "counts.mrc", rng.poisson(1.0, (5, 24, 32)).astype(np.int16)
        ),
    }
    return raw, {name: digest(path) for name, path in files.items()}, gain, aligned


def test_a_session_is_archived_losslessly_with_one_gain(session, tmp_path):
    raw, digests, gain, aligned = session
    archive = tmp_path / "archive"
    result = run(
        "compress",
        raw,
        "-o",
        archive,
        "--ungain",
        "--jobs",
        "2",
        "--delete-source",
        check_status=0,
    )
    gain_files = [name for name in os.listdir(archive) if name.startswith("gain_")]
    assert len(gain_files) == 1
    said = notes(result)
    assert said["a.mrc"].startswith("gain-separated: int8 counts x gain_")
    assert said["b.mrc"].startswith("gain-separated: int8 counts x gain_")
    assert sum("(new)" in said[name] for name in ("a.mrc", "b.mrc")) == 1
    assert said["aligned.mrc"].startswith("stored as float32: not whole counts times one gain")
    assert said["counts.mrc"] == "kept as it was: int16 data, not float32"
    assert "4 source files deleted after verification" in result.stdout
    assert sorted(os.listdir(raw)) == []
    assert leftovers(archive) == []
    stored, _ = mrcz.readMRC(str(archive / gain_files[0]))
    np.testing.assert_array_equal(bits(stored), bits(gain))
    # The totals count the gain file once.
    total_out = sum(os.path.getsize(archive / name) for name in os.listdir(archive))
    assert f", {human_size(total_out)} out (" in result.stdout

    restored = tmp_path / "restored"
    result = run("decompress", archive, "-o", restored, "--verify", check_status=0)
    for name in ("a.mrc", "b.mrc"):
        assert digest(restored / name) == digests[name], name  # byte for byte
    # only the gain file's own record is left out of its plain copy, not the movies'
    assert "1 plain MRC output without the JSON metadata" in result.stdout
    np.testing.assert_array_equal(bits(mrcfile.read(restored / "aligned.mrc")), bits(aligned))


def test_validate_checks_the_gain_reference_beside_the_movie(session, tmp_path):
    """A gain-separated movie is only as good as its gain file: ``mrcz validate`` says
    when it is missing or is another gain, and names it."""
    raw, _, _, _ = session
    archive = tmp_path / "archive"
    run("compress", raw, "-o", archive, "--ungain", check_status=0)
    [gain_file] = [name for name in os.listdir(archive) if name.startswith("gain_")]
    movie = archive / "a.mrcz"
    assert run("validate", movie, check_status=0).stdout.startswith("OK")

    (archive / gain_file).rename(tmp_path / gain_file)
    result = run("validate", movie, check_status=1)
    assert f"INVALID  {movie}" in result.stdout
    assert f"its gain reference {gain_file} is not beside it" in result.stdout

    (tmp_path / gain_file).rename(archive / gain_file)
    whole = (archive / gain_file).read_bytes()
    (archive / gain_file).write_bytes(whole[:-100])  # its chunk cut short
    result = run("validate", movie, check_status=1)
    assert f"its gain reference {gain_file}: " in result.stdout

    other_gain = np.ones((24, 32), dtype=np.float32)
    with mrcfile.new(archive / gain_file, overwrite=True) as handle:
        handle.set_data(other_gain)
    result = run("validate", movie, check_status=1)
    assert "not the gain reference it was made with" in result.stdout
    run("validate", "--no-stats", movie, check_status=1)  # the gain is a header matter


def test_a_facility_gain_in_dm4_is_turned_to_fit(tmp_path, rng):
    movie, counts, gain = gain_normalised_movie(rng, (8, 24, 24))
    raw = write_movie(tmp_path / "raw" / "movie.mrc", movie)
    builder = DMBuilder(4, "<")
    upside_down = np.ascontiguousarray(gain[::-1])  # as DigitalMicrograph stores it
    image = builder.image(2, [24, 24], stored_bytes(upside_down, "<"), name="gain", data_code=6)
    reference = tmp_path / "CountRef.dm4"
    reference.write_bytes(builder.file([image]))
    archive = tmp_path / "archive"
    result = run("compress", raw, "-o", archive, "--gain-reference", reference, check_status=0)
    assert notes(result)["movie.mrc"].startswith("gain-separated: int8 counts x gain_")
    [summary] = json.loads(run("info", "--json", archive / "movie.mrcz", check_status=0).stdout)
    source = summary["gain_separated"]["gain_source"]
    assert (source["rotate"], source["flip"]) == (0, "y")
    assert source["reference"] == str(reference)
    info = run("info", archive / "movie.mrcz", check_status=0).stdout
    assert "gain-separated: int8 counts x gain_" in info
    # Given the wrong way round, the movie is kept as float32, losslessly.
    result = run(
        "compress",
        raw,
        "-o",
        tmp_path / "wrong",
        "--gain-reference",
        reference,
        "--gain-flip",
        "x",
        check_status=0,
    )
    assert notes(result)["movie.mrc"].startswith("stored as float32: not whole counts")
    stored, _ = mrcz.readMRC(str(tmp_path / "wrong" / "movie.mrcz"))
    np.testing.assert_array_equal(bits(stored), bits(movie))
    # For motion correction: the counts and the gain as plain MRC.
    plain = tmp_path / "plain"
    result = run("decompress", archive, "-o", plain, "--counts", "--verify", check_status=0)
    # Plain MRC2014, both: the counts leave out the record naming their gain
    assert "2 plain MRC outputs without the JSON metadata" in result.stdout
    gain_file = next(name for name in os.listdir(plain) if name.startswith("gain_"))
    assert gain_file.endswith(".mrc")
    assert notes(result)["movie.mrcz"].startswith(f"counts x {gain_file}")
    np.testing.assert_array_equal(mrcfile.read(plain / "movie.mrc"), counts)
    np.testing.assert_array_equal(bits(mrcfile.read(plain / gain_file)), bits(gain))
    for name in ("movie.mrc", gain_file):
        report = io.StringIO()
        assert mrcfile.validate(str(plain / name), print_file=report), report.getvalue()
    np.testing.assert_array_equal(napari_mrcz.readMRC(plain / "movie.mrc")[0], counts)
    # With --keep-json the counts keep the record, and read as the float32 movie again.
    kept = tmp_path / "kept"
    result = run(
        "decompress", archive, "-o", kept, "--counts", "--keep-json", "--verify", check_status=0
    )
    assert "without the JSON metadata" not in result.stdout
    np.testing.assert_array_equal(bits(napari_mrcz.readMRC(kept / "movie.mrc")[0]), bits(movie))
    np.testing.assert_array_equal(napari_mrcz.readMRC(kept / "movie.mrc", counts=True)[0], counts)


def test_an_unreadable_gain_reference_stops_the_run(tmp_path, rng):
    raw = write_movie(tmp_path / "movie.mrc", gain_normalised_movie(rng, (4, 8, 8))[0])
    result = run(
        "compress",
        raw,
        "-o",
        tmp_path / "out",
        "--gain-reference",
        tmp_path / "none.dm4",
        check_status=2,
    )
    assert "none.dm4" in result.stderr
    assert not (tmp_path / "out").exists()
