"""The gain-separation record of a file's JSON meta (napari_mrcz.mrc.gainmeta): a good
record survives JSON and python-mrcz's reading and writing of the meta unchanged, the
gain checksum is SHA-256 of the little-endian float32 values, and every kind of damage
is one MRCZFormatError naming the file, never another exception or a misreading."""

import base64
import copy
import hashlib
import json

import mrcfile
import mrcz
import numpy as np
import pytest

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.gainmeta import (
    GAIN_FORMAT_VERSION,
    ORIGINAL_DTYPE,
    GainSeparation,
    describe_gain_source,
    gain_digest,
    gain_separation,
)
from napari_mrcz.mrc.header import HEADER_SIZE
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.layout import read_layout

PATH = "/data/movie.mrcz"


@pytest.fixture
def gain(rng):
    return (1 + 0.05 * rng.uniform(-1, 1, (12, 16))).astype(np.float32)


@pytest.fixture
def original(tmp_path, rng):
    """The header and an FEI extended header of a float32 movie mrcfile wrote."""
    path = tmp_path / "original.mrc"
    extended = bytes(rng.integers(0, 256, 2 * 768, dtype=np.uint8))
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(2, 12, 16)).astype(np.float32))
        mrc.set_extended_header(np.frombuffer(extended, dtype="V1"))
        mrc.header.exttyp = b"FEI1"
        mrc.voxel_size = 0.83
    raw = path.read_bytes()
    return raw[:HEADER_SIZE], extended


@pytest.fixture
def record(gain, original) -> GainSeparation:
    header, extended = original
    return GainSeparation(
        gain_file=f"gain_{gain_digest(gain)[:12]}.mrcz",
        gain_sha256=gain_digest(gain),
        statistics=tuple(np.float32(value) for value in (-1.5, 7.25, 1.0, 0.5)),
        original_header=header,
        original_extended_header=extended,
        gain_source={"reference": "gain.dm4", "rotate": 90, "flip": "x", "orientation": "given"},
    )


def meta_of(separation: GainSeparation) -> dict:
    """The JSON meta of a file holding ``separation``, as it reads back from disk."""
    return json.loads(json.dumps({"user": [1, 2], GAIN_KEY: separation.to_json()}))


def damaged(record: GainSeparation, change) -> dict:
    meta = meta_of(record)
    change(meta[GAIN_KEY])
    return meta


# --------------------------------------------------------------------------- good records


def test_a_record_survives_json_unchanged(record):
    meta = meta_of(record)
    before = copy.deepcopy(meta)
    assert gain_separation(meta, PATH) == record
    assert meta == before  # read, not taken out: python-mrcz users see it too


def test_the_original_header_comes_back_byte_for_byte(record, original):
    separation = gain_separation(meta_of(record), PATH)
    assert separation.original_header == original[0]
    assert separation.original_extended_header == original[1]
    # plain base64, for anyone reading the JSON without napari-mrcz
    stored = meta_of(record)[GAIN_KEY]["original"]
    assert base64.b64decode(stored["header"]) == original[0]
    assert stored["dtype"] == ORIGINAL_DTYPE.name == "float32"


def test_the_record_python_mrcz_reads_is_the_one_written(tmp_path, rng, record):
    """python-mrcz reads the meta into its header dict, and writes it back on a re-save."""
    counts = rng.poisson(1.0, (3, 12, 16)).astype(np.int16)
    first = tmp_path / "first.mrcz"
    mrcz.writeMRC(counts, str(first), meta={GAIN_KEY: record.to_json()}, compressor="zstd")
    image, header = mrcz.readMRC(str(first))
    assert gain_separation(header, str(first)) == record
    resaved = tmp_path / "resaved.mrcz"
    mrcz.writeMRC(image, str(resaved), meta={GAIN_KEY: header[GAIN_KEY]}, compressor="zstd")
    assert read_layout(resaved).gain_separation == record


def test_a_minimal_record_has_no_statistics_header_or_source():
    digest = "0123456789abcdef" * 4
    separation = gain_separation({GAIN_KEY: {"gain_file": "g.mrcz", "gain_sha256": digest}}, PATH)
    assert separation == GainSeparation("g.mrcz", digest)
    assert separation.statistics is None
    assert separation.original_header is separation.original_extended_header is None
    assert separation.gain_source == {}


def test_the_written_record_is_plain_json_of_this_version(record):
    written = record.to_json()
    assert json.loads(json.dumps(written)) == written  # numpy statistics became floats
    assert written["version"] == GAIN_FORMAT_VERSION
    assert "integer electron counts" in written["description"]
    assert all(type(value) is float for value in written["original"]["statistics"])


def test_keys_the_reader_does_not_know_are_ignored(record):
    meta = damaged(record, lambda stored: stored.update(note="added by a user"))
    assert gain_separation(meta, PATH) == record


@pytest.mark.parametrize("meta", [None, {}, {"user": 1}])
def test_meta_without_a_record_has_none(meta):
    assert gain_separation(meta, PATH) is None


# --------------------------------------------------------------------------- the checksum


def test_gain_digest_is_sha256_of_the_little_endian_float32_rows(gain):
    expected = hashlib.sha256(gain.astype("<f4").tobytes(order="C")).hexdigest()
    assert gain_digest(gain) == expected


