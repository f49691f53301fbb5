"""validate_file: mrcfile's verdict on real files, clean files from three writers, damage.

Reference: ``mrcfile.validate`` (1.5), whose printed messages are mapped to our check
ids (:data:`MRCFILE_MESSAGES`) so that not only the verdict but the failed checks are
compared. Where we differ on purpose (napari_mrcz/validate.py's docstring) the test
asserts the difference.
"""

from __future__ import annotations

import gzip
import io
import pathlib
import warnings

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
import napari_mrcz.dm.images
import napari_mrcz.tools.validate
from napari_mrcz.mrc.codecs import CHUNK_HEADER_SIZE
from napari_mrcz.mrc.header import (
    HEADER_SIZE,
    IMOD_STAMP,
    header_dtype,
    new_header,
    stamp_byteorder,
)
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.slices import SliceReader
from napari_mrcz.tools.validate import Finding, validate_file

from tests.helpers import real_files

#: Beginning of each message mrcfile.validate prints -> our check id.
MRCFILE_MESSAGES = {
    "Map ID string is incorrect": "map-id",
    "Invalid machine stamp": "machine-stamp",
    "Invalid mode": "mode",
    "Header field": "negative-field",
    "Cell dimension": "cell",
    "Invalid axis mapping": "axes",
    "Error in dimensions for volume stack": "volume-stack",
    "Error in header labels": "labels",
    "File does not declare MRC format version": "nversion",
    "Extended header type is undefined": "exttyp",
    "Data statistics appear to be inaccurate: RMS": "stats-rms",
    "Data statistics appear to be inaccurate: minimum": "stats-min",
    "Data statistics appear to be inaccurate: maximum": "stats-max",
    "Data statistics appear to be inaccurate: mean": "stats-mean",
    "File is larger than expected": "file-size",
    "Data block could not be read": "file-size",
}
SHAPE = (6, 20, 30)


def mrcfile_verdict(path) -> tuple[bool, set[str]]:
    """(valid, the check ids of mrcfile's messages) for ``path``."""
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about the defective headers it reads
        valid = mrcfile.validate(str(path), print_file=out)
    text = out.getvalue()
    if "Traceback" in text:  # mrcfile cannot open the file at all
        return valid, {"mrcfile-crash: " + text.strip().splitlines()[-1]}
    checks = set()
    for line in text.splitlines()[1:]:
        if line != "File appears to be valid.":
            matches = [
                check for start, check in MRCFILE_MESSAGES.items() if line.startswith(start)
            ]
            assert len(matches) == 1, f"unmapped mrcfile message: {line}"
            checks.add(matches[0])
    return valid, checks


def checks_of(findings: list[Finding]) -> set[str]:
    return {finding.check for finding in findings}


def is_valid(findings: list[Finding]) -> bool:
    """Our verdict as mrcfile's: any finding counts, except the 'json' EXTTYP warning."""
    return all(f.severity == "warning" and f.check == "exttyp" for f in findings)


def patch_field(path: pathlib.Path, name: str, value) -> None:
    """Set header field ``name`` of ``path`` in place, in the file's byte order."""
    raw = bytearray(path.read_bytes())
    order = stamp_byteorder(bytes(raw[212:216])) or "<"
    header = np.frombuffer(bytes(raw[:HEADER_SIZE]), dtype=header_dtype(order)).copy()
    header[name] = value
    raw[:HEADER_SIZE] = header.tobytes()
    path.write_bytes(bytes(raw))


def chunk_offsets(path: pathlib.Path) -> list[int]:
    """Offsets of the blosc chunks of an undamaged MRCZ file, and the end of the last."""
    layout = read_layout(path)
    return layout.index_chunks(path.read_bytes()).tolist()


def overwrite(path: pathlib.Path, position: int, payload: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[position : position + len(payload)] = payload
    path.write_bytes(bytes(raw))


@pytest.fixture
def data(rng) -> np.ndarray:
    return (100 * rng.standard_normal(SHAPE)).astype(np.float32)


@pytest.fixture
def mrcz_file(tmp_path, data) -> pathlib.Path:
    path = tmp_path / "sample.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd", meta={"voltage": 300})
    assert validate_file(path) == []
    return path


