"""MRCZ codecs (napari_mrcz.mrc.codecs): the compressor numbers in MODE are python-mrcz's,
the chunk headers read as c-blosc and python-mrcz read them, real chunks are never
refused as damaged, the chunks do not depend on blosc settings another library left
behind, and the label recording the codec and level reads back."""

import sys

import blosc
import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.codecs import (
    AVAILABLE_CODECS,
    CHUNK_HEADER,
    CHUNK_HEADER_DTYPE,
    CHUNK_HEADER_SIZE,
    COMPRESSOR_ENUM,
    MODE_CODEC_FACTOR,
    REVERSE_COMPRESSOR_ENUM,
    check_codec,
    chunk_header_problem,
    compress_slice,
    damaged_chunk_headers,
    decompress_into,
    max_expansion,
    parse_chunk_header,
    recorded_settings,
    settings_label,
)
from napari_mrcz.mrc.header import LABEL_SIZE

PYTHON_MRCZ = mrcz.ioMRC


@pytest.fixture
def blosc_globals():
    """Put back the process-wide blosc settings a test changes."""
    threads, blocksize = blosc.nthreads, blosc.get_blocksize()
    yield
    blosc.set_nthreads(threads)
    blosc.set_blocksize(blocksize)


# --------------------------------------------------------------------------- the tables


def test_every_blosc1_codec_has_python_mrczs_number():
    """The c-blosc 1 codecs, numbered as python-mrcz numbers them in MODE // 1000."""
    theirs = {
        code: name
        for code, name in PYTHON_MRCZ.COMPRESSOR_ENUM.items()
        if name not in PYTHON_MRCZ.BLOSC2_ONLY_CODECS
    }
    assert theirs == COMPRESSOR_ENUM
    assert {name: REVERSE_COMPRESSOR_ENUM[name] for name in theirs.values()} == {
        name: PYTHON_MRCZ.REVERSE_COMPRESSOR_ENUM[name] for name in theirs.values()
    }
    assert MODE_CODEC_FACTOR == PYTHON_MRCZ.MRC_COMP_RATIO


def test_available_codecs_are_the_ones_the_installed_blosc_offers():
    offered = set(blosc.compressor_list())
    assert set(AVAILABLE_CODECS) == {name for name in COMPRESSOR_ENUM.values() if name} & offered
    assert set(AVAILABLE_CODECS) <= PYTHON_MRCZ.BLOSC1_CODECS
    assert list(AVAILABLE_CODECS) == sorted(AVAILABLE_CODECS, key=REVERSE_COMPRESSOR_ENUM.get)


@pytest.mark.parametrize("codec", AVAILABLE_CODECS)
def test_mode_names_the_codec_python_mrcz_names(tmp_path, rng, codec):
    path = tmp_path / "codec.mrcz"
    napari_mrcz.writeMRC(rng.normal(size=(2, 4, 4)).astype(np.float32), path, compressor=codec)
    header, _ = mrcz.readMRCHeader(str(path))
    assert header["compressor"] == codec
    assert header["MRCtype"] == 2  # the pixel mode, the codec removed


def test_check_codec_accepts_any_case_and_names_the_known_ones():
    for name in AVAILABLE_CODECS:
        assert check_codec(name.upper()) == name
    with pytest.raises(ValueError, match="Unknown compressor 'brotli'") as info:
        check_codec("brotli")
    assert "zstd" in str(info.value)


# --------------------------------------------------------------------------- chunk headers


def _frame(rng, dtype="float32", shape=(64, 96)):
    return (rng.normal(size=shape) * 100).astype(dtype)


