"""The 1024-byte header (napari_mrcz.mrc.header): where each field lies, as mrcfile and
python-mrcz define it, the blank header we start from, labels, machine stamps and the
"not determined" statistics, each checked against the libraries that define them."""

import io
import json

import mrcfile
import mrcfile.dtypes
import mrcfile.utils
import mrcz
import numpy as np
import pytest

from napari_mrcz.mrc.header import (
    FIELD_MEANINGS,
    HEADER_DTYPE,
    HEADER_SIZE,
    LABEL_SIZE,
    N_LABELS,
    UNKNOWN_STATS,
    decode_labels,
    header_dtype,
    header_fields,
    machine_stamp,
    new_header,
    set_labels,
    stamp_byteorder,
    stats_determined,
)

MRCFILE_HEADER = mrcfile.dtypes.HEADER_DTYPE


def _span(dtype: np.dtype, name: str) -> tuple[int, int]:
    field_dtype, offset = dtype.fields[name][:2]
    return offset, offset + field_dtype.itemsize


def _read_header(path, byteorder: str) -> np.ndarray:
    with open(path, "rb") as handle:
        raw = handle.read(HEADER_SIZE)
    return np.frombuffer(raw, dtype=header_dtype(byteorder)).reshape(())


def _values(value) -> list:
    """A header field as a flat list of Python values (mrcfile nests CELLA, ORIGIN)."""
    plain = value.tolist() if value.dtype.names else value
    return np.asarray(plain, dtype=object).ravel().tolist()


# --------------------------------------------------------------------------- field layout


def test_header_is_as_long_as_mrcfiles():
    assert HEADER_DTYPE.itemsize == MRCFILE_HEADER.itemsize == HEADER_SIZE


def test_every_field_mrcfile_names_lies_where_mrcfile_puts_it():
    named = [name for name in MRCFILE_HEADER.names if not name.startswith("extra")]
    assert set(named) <= set(HEADER_DTYPE.names)
    for name in named:
        assert _span(HEADER_DTYPE, name) == _span(MRCFILE_HEADER, name), name


def test_our_extra_fields_lie_in_bytes_mrcfile_leaves_unused():
    """python-mrcz's and IMOD's fields only use bytes that MRC2014 (mrcfile) calls extra."""
    unused = [_span(MRCFILE_HEADER, name) for name in MRCFILE_HEADER.names if "extra" in name]
    ours = [name for name in HEADER_DTYPE.names if name not in MRCFILE_HEADER.names]
    ours += [name for name in HEADER_DTYPE.names if name.startswith("extra")]
    assert {"voltage", "cs", "gain", "packed_bytes", "imod_stamp", "imod_flags"} <= set(ours)
    for name in ours:
        start, end = _span(HEADER_DTYPE, name)
        assert any(low <= start and end <= high for low, high in unused), name


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_header_of_an_mrcfile_file_reads_as_mrcfile_reads_it(tmp_path, rng, byteorder):
    data = rng.normal(size=(3, 5, 7)).astype(byteorder + "f4")
    path = tmp_path / "ref.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (1.25, 2.5, 3.75)
        mrc.header.origin = (10.0, 20.0, 30.0)
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = -3, 4, 5
        mrc.header.exttyp = b"SERI"
        mrc.add_label("second label")
    with open(path, "rb") as handle:
        assert stamp_byteorder(handle.read(HEADER_SIZE)[212:216]) == byteorder
    ours = _read_header(path, byteorder)
    with mrcfile.open(path) as mrc:
        theirs = mrc.header
        for name in MRCFILE_HEADER.names:
            if not name.startswith("extra"):
                assert _values(ours[name]) == _values(theirs[name]), name


