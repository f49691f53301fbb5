"""SliceReader: any range of z-slices of one plain or MRCZ file, read into a given array.

Every range must hold what mrcfile (plain MRC) or python-mrcz (MRCZ, 4-bit) reads from
files they wrote, in the file's byte order, on one thread or several; the chunk index
must be where python-mrcz finds the chunks; damage must fail only the ranges that hold
it, naming the chunk; and a range outside the file's slices must never be read.
"""

from __future__ import annotations

import gc
import os
import struct
import warnings

import mrcfile
import mrcz
import numpy as np
import pytest
from mrcz.ioMRC import readBloscHeader

import napari_mrcz.mrc.slices
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.codecs import CHUNK_HEADER_SIZE
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.mrc.slices import SliceReader, unpack_uint4
from napari_mrcz.mrc.write import write_array

SHAPE = (7, 12, 10)  # odd nz and distinct axis lengths catch swapped axes
RANGES = [(0, 7), (2, 5), (6, 7), (0, 1)]


def write_mrcfile(path, data):
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
    with mrcfile.open(str(path)) as mrc:
        return mrc.data.copy()


def chunks_as_python_mrcz_walks_them(path) -> list[int]:
    """The offset of each blosc chunk and the end of the last, by python-mrcz's walker."""
    header, _ = mrcz.readMRCHeader(str(path))
    offsets = [1024 + header["extendedBytes"]]
    with open(path, "rb") as handle:
        for _ in range(int(header["dimensions"][0])):
            handle.seek(offsets[-1])
            (_, _, cbytes), _ = readBloscHeader(handle)
            offsets.append(offsets[-1] + int(cbytes))
    return offsets


def read_range(reader: SliceReader, start: int, stop: int, **kwargs) -> np.ndarray:
    return reader.read_into(start, stop, reader.new_array(stop - start), **kwargs)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("dtype", ["float32", "int16", "int8"])
def test_ranges_of_a_plain_file_are_what_mrcfile_reads(
    tmp_path, rng, dtype, byteorder, sequential
):
    data = (rng.normal(size=SHAPE) * 40).astype(np.dtype(dtype).newbyteorder(byteorder))
    reference = write_mrcfile(tmp_path / "mrcfile.mrc", data)
    with SliceReader(read_layout(tmp_path / "mrcfile.mrc")) as reader:
        for start, stop in RANGES:
            got = read_range(reader, start, stop, sequential=sequential)
            assert got.shape == (stop - start, *SHAPE[1:])
            assert got.dtype == reference.dtype  # the file's byte order, as mrcfile keeps it
            np.testing.assert_array_equal(got, reference[start:stop])


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("endian", ["le", "be"])
@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_ranges_of_an_mrcz_file_are_what_python_mrcz_reads(
    tmp_path, rng, codec, endian, n_threads
):
    data = rng.integers(-3000, 3000, size=SHAPE).astype(np.int16)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), compressor=codec, endian=endian)
    theirs, _ = mrcz.readMRC(str(path), endian=endian)
    with SliceReader(read_layout(path), n_threads) as reader:
        for start, stop in RANGES:
            got = read_range(reader, start, stop)
            assert got.dtype == theirs.dtype
            np.testing.assert_array_equal(got, theirs[start:stop])


def test_the_chunk_index_is_where_python_mrcz_finds_the_chunks(tmp_path, rng):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(
        rng.normal(size=SHAPE).astype(np.float32), str(path), compressor="zstd", meta={"k": 1}
    )
    offsets = chunks_as_python_mrcz_walks_them(path)
    with SliceReader(read_layout(path)) as reader:
        assert reader.chunk_offsets.tolist() == offsets
        assert reader.packed_bytes == mrcz.readMRCHeader(str(path))[0]["packedBytes"]
        assert reader.data_end == offsets[-1] == path.stat().st_size


def test_a_plain_file_has_no_chunks_and_ends_after_its_slices(tmp_path, rng):
    data = rng.normal(size=SHAPE).astype(np.float32)
    path = tmp_path / "mrcfile.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(np.zeros(96, dtype="V1"))
    with mrcfile.open(str(path)) as mrc:
        data_start = mrc.header.nbytes + mrc.extended_header.nbytes
    with open(path, "ab") as handle:
        handle.write(b"trailer")
    with SliceReader(read_layout(path)) as reader:
        assert reader.chunk_offsets is None
        assert reader.packed_bytes == 0
        assert reader.damaged_chunks() is None
        assert reader.data_end == data_start + data.nbytes == path.stat().st_size - 7
        np.testing.assert_array_equal(read_range(reader, 5, 7), data[5:7])