@pytest.mark.parametrize("codec", AVAILABLE_CODECS)
@pytest.mark.parametrize("dtype", ["int8", "uint16", "float32", "complex64"])
def test_chunk_header_reads_as_c_blosc_reads_it(rng, blosc_globals, codec, dtype):
    frame = _frame(rng, dtype)
    chunk = compress_slice(frame, codec, 5)
    header = parse_chunk_header(chunk)
    nbytes, cbytes, blocksize = blosc.get_cbuffer_sizes(chunk)
    assert (header.nbytes, header.cbytes, header.blocksize) == (nbytes, cbytes, blocksize)
    assert header.cbytes == len(chunk)
    assert header.nbytes == frame.nbytes
    assert header.typesize == frame.dtype.itemsize
    assert chunk_header_problem(header, frame.nbytes, len(chunk)) is None


def test_chunk_header_reads_as_python_mrcz_reads_it(tmp_path, rng):
    chunk = blosc.compress(_frame(rng).tobytes(), typesize=4, clevel=3, cname="lz4")
    path = tmp_path / "chunk.bin"
    path.write_bytes(chunk)
    with open(path, "rb") as handle:
        (nbytes, blocksize, cbytes), (version, versionlz, flags, typesize) = (
            PYTHON_MRCZ.readBloscHeader(handle)
        )
    header = parse_chunk_header(chunk[:CHUNK_HEADER_SIZE])
    assert header == (version, versionlz, flags, typesize, nbytes, blocksize, cbytes)


ZEROS_NBYTES = 2**22  # 4 MiB of zeros: the most any codec compresses