@pytest.mark.parametrize("endian", ["le", "be"])
def test_python_mrcz_fields_read_as_python_mrcz_reads_them(tmp_path, rng, endian):
    """Voltage, Cs, gain and the packed size at bytes 132-151, and slices per frame in MZ."""
    frames = [rng.normal(size=(2, 6, 8)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "python-mrcz.mrcz"
    mrcz.writeMRC(
        frames, str(path), voltage=300.0, C3=2.7, gain=1.5, compressor="zstd", endian=endian
    )
    theirs, slices = mrcz.readMRCHeader(str(path), endian=endian)
    ours = _read_header(path, "<" if endian == "le" else ">")
    assert float(ours["voltage"]) == pytest.approx(theirs["voltage"])
    assert float(ours["cs"]) == pytest.approx(theirs["C3"])
    assert float(ours["gain"]) == pytest.approx(theirs["gain"])
    assert int(ours["packed_bytes"]) == theirs["packedBytes"] > 0
    assert int(ours["mz"]) == slices == 2
    assert int(ours["mode"]) % 1000 == theirs["MRCtype"]


def test_header_dtype_swaps_every_multibyte_field():
    little, big = header_dtype("<"), header_dtype(">")
    assert big.names == little.names == HEADER_DTYPE.names
    for name in HEADER_DTYPE.names:
        base = little.fields[name][0].base
        if base.itemsize > 1 and base.kind in "iuf":
            assert base.byteorder in "<=", name
            assert big.fields[name][0].base.byteorder == ">", name


# --------------------------------------------------------------------------- machine stamp


@pytest.mark.parametrize(
    "stamp", [b"\x44\x44\x00\x00", b"\x44\x41\x00\x00", b"\x11\x11\x00\x00"], ids=bytes.hex
)
def test_stamps_mrcfile_recognises_declare_its_byte_order(stamp):
    assert stamp_byteorder(stamp) == mrcfile.utils.byte_order_from_machine_stamp(stamp)


@pytest.mark.parametrize("stamp", [b"\0\0\0\0", b"\x00\x00\x44\x44", b"\x20\x20\x20\x20"])
def test_stamps_without_an_order_declare_none(stamp):
    assert stamp_byteorder(stamp) is None


@pytest.mark.parametrize("endian", ["le", "be"])
def test_we_write_python_mrczs_stamp_which_mrcfile_reads(tmp_path, endian):
    path = tmp_path / "stamp.mrc"
    mrcz.writeMRC(np.zeros((1, 2, 2), np.float32), str(path), endian=endian)
    with open(path, "rb") as handle:
        theirs = handle.read(HEADER_SIZE)[212:216]
    byteorder = "<" if endian == "le" else ">"
    assert machine_stamp(byteorder) == theirs
    assert mrcfile.utils.byte_order_from_machine_stamp(machine_stamp(byteorder)) == byteorder
    assert stamp_byteorder(machine_stamp(byteorder)) == byteorder


# --------------------------------------------------------------------------- a new header


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_new_header_with_a_grid_is_valid_mrc2014(tmp_path, rng, byteorder):
    data = rng.normal(size=(2, 3, 4)).astype(byteorder + "f4")
    header = new_header(byteorder)
    header["nz"], header["ny"], header["nx"] = data.shape
    header["mz"], header["my"], header["mx"] = data.shape
    header["cella"] = (4.0, 3.0, 2.0)
    header["mode"] = mrcfile.utils.mode_from_dtype(data.dtype)
    path = tmp_path / "new.mrc"
    path.write_bytes(header.tobytes() + data.tobytes())
    report = io.StringIO()
    assert mrcfile.validate(path, print_file=report), report.getvalue()
    with mrcfile.open(path) as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert mrc.data.dtype == data.dtype
        assert tuple(mrc.voxel_size.tolist()) == (1.0, 1.0, 1.0)


def test_new_header_agrees_with_mrcfiles_blank_header(tmp_path):
    """Byte for byte, but for what MRC2014 leaves to the writer: the space group (set
    by the writer), the labels and the choice of little-endian stamp (44 41 or 44 44)."""
    path = tmp_path / "blank.mrc"
    with mrcfile.new(path):
        pass
    with mrcfile.open(path, permissive=True) as mrc:
        theirs = mrc.header.copy()
    ours = np.frombuffer(new_header("<").tobytes(), dtype=MRCFILE_HEADER).reshape(())
    for name in MRCFILE_HEADER.names:
        if name not in ("ispg", "label", "nlabl", "machst"):
            assert ours[name].tobytes() == theirs[name].tobytes(), name
    assert mrcfile.utils.byte_order_from_machine_stamp(ours["machst"]) == "<"
    assert int(ours["nlabl"]) == 0
    assert decode_labels(new_header("<")) == []


# --------------------------------------------------------------------------- statistics


def test_unknown_stats_are_what_mrcfile_writes_for_unknown(tmp_path):
    path = tmp_path / "reset.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((2, 2), np.float32))
        mrc.reset_header_stats()
    with mrcfile.open(path) as mrc:
        header = mrc.header
        assert (header.dmin, header.dmax, header.dmean, header.rms) == UNKNOWN_STATS
    assert stats_determined(*UNKNOWN_STATS) == dict.fromkeys(("min", "max", "mean", "rms"), False)


def test_stats_mrcfile_computes_are_determined(tmp_path, rng):
    path = tmp_path / "stats.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(3, 4, 5)).astype(np.float32))
        mrc.update_header_stats()
        header = mrc.header
        stats = (float(header.dmin), float(header.dmax), float(header.dmean), float(header.rms))
    assert all(stats_determined(*stats).values())


def test_complex_data_has_only_its_rms_determined(tmp_path, rng):
    """mrcfile leaves min, max and mean of complex data unset but sets RMS."""
    path = tmp_path / "complex.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data((rng.normal(size=(2, 3, 4)) + 1j).astype(np.complex64))
        mrc.update_header_stats()
        header = mrc.header
        stats = (float(header.dmin), float(header.dmax), float(header.dmean), float(header.rms))
    assert stats_determined(*stats) == {"min": False, "max": False, "mean": False, "rms": True}


def test_constant_data_has_determined_stats():
    """DMIN == DMAX is a determined (flat) range, RMS 0 a determined RMS."""
    assert all(stats_determined(5.0, 5.0, 5.0, 0.0).values())


# --------------------------------------------------------------------------- labels


def test_labels_we_set_are_the_labels_mrcfile_reads(tmp_path):
    labels = ["first", "", "Å ngström", "x" * 100] + [f"label {n}" for n in range(10)]
    header = new_header("<")
    header["nx"] = header["ny"] = header["nz"] = 1
    header["mode"] = 2
    set_labels(header, labels)
    path = tmp_path / "labels.mrc"
    path.write_bytes(header.tobytes() + np.zeros(1, np.float32).tobytes())
    with mrcfile.open(path) as mrc:
        assert int(mrc.header.nlabl) == N_LABELS
        theirs = [bytes(label).decode("latin-1").rstrip("\0 ") for label in mrc.header.label]
    assert theirs == [*labels[:3], "x" * LABEL_SIZE, *labels[4:N_LABELS]]
    assert decode_labels(header) == theirs


def test_characters_latin1_lacks_are_replaced_not_refused():
    header = new_header("<")
    set_labels(header, ["arrow → here"])
    assert decode_labels(header) == ["arrow ? here"]


def test_fewer_labels_clear_the_old_ones():
    header = new_header("<")
    set_labels(header, ["a", "b", "c"])
    set_labels(header, ["only"])
    assert int(header["nlabl"]) == 1
    assert decode_labels(header) == ["only"]


def test_labels_mrcfile_adds_decode_with_empty_ones_kept_inside(tmp_path):
    path = tmp_path / "added.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((2, 2), np.float32))
        mrc.add_label("")
        mrc.add_label("after an empty one")
    with mrcfile.open(path) as mrc:
        expected = [label.rstrip() for label in mrc.get_labels()]
    assert decode_labels(_read_header(path, "<")) == expected
    assert expected[1:] == ["", "after an empty one"]


def test_undecodable_label_bytes_never_fail():
    header = new_header("<")
    header["label"][0] = bytes(range(128, 208))
    header["label"][4] = b"\xff\xfe trailing  \0\0"
    labels = decode_labels(header)
    assert len(labels) == 5
    assert labels[0] == bytes(range(128, 208)).decode("latin-1")
    assert labels[4] == "\xff\xfe trailing"


# --------------------------------------------------------------------------- header_fields


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_header_fields_are_json_and_agree_with_mrcfile(tmp_path, rng, byteorder):
    path = tmp_path / "fields.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(2, 3, 4)).astype(byteorder + "f4"))
        mrc.voxel_size = 1.5
        mrc.header.exttyp = b"FEI1"
        mrc.add_label("hello")
    fields = json.loads(json.dumps(header_fields(_read_header(path, byteorder), byteorder)))
    with mrcfile.open(path) as mrc:
        header = mrc.header
        for name in ("nx", "ny", "nz", "mode", "mx", "my", "mz", "mapc", "nsymbt", "nlabl"):
            assert fields[name] == int(header[name]), name
        assert fields["cella"] == pytest.approx(list(header.cella.tolist()))
        assert fields["dmean"] == pytest.approx(float(header.dmean))
        assert fields["exttyp"] == "FEI1"
        assert fields["map"] == "MAP "
        assert fields["machst"] == bytes(header.machst).hex(" ")
        assert fields["label"] == [label.rstrip() for label in mrc.get_labels()]
    assert fields["byteorder"] == {"<": "little", ">": "big"}[byteorder]
    assert not [name for name in fields if name.startswith("extra")]


def test_every_field_shown_has_a_meaning():
    fields = header_fields(new_header("<"), "<")
    assert set(fields) <= set(FIELD_MEANINGS)
    assert all(FIELD_MEANINGS[name] for name in fields)
