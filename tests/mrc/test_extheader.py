"""Extended headers: FEI1/FEI2 records parsed per section, other types sized.

Reference: mrcfile 1.5.4's ``indexed_extended_header`` for files it understands (FEI1 and
FEI2 records exactly the size of its table); hand-made records for what it does not read
(Velox's padded records, short and damaged headers).
"""

from __future__ import annotations

import struct
import warnings

import mrcfile
import numpy as np
import pytest
from mrcfile.dtypes import get_ext_header_dtype

import napari_mrcz
from napari_mrcz.mrc.extheader import fei_record_dtype, parse_extended_header
from napari_mrcz.mrc.header import FIELD_OFFSETS, HEADER_SIZE

from tests.helpers import SHARED_DATA

HAADF = None if SHARED_DATA is None else SHARED_DATA / "mrc" / "rsciio_HAADFscan.mrc"

#: Fields compared with mrcfile: every kind of value (int, text, float, bool, bitmask).
COMPARED = [
    "Metadata size",
    "Metadata version",
    "Bitmask 1",
    "Timestamp",
    "Microscope type",
    "Application",
    "HT",
    "Pixel size X",
    "Pixel size Y",
    "EFTEM On",
    "Camera name",
    "Dwell time",
    "Bitmask 4",
    "Alpha tilt max",
]
FEI2_ONLY = ["Scan rotation", "Acquisition time stamp", "Objective aperture name"]


def plain(value):
    """mrcfile's value as the plain Python value we return."""
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("latin-1")
    return value.item()


def fei_records(exttyp: str, nz: int, byteorder: str = "<") -> np.ndarray:
    """nz filled-in records in mrcfile's dtype (so that mrcfile can check us)."""
    records = np.zeros(nz, dtype=get_ext_header_dtype(exttyp.encode(), byteorder))
    for index, record in enumerate(records):
        record["Metadata size"] = records.dtype.itemsize
        record["Metadata version"] = 2 if exttyp == "FEI2" else 0
        record["Bitmask 1"] = 0x80000001 + index
        record["Bitmask 4"] = 7
        record["Timestamp"] = 44900.5 + index
        record["Microscope type"] = b"Krios"
        record["Application"] = b"EPU"
        record["Camera name"] = b"Falcon 4i"
        record["HT"] = 300000.0
        record["Pixel size X"] = 1.1e-10 * (index + 1)
        record["Pixel size Y"] = 1.2e-10
        record["EFTEM On"] = bool(index % 2)
        record["Dwell time"] = 1e-6
        record["Alpha tilt max"] = -60.0
        if exttyp == "FEI2":
            record["Scan rotation"] = 12.5
            record["Acquisition time stamp"] = 2**40 + index
            record["Objective aperture name"] = b"70 um"
    return records


def write_fei_file(path, exttyp: str, data: np.ndarray, records: np.ndarray) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(records)
        mrc.header.exttyp = exttyp.encode()


def mrcfile_records(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, permissive=True) as mrc:
            return mrc.indexed_extended_header.copy()


@pytest.mark.parametrize("exttyp", ["FEI1", "FEI2"])
def test_record_sizes_match_mrcfile(exttyp):
    assert fei_record_dtype(exttyp).itemsize == get_ext_header_dtype(exttyp.encode()).itemsize
    assert fei_record_dtype(exttyp).itemsize == {"FEI1": 768, "FEI2": 888}[exttyp]


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("exttyp", ["FEI1", "FEI2"])
def test_fei_records_match_mrcfile(exttyp, byteorder, tmp_path, rng):
    path = tmp_path / f"{exttyp}.mrc"
    data = rng.random((4, 6, 5), dtype=np.float32).astype(byteorder + "f4")
    write_fei_file(path, exttyp, data, fei_records(exttyp, 4, byteorder))
    reference = mrcfile_records(path)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    parsed = meta["extendedHeader"]
    assert parsed["type"] == exttyp
    assert "error" not in parsed
    assert len(parsed["records"]) == 4
    names = COMPARED + (FEI2_ONLY if exttyp == "FEI2" else [])
    for ours, theirs in zip(parsed["records"], reference, strict=True):
        for name in names:
            assert ours[name] == plain(theirs[name]), name
            assert type(ours[name]) in (int, float, str, bool), name
        assert set(ours) == set(reference.dtype.names) - {"Unused range"}
    assert parsed["records"][1]["Pixel size X"] == pytest.approx(2.2e-10)
    assert parsed["records"][3]["Bitmask 1"] == 0x80000004