def test_a_reader_given_the_chunk_index_does_not_walk_the_chunks_again(tmp_path, rng, monkeypatch):
    data = rng.normal(size=SHAPE).astype(np.float32)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), compressor="zstd")
    layout = read_layout(path)
    with SliceReader(layout) as first:
        offsets = first.chunk_offsets

    def walk(_buffer):
        raise AssertionError("the chunks were walked again")

    monkeypatch.setattr(MRCLayout, "index_chunks", walk)
    with SliceReader(layout, chunk_offsets=offsets) as again:
        assert again.chunk_offsets is offsets
        np.testing.assert_array_equal(read_range(again, 1, 6), data[1:6])


@pytest.mark.parametrize("n_threads", [2, 4])
def test_plain_reads_split_across_threads_give_mrcfiles_data(
    tmp_path, rng, monkeypatch, n_threads
):
    """Parts of a page-aligned split, the last one short, each read on its own thread."""
    monkeypatch.setattr(napari_mrcz.mrc.slices, "PARALLEL_READ_BYTES", 4096)
    data = rng.normal(size=(7, 33, 35)).astype(">f4")  # 32340 bytes: not a page multiple
    reference = write_mrcfile(tmp_path / "mrcfile.mrc", data)
    with SliceReader(read_layout(tmp_path / "mrcfile.mrc"), n_threads) as reader:
        np.testing.assert_array_equal(read_range(reader, 0, 7), reference)
        np.testing.assert_array_equal(read_range(reader, 1, 6), reference[1:6])


def test_an_empty_range_of_an_mrcz_file_reads_nothing(tmp_path, rng):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(rng.normal(size=SHAPE).astype(np.float32), str(path), compressor="zstd")
    with SliceReader(read_layout(path)) as reader:
        assert read_range(reader, 3, 3).shape == (0, *SHAPE[1:])
        assert read_range(reader, 7, 7).shape == (0, *SHAPE[1:])


@pytest.mark.parametrize("dtype", ["float32", "uint4"])
def test_an_empty_range_of_a_plain_file_reads_nothing(tmp_path, rng, dtype):
    data = rng.integers(0, 16, size=(4, 6, 8)).astype(np.uint8 if dtype == "uint4" else dtype)
    path = tmp_path / "theirs.mrc"
    mrcz.writeMRC(data, str(path), dtype=dtype)
    with SliceReader(read_layout(path)) as reader:
        assert read_range(reader, 2, 2).shape == (0, 6, 8)


def test_4bit_ranges_unpack_as_python_mrcz_unpacks_them(tmp_path, rng):
    data = rng.integers(0, 16, size=(5, 6, 8)).astype(np.uint8)
    path = tmp_path / "theirs.mrc"
    mrcz.writeMRC(data, str(path), dtype="uint4")
    theirs, _ = mrcz.readMRC(str(path))
    with SliceReader(read_layout(path)) as reader:
        for start, stop in [(0, 5), (1, 4), (4, 5)]:
            got = read_range(reader, start, stop)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, theirs[start:stop])


def test_4bit_bytes_unpack_low_nibble_first_and_odd_rows_drop_their_padding():
    packed = np.array([[[0x21, 0x43, 0xF5], [0x87, 0xA9, 0x0B]]], dtype=np.uint8)
    out = np.empty((1, 2, 5), dtype=np.uint8)
    unpack_uint4(packed, 5, out)
    assert out.tolist() == [[[1, 2, 3, 4, 5], [7, 8, 9, 10, 11]]]


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_a_range_past_the_last_slice_is_refused(tmp_path, rng, codec):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(rng.normal(size=SHAPE).astype(np.float32), str(path), compressor=codec)
    with SliceReader(read_layout(path)) as reader:
        for start, stop in [(6, 8), (7, 8)]:
            with pytest.raises((IndexError, ValueError)):
                read_range(reader, start, stop)


def test_a_range_outside_the_slices_is_never_read_from_other_bytes(tmp_path, rng):
    data = rng.normal(size=(2, 4, 4)).astype(np.float32)
    path = tmp_path / "mrcfile.mrc"
    write_mrcfile(path, data)
    with open(path, "ab") as handle:
        handle.write(b"another program's trailer, longer than one slice" * 2)
    with SliceReader(read_layout(path)) as reader:
        with pytest.raises((IndexError, ValueError)):
            read_range(reader, 2, 3)
        with pytest.raises((IndexError, ValueError)):
            read_range(reader, -1, 0)


