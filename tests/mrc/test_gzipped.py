"""Compressed downloads (.gz, .bz2): read through a temporary copy that goes away.

The same downloads through the napari reader are tested in
tests/_napari/test_reader_downloads.py.
"""

import bz2
import contextlib
import gc
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.gzipped import (
    TRAILING_BYTES_ALLOWED,
    DecompressedFile,
    declared_size,
)
from napari_mrcz.mrc.lazy import LazyMRC

OPENERS = {".gz": gzip.open, ".bz2": bz2.open}


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The system temporary folder, redirected so that leftovers can be seen."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def compress(plain, suffix, target=None):
    """Write ``plain`` compressed next to it (or to ``target``); return the new path."""
    target = target or plain.with_name(plain.name + suffix)
    with open(plain, "rb") as source, OPENERS[suffix](target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


@pytest.fixture
def volume(tmp_path, rng):
    data = rng.normal(5, 2, size=(4, 10, 12)).astype(np.float32)
    path = tmp_path / "emd_1234.map"
    napari_mrcz.writeMRC(data, path, pixelsize=[1.5, 1.2, 1.1])
    return data, path


def mrc_bytes(tmp_path, data):
    path = tmp_path / "source.mrc"
    napari_mrcz.writeMRC(data, path)
    return path.read_bytes()


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_round_trip_matches_the_plain_file(volume, suffix, temp_dir):
    data, plain = volume
    packed = compress(plain, suffix)
    image, meta = napari_mrcz.readMRC(packed)
    expected, expected_meta = napari_mrcz.readMRC(plain)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_allclose(meta["pixelsize"], expected_meta["pixelsize"])
    header, slices = napari_mrcz.readMRCHeader(packed)
    assert slices == 0
    np.testing.assert_array_equal(header["dimensions"], [4, 10, 12])
    frame, _ = napari_mrcz.readMRC(packed, idx=2, useMemmap=True)
    np.testing.assert_array_equal(frame, data[2])
    assert list(temp_dir.iterdir()) == []


def copies() -> list[str]:
    """The temporary copies this process holds open: files with no name any more."""
    found = []
    for number in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{number}")
            if target.startswith(tempfile.gettempdir()) and target.endswith(" (deleted)"):
                found.append(target)
    return sorted(set(found))  # the copy, and the reader's descriptor of it


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_lazy_keeps_the_copy_until_closed(volume, suffix, temp_dir):
    data, plain = volume
    packed = compress(plain, suffix)
    before = copies()
    lazy = napari_mrcz.open_lazy(packed)
    assert lazy.path == str(packed)
    assert list(temp_dir.iterdir()) == []  # no name a killed process could leave behind
    assert len(copies()) == len(before) + 1
    np.testing.assert_array_equal(lazy[3], data[3])
    np.testing.assert_array_equal(np.asarray(lazy), data)
    lazy.close()
    assert copies() == before
    lazy.close()  # twice is harmless


def test_forgotten_lazy_copy_goes_with_the_object(volume, temp_dir):
    _, plain = volume
    before = copies()
    lazy = LazyMRC(compress(plain, ".gz"))
    assert len(copies()) == len(before) + 1
    del lazy
    gc.collect()
    assert copies() == before
    assert list(temp_dir.iterdir()) == []


def test_a_killed_process_leaves_no_copy(volume, temp_dir):
    """SIGKILL during a read of a download: nothing is left in the temporary folder."""
    _, plain = volume
    packed = compress(plain, ".gz")
    script = (
        "import sys, tempfile, time, napari_mrcz\n"
        "tempfile.tempdir = sys.argv[2]\n"
        "lazy = napari_mrcz.open_lazy(sys.argv[1])\n"
        "print('open', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(packed), str(temp_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "open\n"
    finally:
        process.kill()
        process.wait(timeout=60)
    assert list(temp_dir.iterdir()) == []


def test_decompressed_file_leaves_plain_files_alone(volume):
    _, plain = volume
    with DecompressedFile(plain) as source:
        assert source.path == str(plain)
        assert not source.is_temporary
    assert plain.exists()


def test_real_file_gzipped(shared_data, tmp_path, temp_dir):
    plain = shared_data / "mrc" / "gemmi_5i55_tiny.ccp4"
    packed = compress(plain, ".gz", tmp_path / (plain.name + ".gz"))
    image, meta = napari_mrcz.readMRC(packed)
    expected, expected_meta = napari_mrcz.readMRC(plain)
    np.testing.assert_array_equal(image, expected)
    assert meta["mrcHeader"] == expected_meta["mrcHeader"]
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not compressed"])
@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_damaged_stream_names_the_compressed_file(volume, suffix, damage, temp_dir):
    _, plain = volume
    packed = compress(plain, suffix)
    raw = bytearray(packed.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "flipped":
        raw[len(raw) // 2 : len(raw) // 2 + 16] = bytes(16)
    else:
        raw = bytearray(plain.read_bytes())
    packed.write_bytes(bytes(raw))
    # Reading the header decompresses the header alone: damage further on is not seen.
    header_read = [napari_mrcz.readMRCHeader] if damage == "not compressed" else []
    for read in (napari_mrcz.readMRC, *header_read, LazyMRC):
        with pytest.raises(MRCZFormatError) as info:
            read(packed)
        assert info.value.path == str(packed)
    assert list(temp_dir.iterdir()) == []


def test_errors_about_the_data_name_the_compressed_file(volume, temp_dir):
    _, plain = volume
    truncated = plain.with_name("cut.map")
    truncated.write_bytes(plain.read_bytes()[:-100])
    packed = compress(truncated, ".gz")
    with pytest.raises(MRCZFormatError, match="truncated") as info:
        napari_mrcz.readMRC(packed)
    assert info.value.path == str(packed)
    assert list(temp_dir.iterdir()) == []


def test_decompression_bomb_is_refused_early(tmp_path, temp_dir):
    """A header declaring 4x4x1 floats followed by 100 MB of zeros."""
    header = mrc_bytes(tmp_path, np.ones((4, 4), dtype=np.float32))
    bomb = tmp_path / "bomb.mrc.gz"
    zeros = bytes(2**20)
    with gzip.open(bomb, "wb", compresslevel=1) as sink:
        sink.write(header)
        for _ in range(100):
            sink.write(zeros)
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(MRCZFormatError, match="decompression bomb") as info:
            napari_mrcz.readMRC(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.path == str(bomb)
    assert peak < 8 * TRAILING_BYTES_ALLOWED  # a few chunks, not the 100 MB
    assert list(temp_dir.iterdir()) == []


def test_a_little_trailing_junk_is_tolerated(tmp_path, temp_dir):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    raw = mrc_bytes(tmp_path, data) + bytes(1000)
    packed = tmp_path / "junk.mrc.bz2"
    packed.write_bytes(bz2.compress(raw))
    image, _ = napari_mrcz.readMRC(packed)
    np.testing.assert_array_equal(image, data)


def test_what_is_not_mrc_inside_is_refused(tmp_path, temp_dir):
    packed = tmp_path / "text.mrc.gz"
    packed.write_bytes(gzip.compress(b"hello " * 400))
    with pytest.raises(
        MRCZFormatError, match=r"not an MRC file .*text: 'hello hello.*once decompressed"
    ):
        napari_mrcz.readMRC(packed)
    assert list(temp_dir.iterdir()) == []


def test_declared_size(tmp_path):
    raw = mrc_bytes(tmp_path, np.zeros((2, 3, 5), dtype=np.int16))
    assert declared_size("x", raw[:1024]) == 1024 + 2 * 3 * 5 * 2


def test_short_decompressed_file_is_too_short(tmp_path, temp_dir):
    packed = tmp_path / "short.map.gz"
    packed.write_bytes(gzip.compress(b"\0" * 100))
    with pytest.raises(MRCZFormatError, match="too short") as info:
        napari_mrcz.readMRC(packed)
    assert info.value.path == str(packed)


def test_bomb_with_a_lying_header_is_refused_before_writing(tmp_path):
    """A header declaring petabytes is refused at once, before the disk fills."""
    import bz2 as bz2_module

    header = np.zeros((), dtype=napari_mrcz.mrc.header.header_dtype("<"))
    header["nx"] = header["ny"] = header["nz"] = 100_000
    header["mode"] = 2
    header["machst"] = np.frombuffer(b"\x44\x41\x00\x00", dtype="u1")
    path = tmp_path / "bomb.mrc.bz2"
    path.write_bytes(bz2_module.compress(header.tobytes() + bytes(50 * 2**20)))
    with pytest.raises(napari_mrcz.MRCZFormatError, match="free for a temporary copy"):
        napari_mrcz.readMRC(path)
    header, _ = napari_mrcz.readMRCHeader(path)  # the header alone is decompressed
    assert header["dimensions"].tolist() == [100_000] * 3


def test_warnings_name_the_download_not_its_temporary_copy(tmp_path, rng):
    import gzip as gzip_module

    plain = tmp_path / "odd.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(2, 4, 4)).astype(np.float32), plain)
    raw = bytearray(plain.read_bytes())
    raw[64:76] = bytes(12)  # MAPC, MAPR, MAPS = 0: an axis order that cannot be
    path = tmp_path / "odd.mrc.gz"
    path.write_bytes(gzip_module.compress(bytes(raw)))
    with pytest.warns(napari_mrcz.MRCZWarning, match="axis order") as record:
        napari_mrcz.readMRC(path)
    messages = [str(warning.message) for warning in record]
    assert any(str(path) in message for message in messages)
    assert not any("napari-mrcz-" in message for message in messages)