def test_at_most_nz_records(tmp_path, rng):
    """Headers often hold room for more records than sections (Velox: 1024)."""
    path = tmp_path / "spare.mrc"
    data = rng.random((2, 4, 4), dtype=np.float32)
    write_fei_file(path, "FEI2", data, fei_records("FEI2", 5))
    _, meta = napari_mrcz.readMRC(path)
    assert [r["Timestamp"] for r in meta["extendedHeader"]["records"]] == [44900.5, 44901.5]
    assert napari_mrcz.readMRCHeader(path)[0]["extendedHeader"] == meta["extendedHeader"]


def test_velox_padded_records():
    """'Metadata size' larger than the table: it is the stride, the padding is skipped."""
    table = fei_record_dtype("FEI2")
    stride = 1024
    raw = bytearray(3 * stride)
    for index in range(3):
        record = np.zeros((), dtype=table)
        record["Metadata size"] = stride
        record["Metadata version"] = 2
        record["HT"] = 200000.0 + index
        record["Objective aperture name"] = b"None"
        raw[index * stride : index * stride + table.itemsize] = record.tobytes()
        raw[index * stride + table.itemsize : (index + 1) * stride] = b"\xff" * (
            stride - table.itemsize
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse_extended_header("FEI2", bytes(raw), 3, "velox.mrc")
    assert [r["HT"] for r in parsed["records"]] == [200000.0, 200001.0, 200002.0]
    assert all(r["Metadata size"] == stride for r in parsed["records"])
    assert parsed["records"][2]["Objective aperture name"] == "None"


def test_short_record_keeps_the_fields_that_fit():
    """An FEI2 header with FEI1-sized records (768 bytes) gives the FEI1 fields."""
    record = np.zeros(2, dtype=fei_record_dtype("FEI1"))
    record["Metadata size"] = 768
    record["HT"] = 120000.0
    parsed = parse_extended_header("FEI2", record.tobytes(), 2, "old.mrc")
    assert "error" not in parsed
    assert [r["HT"] for r in parsed["records"]] == [120000.0, 120000.0]
    assert "Scan rotation" not in parsed["records"][0]
    assert "Alpha tilt max" in parsed["records"][0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "cannot hold a record"),
        (b"\x00" * 6, "cannot hold a record"),
        (struct.pack("<ii", 0, 2) + bytes(900), "Metadata size"),
        (struct.pack("<ii", -888, 2) + bytes(900), "Metadata size"),
        (struct.pack("<ii", 888, 2) + bytes(500), "Metadata size"),
    ],
)
def test_damaged_fei_header_warns(raw, message):
    with pytest.warns(UserWarning, match=r"bad\.mrc: damaged FEI2 extended header"):
        parsed = parse_extended_header("FEI2", raw, 1, "bad.mrc")
    assert parsed["type"] == "FEI2"
    assert message in parsed["error"]
    assert parsed["records"] == []


@pytest.mark.parametrize("exttyp", ["SERI", "CCP4", "AGAR", "MRCO", ""])
def test_other_types_are_sized(exttyp, tmp_path, rng):
    path = tmp_path / "other.mrc"
    data = rng.random((3, 4, 4), dtype=np.float32)
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(np.frombuffer(bytes(range(200)), dtype="V1"))
        mrc.header.exttyp = exttyp.encode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["extendedHeader"] == {"type": exttyp, "size": 200}
    layout = napari_mrcz.open_lazy(path).layout
    assert layout.read_extended_header() == bytes(range(200))


