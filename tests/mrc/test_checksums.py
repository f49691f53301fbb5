"""Fixity: every MRCZ chunk we write carries a CRC32 in the JSON meta (issue: flipped bytes
inside a blosc chunk decompress to other data, silently)."""

import io
import json
import struct
import subprocess
import sys
import warnings
import zlib

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.slices import SliceReader
from napari_mrcz.mrc.write import write_array
from napari_mrcz.tools.validate import validate_file


def chunks_by_hand(path) -> list[tuple[int, int]]:
    """(offset, length) of each blosc chunk, from the 16-byte chunk headers (cbytes at 12)."""
    raw = path.read_bytes()
    nz, nsymbt = struct.unpack_from("<i", raw, 8)[0], struct.unpack_from("<i", raw, 92)[0]
    found, at = [], 1024 + nsymbt
    for _ in range(nz):
        (cbytes,) = struct.unpack_from("<i", raw, at + 12)
        found.append((at, cbytes))
        at += cbytes
    return found


def json_meta(path) -> dict:
    raw = path.read_bytes()
    (nsymbt,) = struct.unpack_from("<i", raw, 92)
    return json.loads(raw[1024 : 1024 + nsymbt])


@pytest.fixture
def movie(rng):
    return rng.poisson(2.0, size=(6, 64, 48)).astype(np.int16)


def test_each_chunk_has_its_crc32_and_python_mrcz_still_reads_the_file(tmp_path, movie):
    path = tmp_path / "movie.mrcz"
    write_array(movie, path, compressor="zstd", meta={"dose": 1.5})
    raw = path.read_bytes()
    recorded = json_meta(path)["chunk_crc32"]
    assert recorded == "".join(
        f"{zlib.crc32(raw[at : at + length]):08x}" for at, length in chunks_by_hand(path)
    )
    image, meta = mrcz.readMRC(str(path))  # the real python-mrcz
    np.testing.assert_array_equal(image, movie)
    assert meta["dose"] == 1.5
    assert meta["chunk_crc32"] == recorded


def test_a_file_without_meta_gets_a_json_header_for_its_checksums(tmp_path, movie):
    path = tmp_path / "movie.mrcz"
    write_array(movie, path, compressor="lz4")
    assert list(json_meta(path)) == ["chunk_crc32", "chunk_bytes"]
    assert read_layout(path).json_meta == {}  # the user's meta: none
    np.testing.assert_array_equal(mrcz.readMRC(str(path))[0], movie)


def test_python_mrcz_api_without_meta_writes_what_python_mrcz_writes(tmp_path, movie):
    """writeMRC keeps python-mrcz's layout: no extended header unless there is meta."""
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie, path, compressor="zstd")
    assert read_layout(path).nsymbt == 0
    assert read_layout(path).chunk_checksums is None
    napari_mrcz.writeMRC(movie, path, compressor="zstd", meta={"a": 1})
    assert len(read_layout(path).chunk_checksums) == len(movie)