def test_gain_digest_is_the_same_however_the_gain_is_held(tmp_path, gain):
    """A big-endian file, a Fortran-ordered or float64 copy: the same values, one digest."""
    path = tmp_path / "gain.mrc"
    mrcfile.write(path, gain.astype(">f4"))
    from_file = mrcfile.read(path)
    assert from_file.dtype.byteorder == ">"
    for held in (from_file, np.asfortranarray(gain), gain.astype(np.float64)):
        assert gain_digest(held) == gain_digest(gain)


def test_gain_digest_sees_one_changed_bit(gain):
    changed = gain.copy()
    changed.view(np.uint32)[3, 4] ^= 1
    assert gain_digest(changed) != gain_digest(gain)


# --------------------------------------------------------------------------- damaged records


def assert_refused(meta, pattern) -> MRCZFormatError:
    with pytest.raises(MRCZFormatError, match=pattern) as info:
        gain_separation(meta, PATH)
    assert type(info.value) is MRCZFormatError
    assert info.value.path == PATH
    return info.value


@pytest.mark.parametrize("stored", [None, [], "gain.mrcz", 7, True])
def test_a_record_that_is_not_an_object_is_damaged(stored):
    assert_refused({GAIN_KEY: stored}, "record is damaged")


@pytest.mark.parametrize("version", [GAIN_FORMAT_VERSION + 1, 99])
def test_a_later_version_is_refused_as_later_even_if_unreadable(record, version):
    """A later format may look damaged to this reader: it must say update, not damaged."""
    assert_refused({GAIN_KEY: {"version": version}}, "later napari-mrcz")
    meta = damaged(record, lambda stored: stored.update(version=version))
    assert "update napari-mrcz" in str(assert_refused(meta, "later"))


@pytest.mark.parametrize(
    "statistics", [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0], []], ids=["3", "5", "0"]
)
def test_statistics_other_than_four_numbers_are_damaged(record, statistics):
    meta = damaged(record, lambda stored: stored["original"].update(statistics=statistics))
    assert_refused(meta, "damaged statistics")


@pytest.mark.parametrize("statistics", [7, ["min", 2.0, 3.0, 4.0], [None, 1, 2, 3]])
def test_statistics_that_are_not_numbers_are_damaged(record, statistics):
    meta = damaged(record, lambda stored: stored["original"].update(statistics=statistics))
    assert_refused(meta, "record is damaged")


def test_an_extended_header_that_is_not_base64_is_damaged(record):
    meta = damaged(record, lambda stored: stored["original"].update(extended_header="not base64!"))
    assert_refused(meta, "record is damaged")


@pytest.mark.parametrize("source", ["estimated", 5, [1, 2]])
def test_a_gain_source_that_is_not_a_mapping_is_damaged(record, source):
    meta = damaged(record, lambda stored: stored.update(gain_source=source))
    assert_refused(meta, "record is damaged")


@pytest.mark.parametrize("value", [None, [], "float32", 4])
def test_an_original_that_is_not_an_object_is_damaged(record, value):
    meta = damaged(record, lambda stored: stored.update(original=value))
    assert_refused(meta, "record is damaged")


@pytest.mark.parametrize(
    "digest",
    ["A" * 64, "g" * 64, "0" * 65, 12345, None, " " + "0" * 63],
    ids=["upper case", "not hex", "65 digits", "a number", "null", "a space"],
)
def test_a_checksum_that_is_not_a_sha256_is_refused(record, digest):
    meta = damaged(record, lambda stored: stored.update(gain_sha256=digest))
    assert_refused(meta, "is not a SHA-256")


@pytest.mark.parametrize(
    "name", ["/abs/gain.mrcz", "sub/gain.mrcz", "", ".", "..", None, ["gain.mrcz"]]
)
def test_a_gain_file_that_is_not_beside_the_file_is_refused(record, name):
    meta = damaged(record, lambda stored: stored.update(gain_file=name))
    assert_refused(meta, "is not a file beside it")


# --------------------------------------------------------------------------- in words


def test_an_estimated_gain_names_the_movie_it_came_from():
    assert describe_gain_source({"estimated_from": "movie_001.tif"}) == (
        "estimated from movie_001.tif"
    )


def test_a_reference_gain_says_how_it_was_turned(record):
    words = describe_gain_source(gain_separation(meta_of(record), PATH).gain_source)
    assert words.startswith("gain.dm4 (")
    assert "rotated 90°" in words
    assert "flip x" in words
    assert "given" in words


def test_a_reference_without_a_turn_says_none():
    assert describe_gain_source({"reference": "gain.mrc"}) == "gain.mrc (rotated 0°, flip none)"


def test_an_unrecorded_source_says_so():
    assert describe_gain_source({}) == "not recorded"


def test_a_later_version_written_as_a_float_is_refused_as_later(record):
    meta = damaged(record, lambda stored: stored.update(version=2.0))
    assert_refused(meta, "later napari-mrcz")


def test_statistics_given_as_text_are_damaged(record):
    meta = damaged(record, lambda stored: stored["original"].update(statistics="1234"))
    assert_refused(meta, "record is damaged")