def smash_block_starts(path, chunk: int) -> None:
    """Overwrite the block-start table after a chunk's header: blosc always refuses it."""
    at = chunks_as_python_mrcz_walks_them(path)[chunk] + CHUNK_HEADER_SIZE
    raw = bytearray(path.read_bytes())
    raw[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def compressible(rng) -> np.ndarray:
    """Data blosc compresses (so each chunk has a block-start table, not a raw copy)."""
    return rng.integers(0, 4, size=SHAPE).astype(np.int16)


@pytest.mark.parametrize("n_threads", [1, 3])
def test_a_damaged_chunk_fails_only_the_ranges_that_hold_it(tmp_path, rng, n_threads):
    data = compressible(rng)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), compressor="zstd")
    smash_block_starts(path, 3)
    with SliceReader(read_layout(path), n_threads) as reader:
        np.testing.assert_array_equal(read_range(reader, 0, 3), data[:3])
        np.testing.assert_array_equal(read_range(reader, 4, 7), data[4:])
        with pytest.raises(MRCZFormatError, match="blosc chunk 3 is damaged") as info:
            read_range(reader, 2, 5)
        assert "cannot be decompressed" in str(info.value)
        assert info.value.path == str(path)
        np.testing.assert_array_equal(read_range(reader, 4, 5), data[4:5])  # still usable


@pytest.mark.parametrize(("chunk", "named"), [(3, 3), (0, 1)])
def test_a_chunk_in_the_other_blosc_format_is_named_as_damaged(tmp_path, rng, chunk, named):
    """Version byte 5 (c-blosc2's format) in a c-blosc 1 file: the first chunk decides
    which format the file is in, and a chunk in the other one is damage."""
    data = compressible(rng)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), compressor="zstd")
    raw = bytearray(path.read_bytes())
    raw[chunks_as_python_mrcz_walks_them(path)[chunk]] = 5
    path.write_bytes(bytes(raw))
    with SliceReader(read_layout(path)) as reader:
        with pytest.raises(MRCZFormatError, match=rf"blosc chunk {named} is damaged") as info:
            read_range(reader, 1, 7)
        assert "format version" in str(info.value)
        assert "does not match the file's first chunk" in str(info.value)
        if chunk == 3:
            np.testing.assert_array_equal(read_range(reader, 0, 3), data[:3])


def test_a_damaged_chunk_header_is_refused_when_made_and_the_file_is_released(tmp_path, rng):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(rng.normal(size=SHAPE).astype(np.float32), str(path), compressor="zstd")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<i", raw, chunks_as_python_mrcz_walks_them(path)[2] + 12, 2**30)
    path.write_bytes(bytes(raw))
    layout = read_layout(path)
    before = open_fds()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(MRCZFormatError, match="damaged blosc chunk 2"):
            SliceReader(layout)
        gc.collect()
    assert open_fds() == before


def test_only_chunks_whose_bytes_changed_are_reported_damaged(tmp_path, rng):
    """Our MRCZ records a CRC32 a chunk; python-mrcz's and plain files record none."""
    data = rng.normal(size=SHAPE).astype(np.float32)
    ours, theirs = tmp_path / "ours.mrcz", tmp_path / "theirs.mrcz"
    write_array(data, ours, compressor="zstd")
    mrcz.writeMRC(data, str(theirs), compressor="zstd")
    with SliceReader(read_layout(ours)) as reader:
        assert reader.damaged_chunks() == []
        start, end = reader.chunk_offsets[4], reader.chunk_offsets[5]
    raw = bytearray(ours.read_bytes())
    raw[(start + end) // 2] ^= 0x01
    ours.write_bytes(bytes(raw))
    with SliceReader(read_layout(ours)) as reader:
        assert reader.damaged_chunks() == [4]
    with SliceReader(read_layout(theirs)) as reader:
        assert reader.damaged_chunks() is None


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_a_closed_reader_refuses_to_read(tmp_path, rng, codec):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(rng.normal(size=SHAPE).astype(np.float32), str(path), compressor=codec)
    reader = SliceReader(read_layout(path))
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        read_range(reader, 0, 1)
    reader.close()  # twice is harmless