@pytest.mark.parametrize("slice_index", [0, 3, 5])
def test_validate_names_the_slice_whose_bytes_were_flipped(tmp_path, movie, slice_index):
    path = tmp_path / "movie.mrcz"
    write_array(movie, path, compressor="zstd", clevel=1)
    assert validate_file(path) == []
    at, length = chunks_by_hand(path)[slice_index]
    raw = bytearray(path.read_bytes())
    middle = at + 16 + (length - 16) // 2  # inside the compressed data, past the header
    raw[middle : middle + 8] = bytes(255 - value for value in raw[middle : middle + 8])
    path.write_bytes(bytes(raw))
    checksum = [f for f in validate_file(path) if f.check == "checksum"]
    assert [f.message.split(":")[0] for f in checksum] == [f"z-slice {slice_index}"]
    assert checksum[0].severity == "problem"
    # the command line says the same and fails
    result = subprocess.run(
        [sys.executable, "-m", "napari_mrcz.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"z-slice {slice_index}" in result.stdout


def test_appended_slices_keep_the_first_checksums_valid(tmp_path, movie):
    path = tmp_path / "movie.mrcz"
    write_array(movie, path, compressor="zstd")
    write_array(movie[:2], path, compressor="zstd", idx=len(movie))
    layout = read_layout(path)
    assert layout.nz == len(movie) + 2
    assert len(layout.chunk_checksums) == len(movie)
    assert validate_file(path) == []


def test_decompressing_drops_the_checksums_and_mrcfile_accepts_the_file(tmp_path, movie):
    from napari_mrcz.cli.command import main

    path = tmp_path / "in" / "movie.mrcz"
    path.parent.mkdir()
    write_array(movie, path, compressor="zstd")
    assert main(["decompress", str(path.parent), "-o", str(tmp_path / "out"), "-q"]) == 0
    plain = tmp_path / "out" / "movie.mrc"
    assert read_layout(plain).nsymbt == 0
    assert mrcfile.validate(str(plain), print_file=io.StringIO()) is True
    np.testing.assert_array_equal(mrcfile.read(plain), movie)


def test_compress_records_checksums_and_verify_checks_them(tmp_path, movie):
    """mrcz compress of a plain movie: the archive carries one checksum per slice."""
    from napari_mrcz.cli.command import main

    source = tmp_path / "raw" / "movie.mrc"
    source.parent.mkdir()
    with mrcfile.new(source) as handle:
        handle.set_data(movie)
    out = tmp_path / "archive"
    assert main(["compress", str(source.parent), "-o", str(out), "--verify", "-q"]) == 0
    layout = read_layout(out / "movie.mrcz")
    assert len(layout.chunk_checksums) == len(movie)


def test_checking_leaves_no_view_of_the_file_behind(tmp_path, rng):
    # dask's profiler keeps the frames of a worker's tasks alive for a moment after they
    # return; a view of the memory map left in one stopped the reader from closing
    # ("BufferError: cannot close exported pointers exist") and failed the file.
    path = tmp_path / "movie.mrcz"
    write_array(rng.integers(0, 4, size=(3, 32, 32), dtype=np.int8), str(path), compressor="zstd")
    frames = []

    def keep_frames(frame, event, arg):
        if event == "return":
            frames.append(frame)

    reader = SliceReader(read_layout(str(path)))
    sys.setprofile(keep_frames)
    try:
        damaged = reader.damaged_chunks()
    finally:
        sys.setprofile(None)
    reader.close()
    assert damaged == []
    assert frames


def test_checking_a_file_cut_short_after_opening_is_an_error_not_a_crash(tmp_path, rng):
    # Touching a memory map past the end of its file kills the process (SIGBUS).
    path = tmp_path / "movie.mrcz"
    write_array(
        rng.integers(0, 4, size=(4, 256, 256), dtype=np.int8), str(path), compressor="zstd"
    )
    code = (
        "import os, sys\n"
        "from napari_mrcz.errors import MRCZFormatError\n"
        "from napari_mrcz.mrc.layout import read_layout\n"
        "from napari_mrcz.mrc.slices import SliceReader\n"
        "reader = SliceReader(read_layout(sys.argv[1]))\n"
        "os.truncate(sys.argv[1], 8192)\n"
        "try:\n"
        "    reader.damaged_chunks()\n"
        "except MRCZFormatError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "shrank" in result.stdout
    assert str(path) in result.stdout


def test_reading_a_slice_whose_crc32_differs_warns_once_naming_it(tmp_path, rng):
    """blosc does not notice every flipped bit: the recorded CRC32 does, at no extra read."""
    data = rng.normal(size=(4, 64, 64)).astype(np.float32)
    path = tmp_path / "damaged.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd", meta={"grid": 3})
    layout = read_layout(path)
    with SliceReader(layout) as reader:
        start, stop = int(reader.chunk_offsets[2]), int(reader.chunk_offsets[3])
    raw = bytearray(path.read_bytes())
    raw[(start + stop) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    lazy = napari_mrcz.open_lazy(path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for index in (2, 3, 2, 1, 0):
            lazy.read_slices(index, index + 1)
    ours = [str(w.message) for w in seen if issubclass(w.category, napari_mrcz.MRCZWarning)]
    assert len(ours) == 1, ours
    assert ours[0].startswith(f"{path}: z-slice 2 is not as it was written")
    np.testing.assert_array_equal(lazy.read_slices(0, 2), data[:2])  # the others as written