@pytest.fixture
def plain_file(tmp_path, data) -> pathlib.Path:
    path = tmp_path / "sample.mrc"
    napari_mrcz.writeMRC(data, path)
    assert validate_file(path) == []
    return path


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("path", real_files("mrc"), ids=lambda path: path.name)
def test_real_files_agree_with_mrcfile(path):
    """Same verdict and the same failed checks (map ID, stamp, labels, stats, ...)."""
    findings = validate_file(path)
    valid, expected = mrcfile_verdict(path)
    assert is_valid(findings) == valid
    assert checks_of(findings) == expected
    assert all(finding.severity == "problem" for finding in findings)


@pytest.mark.parametrize("path", real_files("dm3") + real_files("dm4"), ids=lambda p: p.name)
def test_real_dm_files_are_valid(path):
    assert validate_file(path) == []


def test_dm_file_recognised_by_its_magic(tmp_path):
    source = real_files("dm4")[0]
    path = tmp_path / "renamed.bin"
    path.write_bytes(source.read_bytes())
    assert validate_file(path) == []
    path.write_bytes(source.read_bytes()[:20000])
    findings = validate_file(path)
    assert [f.check for f in findings] == ["dm"]
    assert findings[0].severity == "problem"


def test_dm_image_that_does_not_read(monkeypatch):
    """One 'dm' problem per image; check_stats=False reads no image."""

    def broken(self, start=0, stop=None):
        raise napari_mrcz.MRCZFormatError(self.path, f"image {self.index} is short")

    path = next(p for p in real_files("dm3") if p.name == "rsciio_2D_multi_signal.dm3")
    monkeypatch.setattr(napari_mrcz.dm.images.DMImageLayout, "read", broken)
    findings = validate_file(path)
    assert [f.check for f in findings] == ["dm", "dm"]
    assert "is short" in findings[0].message
    assert validate_file(path, check_stats=False) == []


# --------------------------------------------------------------------------- differences


def test_imod_unsigned_bytes_are_read_unsigned(tmp_path, rng):
    """IMOD's flag says mode 0 holds uint8: its true statistics pass here, not in mrcfile."""
    values = rng.integers(100, 256, SHAPE, dtype=np.uint8)
    path = tmp_path / "imod.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(values.view(np.int8))
    patch_field(path, "imod_stamp", IMOD_STAMP)
    patch_field(path, "imod_flags", 0)
    as_float = values.astype(np.float64)
    for name, value in [
        ("dmin", as_float.min()),
        ("dmax", as_float.max()),
        ("dmean", as_float.mean()),
        ("rms", as_float.std()),
    ]:
        patch_field(path, name, value)
    assert validate_file(path) == []
    assert mrcfile_verdict(path) == (False, {"stats-rms", "stats-min", "stats-max", "stats-mean"})


def test_volume_stack_with_mz_zero(plain_file, mrcz_file):
    """mrcfile cannot even open it (it divides NZ by MZ); we say what is wrong."""
    for path in (plain_file, mrcz_file):
        patch_field(path, "ispg", 401)
        patch_field(path, "mz", 0)
    assert checks_of(validate_file(plain_file)) == {"volume-stack"}
    assert mrcfile_verdict(plain_file) == (
        False,
        {"mrcfile-crash: ZeroDivisionError: integer division or modulo by zero"},
    )
    # In MRCZ, MZ = 0 means MZ = NZ (python-mrcz writes it).
    assert validate_file(mrcz_file) == []
    patch_field(plain_file, "mz", 4)
    assert checks_of(validate_file(plain_file)) == {"volume-stack"}
    # mrcfile then reads one 4-slice volume of the 6 slices: size and statistics differ.
    assert mrcfile_verdict(plain_file) == (
        False,
        {"volume-stack", "file-size", "stats-min", "stats-max", "stats-mean"},
    )


