"""Which names are ours: every EM suffix a user brings is read, nothing else is claimed.

The suffixes decide what the command line picks out of a folder, what napari hands
to the reader (the manifest's patterns must be the same list) and what name an
output gets (the input's name without its EM suffix, ``.map.gz`` included).
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

from napari_mrcz.suffixes import (
    COMPRESSED_SUFFIX,
    PLAIN_SUFFIXES,
    READABLE_SUFFIXES,
    is_mrcz,
    is_readable,
    strip_suffix,
)

MANIFEST = pathlib.Path(__file__).resolve().parents[1] / "napari_mrcz" / "napari.yaml"

#: What EM software writes and users bring: SerialEM/IMOD tilt series and tomograms,
#: RELION particle stacks, EMDB maps (also as downloaded, gzipped), DigitalMicrograph.
USERS_FILES = [
    "movie.mrcz",
    "micrograph.mrc",
    "particles.mrcs",
    "emd_1234.map",
    "tilt.st",
    "tilt.ali",
    "tilt.preali",
    "tomogram.rec",
    "ccp4_map.ccp4",
    "emd_1234.map.gz",
    "frames.mrc.bz2",
    "stack.mrcs.gz",
    "image.dm4",
    "image.dm3",
]


@pytest.mark.parametrize("name", USERS_FILES)
def test_every_em_file_a_user_brings_is_readable(name):
    assert is_readable(name)
    assert is_readable(name.upper())
    assert is_readable(f"/data/session 1/{name}")


@pytest.mark.parametrize(
    "name",
    [
        "image.tif",
        "notes.txt",
        "movie.mrc.txt",
        "movie.mrcz.gz",  # compressed twice: not something we read
        "tilt.st.gz",
        "archive.gz",
        "image.dm5",
        "mrc",
        "",
    ],
)
def test_other_names_are_not_claimed(name):
    assert not is_readable(name)


@pytest.mark.parametrize("name", ["movie.mrcz", "MOVIE.MRCZ", "dir.mrc/movie.Mrcz"])
def test_mrcz_is_told_by_its_suffix_in_any_case(name):
    assert is_mrcz(name)


@pytest.mark.parametrize("name", ["movie.mrc", "movie.mrcz.gz", "movie.mrcz.bak", "mrcz"])
def test_other_names_are_not_mrcz(name):
    assert not is_mrcz(name)


def test_what_we_write_we_also_read_and_only_mrcz_is_compressed():
    for suffix in PLAIN_SUFFIXES:
        assert is_readable("out" + suffix)
        assert not is_mrcz("out" + suffix)
    assert is_readable("out" + COMPRESSED_SUFFIX)
    assert is_mrcz("out" + COMPRESSED_SUFFIX)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("emd_1234.map.gz", "emd_1234"),
        ("frames.mrc.bz2", "frames"),
        ("movie.mrcz", "movie"),
        ("stack.mrcs", "stack"),
        ("tilt.preali", "tilt"),
        ("tilt.ali", "tilt"),
        ("Movie_001.MRC", "Movie_001"),
        ("Grid3.Square7.DM4", "Grid3.Square7"),
        ("run.2024.01.rec", "run.2024.01"),
    ],
)
def test_strip_suffix_removes_the_whole_em_suffix_and_keeps_the_stem_as_written(name, stem):
    assert strip_suffix(name) == stem


@pytest.mark.parametrize("name", ["notes.txt", "image.tif", "movie.mrcz.gz", "tilt.st.gz", ""])
def test_strip_suffix_leaves_other_names_alone(name):
    assert strip_suffix(name) == name


def test_strip_suffix_removes_one_suffix_only():
    """A copy named twice keeps the first suffix: outputs do not lose part of their name."""
    assert strip_suffix("movie.mrc.mrcz") == "movie.mrc"
    assert strip_suffix("image.dm4.mrc") == "image.dm4"


def test_every_readable_name_gives_a_stem_that_is_not_readable_again():
    for suffix in READABLE_SUFFIXES:
        name = "sample" + suffix
        assert strip_suffix(name) == "sample", name


def test_napari_hands_the_reader_exactly_the_files_the_engine_reads():
    """The manifest is read as YAML: napari and npe2 are not imported."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    [reader] = manifest["contributions"]["readers"]
    assert sorted(reader["filename_patterns"]) == sorted("*" + s for s in READABLE_SUFFIXES)


def test_napari_offers_the_writers_for_the_suffixes_we_write():
    manifest = yaml.safe_load(MANIFEST.read_text())
    extensions = {
        writer["command"]: writer["filename_extensions"]
        for writer in manifest["contributions"]["writers"]
    }
    assert extensions["napari-mrcz.write_mrcz"] == [COMPRESSED_SUFFIX]
    assert extensions["napari-mrcz.write_mrc"] == list(PLAIN_SUFFIXES)