@pytest.mark.parametrize("codec", AVAILABLE_CODECS)
@pytest.mark.parametrize("clevel", [1, 9])
@pytest.mark.parametrize(
    "blocksize", [0, 2**16, 2**20, 2**22], ids=["auto", "python-mrcz", "1MiB", "4MiB"]
)
def test_the_most_compressed_real_chunks_are_not_taken_for_damage(
    blosc_globals, codec, clevel, blocksize
):
    """A chunk of zeros, as c-blosc writes it with any block size: the expansion limit
    that refuses forged chunk headers must let it through."""
    zeros = np.zeros(ZEROS_NBYTES // 4, np.float32)
    blosc.set_blocksize(blocksize)
    chunk = blosc.compress(zeros.tobytes(), typesize=4, clevel=clevel, cname=codec)
    header = parse_chunk_header(chunk)
    assert header.nbytes <= header.cbytes * max_expansion(header)
    assert chunk_header_problem(header, zeros.nbytes, len(chunk)) is None


def test_a_stored_chunk_expands_to_its_own_size_only(rng, blosc_globals):
    """clevel 0: c-blosc copies the bytes (memcpyed); such a chunk cannot expand."""
    frame = rng.integers(0, 256, size=4096, dtype=np.uint8)
    chunk = blosc.compress(frame.tobytes(), typesize=1, clevel=0, cname="zstd")
    header = parse_chunk_header(chunk)
    assert max_expansion(header) == 1
    assert chunk_header_problem(header, frame.nbytes, len(chunk)) is None
    forged = header._replace(nbytes=header.cbytes * 2)
    assert "cannot hold" in chunk_header_problem(forged, forged.nbytes, len(chunk))


# --------------------------------------------------------------------------- compress, decompress


@pytest.mark.parametrize("codec", AVAILABLE_CODECS)
@pytest.mark.parametrize("dtype", ["int8", "int16", "float32", "complex64"])
def test_chunks_decompress_with_plain_blosc_and_back_into_place(rng, blosc_globals, codec, dtype):
    frame = _frame(rng, dtype)
    chunk = compress_slice(frame, codec, 3)
    assert blosc.decompress(chunk) == frame.tobytes()
    out = np.empty_like(frame)
    decompress_into(memoryview(chunk), out)
    np.testing.assert_array_equal(out, frame)


def test_chunks_ignore_blosc_settings_another_library_changed(rng, blosc_globals):
    """Several threads make c-blosc 1 chunks differ run to run; another block size makes
    other chunks. The chunks must be those of our own settings whatever was left set."""
    frame = _frame(rng, "float32", (256, 512))
    reference = compress_slice(frame, "zstd", 5)
    blosc.set_nthreads(4)
    blosc.set_blocksize(2**12)
    assert compress_slice(frame, "zstd", 5) == reference


def test_compress_reads_the_slice_buffer_as_it_is(rng, blosc_globals):
    """A view of a slice of a larger C-contiguous array compresses its own bytes only."""
    stack = _frame(rng, "int16", (3, 32, 48))
    chunk = compress_slice(stack[1], "lz4", 1)
    assert blosc.decompress(chunk) == stack[1].tobytes()


def test_a_c_blosc2_chunk_without_blosc2_asks_for_it(rng, monkeypatch, blosc_globals):
    chunk = bytearray(compress_slice(_frame(rng), "zstd", 1))
    chunk[0] = 5  # the c-blosc2 format version
    monkeypatch.setitem(sys.modules, "blosc2", None)  # as if it were not installed
    with pytest.raises(ImportError, match="install the blosc2 package"):
        decompress_into(bytes(chunk), np.empty((64, 96), np.float32))


# --------------------------------------------------------------------------- settings label


@pytest.mark.parametrize("codec", [name for name in COMPRESSOR_ENUM.values() if name])
def test_settings_label_reads_back_and_fits_a_header_label(codec):
    for level in range(10):
        label = settings_label(codec, level)
        assert recorded_settings([label]) == (codec, level)
        assert len(label.encode("latin-1")) <= LABEL_SIZE


def test_settings_are_found_among_other_labels_and_not_in_foreign_ones(tmp_path):
    path = tmp_path / "mrcfile.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((2, 2), np.float32))
    with mrcfile.open(path) as mrc:
        mrcfile_label = mrc.get_labels()[0]
    python_mrcz_label = "MRCZ" + mrcz.__version__
    assert recorded_settings([mrcfile_label, python_mrcz_label]) is None
    assert recorded_settings([]) is None
    assert recorded_settings(["napari-mrcz blosc level 3"]) is None
    labels = [python_mrcz_label, mrcfile_label, settings_label("lz4", 7)]
    assert recorded_settings(labels) == ("lz4", 7)


@pytest.mark.parametrize("codec", AVAILABLE_CODECS)
def test_writer_records_codec_and_level_as_mrcfile_reads_the_labels(tmp_path, rng, codec):
    path = tmp_path / "recorded.mrcz"
    data = rng.normal(size=(2, 8, 8)).astype(np.float32)
    napari_mrcz.writeMRC(data, path, compressor=codec, clevel=4)
    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        labels = [label.rstrip() for label in mrc.get_labels()]
    assert recorded_settings(labels) == (codec, 4)


def test_plain_files_record_no_settings(tmp_path, rng):
    path = tmp_path / "plain.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), path)
    with mrcfile.open(path) as mrc:
        assert recorded_settings([label.rstrip() for label in mrc.get_labels()]) is None


def test_many_headers_are_judged_as_one_header_is(rng):
    """The vectorised check (indexing 10^5 chunks at once) follows the same rules as
    the one-header check, on headers near every limit."""
    count, expected = 5000, 4096
    fields = {
        "version": rng.choice([0, 1, 2, 3, 5, 6, 255], count),
        "versionlz": rng.integers(0, 256, count),
        "flags": rng.integers(0, 256, count),
        "typesize": rng.choice([0, 1, 4], count),
        "nbytes": rng.choice([0, expected - 1, expected, expected + 1], count),
        "blocksize": rng.choice([-1, 0, 1, 2**20], count),
        "cbytes": rng.choice([0, 15, 16, 17, 64, 4096, 10**6], count),
    }
    rooms = rng.choice([16, 64, 4096, 10**7], count)
    headers = np.zeros(count, CHUNK_HEADER_DTYPE)
    for name, values in fields.items():
        headers[name] = values
    one_by_one = {
        index
        for index in range(count)
        if chunk_header_problem(
            parse_chunk_header(CHUNK_HEADER.pack(*headers[index].tolist())),
            expected,
            int(rooms[index]),
        )
    }
    assert 0 < len(one_by_one) < count
    assert set(damaged_chunk_headers(headers, expected, rooms).tolist()) == one_by_one