def test_modes_mrcfile_cannot_read(tmp_path, rng):
    """4-bit (101) is MRC2014 and read here; python-mrcz's int32 (7) is a warning."""
    packed = tmp_path / "uint4.mrc"
    napari_mrcz.writeMRC(rng.integers(0, 16, (3, 5, 8), dtype=np.uint8), packed, dtype="uint4")
    assert validate_file(packed) == []
    assert "mode" in mrcfile_verdict(packed)[1]

    wide = tmp_path / "int32.mrc"
    napari_mrcz.writeMRC(rng.integers(-9, 9, (3, 5, 8), dtype=np.int32), wide)
    findings = validate_file(wide)
    assert [(f.severity, f.check) for f in findings] == [("warning", "mode")]
    assert "mode 7" in findings[0].message
    assert "mode" in mrcfile_verdict(wide)[1]
    napari_mrcz.writeMRC(
        rng.integers(-9, 9, (3, 5, 8), dtype=np.int32), wide.with_suffix(".mrcz"), compressor="lz4"
    )
    assert validate_file(wide.with_suffix(".mrcz")) == []


def test_json_meta_in_a_plain_file_is_a_warning(tmp_path, data):
    path = tmp_path / "meta.mrc"
    napari_mrcz.writeMRC(data, path, meta={"a": 1})
    findings = validate_file(path)
    assert [(f.severity, f.check) for f in findings] == [("warning", "exttyp")]
    assert mrcfile_verdict(path) == (False, {"exttyp"})


def test_machine_stamp_against_the_byte_order(tmp_path, data):
    path = tmp_path / "big.mrc"
    napari_mrcz.writeMRC(data, path, endian="be")
    assert validate_file(path) == []
    overwrite(path, 212, b"\x44\x41\x00\x00")
    findings = validate_file(path)
    assert checks_of(findings) == {"machine-stamp"}
    assert "little endian" in findings[0].message


def test_truncated_plain_file(plain_file):
    """Unreadable data counts as 0 for the statistics, as in mrcfile."""
    plain_file.write_bytes(plain_file.read_bytes()[:-100])
    findings = validate_file(plain_file)
    assert findings[0].check == "file-size"
    assert "truncated" in findings[0].message
    assert checks_of(findings) == mrcfile_verdict(plain_file)[1]
    assert all("counts as 0" in f.message for f in findings if f.check.startswith("stats"))
    assert checks_of(validate_file(plain_file, check_stats=False)) == {"file-size"}


def test_trailing_bytes_in_a_plain_file(plain_file):
    plain_file.write_bytes(plain_file.read_bytes() + b"junk")
    findings = validate_file(plain_file)
    assert checks_of(findings) == {"file-size"} == mrcfile_verdict(plain_file)[1]
    assert "4 more" in findings[0].message


# --------------------------------------------------------------------------- clean files


@pytest.mark.parametrize("compressor", [None, "zstd", "lz4", "zlib"])
@pytest.mark.parametrize(
    "dtype", ["float32", "int8", "int16", "uint16", "float16", "complex64", "uint8"]
)
@pytest.mark.parametrize("with_meta", [False, True])
def test_our_files_are_valid(tmp_path, rng, compressor, dtype, with_meta):
    if dtype == "complex64":
        values = (rng.standard_normal(SHAPE) + 1j * rng.standard_normal(SHAPE)).astype(dtype)
    elif np.dtype(dtype).kind == "f":
        values = (50 * rng.standard_normal(SHAPE) + 7).astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, SHAPE, dtype=dtype, endpoint=True)
    path = tmp_path / ("file.mrcz" if compressor else "file.mrc")
    napari_mrcz.writeMRC(
        values, path, compressor=compressor, meta={"k": [1, 2]} if with_meta else None
    )
    findings = validate_file(path)
    if compressor is None and with_meta:
        assert [(f.severity, f.check) for f in findings] == [("warning", "exttyp")]
    else:
        assert findings == []
    if compressor is None and not with_meta and dtype != "float16":
        assert mrcfile_verdict(path) == (True, set())