def test_no_key_without_extended_header_or_for_json(tmp_path, rng):
    data = rng.random((2, 4, 4), dtype=np.float32)
    napari_mrcz.writeMRC(data, tmp_path / "plain.mrc")
    napari_mrcz.writeMRC(data, tmp_path / "json.mrc", meta={"key": "value"})
    assert "extendedHeader" not in napari_mrcz.readMRC(tmp_path / "plain.mrc")[1]
    meta = napari_mrcz.readMRC(tmp_path / "json.mrc")[1]
    assert meta["key"] == "value"
    assert "extendedHeader" not in meta


def test_truncated_fei_header_warns_and_reads_the_data(tmp_path, rng):
    """NSYMBT shrunk to half a record: a warning, the records that fit, the data intact."""
    records = fei_records("FEI1", 3)
    data = rng.random((3, 4, 4), dtype=np.float32)
    path = tmp_path / "truncated.mrc"
    write_fei_file(path, "FEI1", data, records)
    raw = path.read_bytes()
    nsymbt = int(1.5 * records.itemsize)
    header = bytearray(raw[:HEADER_SIZE])
    struct.pack_into("<i", header, FIELD_OFFSETS["nsymbt"], nsymbt)
    path.write_bytes(bytes(header) + raw[HEADER_SIZE : HEADER_SIZE + nsymbt] + data.tobytes())

    with pytest.warns(UserWarning, match="damaged FEI1 extended header.*1 complete record"):
        image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    parsed = meta["extendedHeader"]
    assert "fewer than the 3 sections" in parsed["error"]
    assert [r["Timestamp"] for r in parsed["records"]] == [44900.5]
    with pytest.warns(UserWarning, match="damaged FEI1"):
        lazy_meta = napari_mrcz.readMRCHeader(path)[0]
    assert lazy_meta["extendedHeader"] == parsed
    np.testing.assert_array_equal(napari_mrcz.open_lazy(path)[2], data[2])


def test_garbage_record_size_in_a_file_still_reads(tmp_path, rng):
    path = tmp_path / "garbage.mrc"
    data = rng.random((2, 4, 4), dtype=np.float32)
    write_fei_file(path, "FEI2", data, fei_records("FEI2", 2))
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE : HEADER_SIZE + 4] = struct.pack("<i", 10**8)
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="Metadata size"):
        image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert meta["extendedHeader"]["records"] == []


@pytest.mark.skipif(HAADF is None or not HAADF.is_file(), reason="real file absent")
def test_real_velox_fei2_file():
    """rsciio's HAADF scan: FEI2, NSYMBT 909312 (room for 1024 records), one section."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(HAADF, permissive=True) as mrc:
            reference_data = mrc.data.copy()
            reference = mrc.indexed_extended_header.copy()
            nsymbt = int(mrc.header.nsymbt)
    image, meta = napari_mrcz.readMRC(HAADF)
    np.testing.assert_array_equal(image, reference_data)
    assert nsymbt == 909312
    parsed = meta["extendedHeader"]
    assert parsed["type"] == "FEI2"
    assert "error" not in parsed
    assert len(parsed["records"]) == 1
    record = parsed["records"][0]
    for name in [
        "Metadata size",
        "Metadata version",
        "Microscope type",
        "Application",
        "HT",
        "Pixel size X",
        "Pixel size Y",
        "Camera name",
        "Dwell time",
        "Timestamp",
        "Scan rotation",
        "Detector commercial name",
    ]:
        assert record[name] == plain(reference[0][name]), name
    assert record["Microscope type"] == "Spectra"
    assert record["HT"] == 300000.0
    assert record["Metadata size"] == 888