def test_float16_rms_is_exact_here(tmp_path, rng):
    """mrcfile sums float16 squares in float16: past 65504 its RMS is inf, and it calls
    the (correct) header RMS of its own file wrong."""
    path = tmp_path / "half.mrc"
    values = (20 * rng.standard_normal(SHAPE)).astype(np.float16)
    with mrcfile.new(path) as mrc:
        mrc.set_data(values)
    with np.errstate(over="ignore"):
        assert np.isinf(values.std())
    assert mrcfile_verdict(path) == (False, {"stats-rms"})
    assert validate_file(path) == []


@pytest.mark.parametrize("compressor", [None, "lz4"])
def test_our_big_endian_and_list_files_are_valid(tmp_path, rng, compressor):
    frames = [rng.standard_normal((2, 5, 6)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "frames.mrcz"
    napari_mrcz.writeMRC(frames, path, compressor=compressor, endian="be")
    # A plain list of frames keeps python-mrcz's 'slices' in JSON meta.
    assert checks_of(validate_file(path)) == (set() if compressor else {"exttyp"})


@pytest.mark.parametrize("dtype", ["float32", "int8", "int16", "uint16", "complex64"])
def test_mrcfile_files_are_valid(tmp_path, rng, dtype):
    path = tmp_path / "mrcfile.mrc"
    values = (20 * rng.standard_normal(SHAPE)).astype(dtype)
    with mrcfile.new(path) as mrc:
        mrc.set_data(values)
        mrc.voxel_size = 1.5
        mrc.add_label("written by mrcfile")
    assert mrcfile_verdict(path) == (True, set())
    assert validate_file(path) == []


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_python_mrcz_files(tmp_path, data, compressor):
    """python-mrcz writes NVERSION 0 and RMS 0, and with quickStats (its default) the
    first frame's min and max and their midpoint as the mean: all found, as mrcfile finds
    them in its plain files."""
    stack = tmp_path / "stack.mrcz"
    mrcz.writeMRC(data, str(stack), compressor=compressor)
    expected = {"nversion", "stats-rms", "stats-min", "stats-max", "stats-mean"}
    assert checks_of(validate_file(stack)) == expected
    exact = tmp_path / "exact.mrcz"
    mrcz.writeMRC(data[0], str(exact), compressor=compressor, quickStats=False)
    assert checks_of(validate_file(exact)) == {"nversion", "stats-rms"}
    if compressor is None:
        assert mrcfile_verdict(stack) == (False, expected)
        assert mrcfile_verdict(exact) == (False, {"nversion", "stats-rms"})
    # Only the statistics need the data.
    assert checks_of(validate_file(stack, check_stats=False)) == {"nversion"}


# --------------------------------------------------------------------------- damage


def test_flipped_byte_in_a_chunk_header(mrcz_file):
    position = chunk_offsets(mrcz_file)[2] + 5  # inside the chunk's uncompressed size
    raw = mrcz_file.read_bytes()
    overwrite(mrcz_file, position, bytes([raw[position] ^ 0x40]))
    for check_stats in (True, False):
        findings = validate_file(mrcz_file, check_stats=check_stats)
        assert findings[0].check == "chunk"
        assert "chunk 2" in findings[0].message
        assert "uncompressed" in findings[0].message


def test_truncated_mrcz(mrcz_file):
    mrcz_file.write_bytes(mrcz_file.read_bytes()[:-50])
    findings = validate_file(mrcz_file, check_stats=False)
    assert [f.check for f in findings] == ["chunk"]
    assert "chunk 5" in findings[0].message
    assert "chunk" in checks_of(validate_file(mrcz_file))


def test_trailing_bytes_after_the_chunks(mrcz_file):
    mrcz_file.write_bytes(mrcz_file.read_bytes() + b"\0" * 7)
    findings = validate_file(mrcz_file)
    assert checks_of(findings) == {"file-size"}
    assert findings[0].message.startswith("7 bytes follow the last blosc chunk")


def test_wrong_packed_bytes(mrcz_file):
    with SliceReader(read_layout(mrcz_file)) as reader:
        packed = reader.packed_bytes
    patch_field(mrcz_file, "packed_bytes", packed + 1)
    findings = validate_file(mrcz_file, check_stats=False)
    assert checks_of(findings) == {"packed-bytes"}
    assert str(packed) in findings[0].message
    patch_field(mrcz_file, "packed_bytes", 0)  # 0: not recorded
    assert validate_file(mrcz_file) == []


@pytest.mark.parametrize("kind", ["plain", "mrcz"])
def test_wrong_dmax(kind, plain_file, mrcz_file, data):
    path = plain_file if kind == "plain" else mrcz_file
    patch_field(path, "dmax", float(data.max()) + 1)
    findings = validate_file(path)
    assert checks_of(findings) == {"stats-max"}
    assert f"{float(data.max()):.9g}" in findings[0].message
    assert validate_file(path, check_stats=False) == []
    if kind == "plain":
        assert mrcfile_verdict(path) == (False, {"stats-max"})


def test_wrong_nlabl_and_map_id(plain_file, mrcz_file):
    for path in (plain_file, mrcz_file):
        patch_field(path, "nlabl", 5)
        patch_field(path, "map", b"MAP\0")
        assert checks_of(validate_file(path, check_stats=False)) == {"labels", "map-id"}
    assert mrcfile_verdict(plain_file) == (False, {"labels", "map-id"})


def test_empty_label_between_labels(plain_file):
    raw = bytearray(plain_file.read_bytes())
    label_2 = 224 + 2 * 80
    raw[label_2 : label_2 + 5] = b"later"
    plain_file.write_bytes(bytes(raw))
    patch_field(plain_file, "nlabl", 2)
    findings = validate_file(plain_file)
    assert [f.check for f in findings] == ["labels"]
    assert "empty label" in findings[0].message
    assert mrcfile_verdict(plain_file) == (False, {"labels"})


def test_bad_json(mrcz_file):
    overwrite(mrcz_file, HEADER_SIZE, b"x")
    findings = validate_file(mrcz_file)
    assert [(f.severity, f.check) for f in findings] == [("problem", "json")]
    assert "JSON" in findings[0].message


def smash_block_starts(path: pathlib.Path, chunk: int) -> None:
    """Overwrite the block-start table after a chunk header: blosc then refuses it."""
    overwrite(path, chunk_offsets(path)[chunk] + CHUNK_HEADER_SIZE, b"\xff" * 8)


def test_undecodable_chunk(mrcz_file, monkeypatch):
    smash_block_starts(mrcz_file, 3)
    assert validate_file(mrcz_file, check_stats=False) == []
    findings = validate_file(mrcz_file)
    chunks = [f for f in findings if f.check == "chunk"]
    assert len(chunks) == 1
    assert chunks[0].message.startswith("slice 3: ")
    # The data cannot be read, so the statistics count as 0 (mrcfile's rule).
    assert checks_of(findings) == {
        "checksum",
        "chunk",
        "stats-rms",
        "stats-min",
        "stats-max",
        "stats-mean",
    }
    assert next(f.message for f in findings if f.check == "checksum").startswith("z-slice 3:")
    monkeypatch.setattr(napari_mrcz.tools.validate, "STREAM_BLOCK_BYTES", 1)  # one slice at a time
    smash_block_starts(mrcz_file, 5)
    messages = [f.message for f in validate_file(mrcz_file, n_threads=1) if f.check == "chunk"]
    assert [message[:8] for message in messages] == ["slice 3:", "slice 5:"]


def test_streaming_in_blocks_gives_the_same_statistics(plain_file, mrcz_file, monkeypatch):
    two_slices = 2 * SHAPE[1] * SHAPE[2] * 4
    monkeypatch.setattr(napari_mrcz.tools.validate, "STREAM_BLOCK_BYTES", two_slices)
    assert validate_file(plain_file) == []
    assert validate_file(mrcz_file, n_threads=3) == []


def test_check_stats_false_reads_no_data(plain_file, mrcz_file, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("data read")

    monkeypatch.setattr(SliceReader, "read_into", no_reading)
    for path in (plain_file, mrcz_file):
        patch_field(path, "nversion", 0)
        assert checks_of(validate_file(path, check_stats=False)) == {"nversion"}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(bytes(range(10)), id="10-bytes"),
        pytest.param(b"\0" * 2048, id="zero-dimensions"),
    ],
)
def test_unreadable(tmp_path, raw):
    path = tmp_path / "junk.mrc"
    path.write_bytes(raw)
    findings = validate_file(path)
    assert [(f.severity, f.check) for f in findings] == [("problem", "unreadable")]


def test_random_bytes_are_unreadable(tmp_path, rng):
    path = tmp_path / "random.mrcz"
    path.write_bytes(rng.bytes(10))
    findings = validate_file(path)
    assert [(f.severity, f.check) for f in findings] == [("problem", "unreadable")]
    assert "10 bytes" in findings[0].message


def test_mode_3_is_recognised_but_unreadable(plain_file):
    """MRC2014's complex int16: nobody reads it; the statistics count as 0 (mrcfile's rule)."""
    patch_field(plain_file, "mode", 3)
    findings = validate_file(plain_file)
    assert findings[0].check == "unreadable"
    assert "mode 3" in findings[0].message
    assert checks_of(findings[1:]) == {"stats-rms", "stats-min", "stats-max", "stats-mean"}
    assert [f.check for f in validate_file(plain_file, check_stats=False)] == ["unreadable"]


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        validate_file(tmp_path / "absent.mrc")


def test_gzip_file(tmp_path, plain_file, data):
    patch_field(plain_file, "dmax", float(data.max()) + 1)
    path = tmp_path / "sample.mrc.gz"
    path.write_bytes(gzip.compress(plain_file.read_bytes()))
    findings = validate_file(path)
    assert checks_of(findings) == {"stats-max"}
    # The whole stream damaged: the finding, not an exception.
    path.write_bytes(gzip.compress(plain_file.read_bytes())[:-2000])
    findings = validate_file(path)
    assert [f.check for f in findings] == ["unreadable"]
    assert "napari-mrcz-" not in findings[0].message  # names no temporary copy


def test_rgb_statistics_over_all_channels(tmp_path, rng):
    """Mode 16 (IMOD's RGB, which mrcfile cannot read): statistics of every byte."""
    values = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    header = new_header("<")
    header["nx"], header["ny"], header["nz"], header["mode"] = 5, 4, 2, 16
    header["mx"], header["my"], header["mz"] = 5, 4, 2
    as_float = values.astype(np.float64)
    header["dmin"], header["dmax"] = as_float.min(), as_float.max()
    header["dmean"], header["rms"] = as_float.mean(), as_float.std()
    path = tmp_path / "rgb.mrc"
    path.write_bytes(header.tobytes() + values.tobytes())
    assert validate_file(path) == []
    patch_field(path, "dmean", as_float.mean() * 1.1)
    assert checks_of(validate_file(path)) == {"stats-mean"}


def test_complex_statistics_as_mrcfile_compares_them(tmp_path, rng):
    """Set DMIN < DMAX on complex data: mrcfile compares numpy's complex min, max, mean."""
    values = (rng.standard_normal(SHAPE) + 1j * rng.standard_normal(SHAPE)).astype(np.complex64)
    path = tmp_path / "complex.mrc"
    napari_mrcz.writeMRC(values, path)
    patch_field(path, "dmin", -1)
    patch_field(path, "dmax", 1)
    patch_field(path, "dmean", 0)
    assert mrcfile_verdict(path) == (False, {"stats-min", "stats-max", "stats-mean"})
    assert checks_of(validate_file(path)) == {"stats-min", "stats-max", "stats-mean"}
