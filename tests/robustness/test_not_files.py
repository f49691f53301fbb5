"""Hostile inputs end in one clear message, at once: never a hang, a crash or a traceback.

FIFOs, sockets, a character device, folders named like files, text files (a RELION STAR
file renamed), zero-length and truncated files go through every engine entry point
(in-process, under an alarm so that a blocking open fails the test instead of hanging
it) and through the ``mrcz`` command (in a subprocess with a timeout).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import MRCZFormatError, formats
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools import info
from napari_mrcz.tools.validate import validate_file

from tests.helpers import SHARED_DATA

CLI = [sys.executable, "-m", "napari_mrcz.cli"]

#: A RELION STAR file, the text most often found under an .mrc name.
STAR = (
    "\ndata_\n\nloop_\n_rlnImageName #1\n_rlnMicrographName #2\n_rlnDefocusU #3\n"
    + "".join(
        f"{n:06d}@Particles/mic_001.mrcs Micrographs/mic_001.mrc 12345.6\n" for n in range(60)
    )
).encode()

#: Every engine entry point that takes a path, by name.
ENGINE = {
    "readMRC": napari_mrcz.readMRC,
    "readMRCHeader": napari_mrcz.readMRCHeader,
    "open_lazy": lambda path: napari_mrcz.open_lazy(path).close(),
    "read_layout": read_layout,
    "read_dm": napari_mrcz.read_dm,
    "readDM4": napari_mrcz.readDM4,
    "describe": info.describe,
    "open_images": lambda path: formats.open_images(path).__enter__(),
}


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail with TimeoutError if the block takes longer (an open() blocked on a FIFO)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def short_tmp():
    """A temporary folder with a short path (a socket's path is limited to ~100 bytes)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def make_hostile(folder: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    """Create every hostile input in ``folder``: name -> (path, pattern of its message).

    The stem before ``_`` is the kind of input; no two names write the same output.
    """
    found: dict[str, tuple[pathlib.Path, str]] = {}

    def add(name: str, pattern: str) -> pathlib.Path:
        found[name] = (folder / name, pattern)
        return folder / name

    for name in ("fifo.mrc", "fifo_dm.dm4", "fifo_gz.mrc.gz", "fifo_z.mrcz"):
        os.mkfifo(add(name, r"is a FIFO \(named pipe\), not a file"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(add("socket.mrc", r"is a socket, not a file")))
    server.close()
    add("null.mrc", r"is a character device, not a file").symlink_to("/dev/null")
    for name in ("folder.mrc", "folder_dm.dm4"):
        add(name, r"is a folder").mkdir()
    text = r"it starts with text: 'data_ loop_ _rlnImageName #1"
    add("star.mrc", rf"not an MRC file \(no valid header\): {text}").write_bytes(STAR)
    add("star_z.mrcz", rf"not an MRC file \(no valid header\): {text}").write_bytes(STAR)
    add("star_dm.dm4", rf"not a DM3/DM4 file: {text}").write_bytes(STAR)
    add("star_gz.mrc.gz", rf"not gzip-compressed, though named \.gz: {text}").write_bytes(STAR)
    add("star_short.mrc", rf"too short for an MRC file: 89 bytes.*{text}").write_bytes(STAR[:89])
    add("star_bz2.map.bz2", rf"not an MRC file.*{text}.*once decompressed").write_bytes(
        bz2.compress(STAR)
    )
    add("empty.mrc", r"too short for an MRC file: 0 bytes").write_bytes(b"")
    add("empty_dm.dm4", r"0 bytes are too few for a DM file").write_bytes(b"")
    add("empty_gz.mrc.gz", r"is empty \(0 bytes\)").write_bytes(b"")
    zeros = r"not an MRC file \(no valid header\): its first 1024 bytes are all zero"
    add("zeros.mrc", zeros).write_bytes(bytes(4096))
    frames = np.arange(4 * 32 * 32, dtype=np.float32).reshape(4, 32, 32)
    napari_mrcz.writeMRC(frames, folder / "whole.mrcz", compressor="zstd")
    raw = (folder / "whole.mrcz").read_bytes()
    (folder / "whole.mrcz").unlink()
    add("cut_z.mrcz", r"past the end of the file").write_bytes(raw[:-100])
    add("cut_gz.mrc.gz", r"damaged compressed stream").write_bytes(gzip.compress(raw)[:300])
    if SHARED_DATA is not None:
        real = (SHARED_DATA / "dm4" / "rsciio_2D_test-11.dm4").read_bytes()
        add("cut_dm.dm4", r"past the end of the file").write_bytes(real[: len(real) // 2])
        real = (SHARED_DATA / "mrc" / "leginon_holetemplate.mrc").read_bytes()
        add("cut.mrc", r"truncated").write_bytes(real[:-10])
    return found


@pytest.fixture
def hostile(short_tmp):
    return make_hostile(short_tmp)


#: Kinds of input that are no regular file: every reader must say what they are.
NOT_FILES = ("fifo", "socket", "null", "folder")
#: Readers of the header only: a file cut in its data may still give its header
#: (``describe``, ``mrcz info``: of a compressed download, which they decompress no
#: further than its header).
HEADER_READERS = ("readMRCHeader", "read_layout", "describe")


def _kind(name: str) -> str:
    """The kind of input (``'fifo'`` for ``fifo_gz.mrc.gz``)."""
    return name.split(".")[0].split("_")[0]


def _checks_message(reader: str, name: str) -> bool:
    """Whether ``reader``'s message on ``name`` must match the input's pattern.

    The MRC readers take a DM file's bytes as a (bad) MRC header and the DM readers an
    MRC file's as a (bad) DM header, both refused clearly: across families only the
    type is checked. ``read_layout`` reads ``.gz`` files as they are, undecompressed.
    """
    if _kind(name) in NOT_FILES:
        return True
    if reader == "read_layout" and name.endswith((".gz", ".bz2")):
        return False
    return (reader in ("read_dm", "readDM4")) == name.endswith(".dm4")


@pytest.mark.parametrize("reader", ENGINE)
def test_engine_refuses_each_hostile_input_at_once(reader, hostile):
    for name, (path, pattern) in hostile.items():
        with deadline(10):
            try:
                ENGINE[reader](path)
            except MRCZFormatError as caught:
                error = caught
            else:
                assert reader in HEADER_READERS, (reader, name)
                assert _kind(name) == "cut", (reader, name)
                continue
        assert type(error) is MRCZFormatError, (name, error)
        assert error.path == str(path), (name, error)
        assert str(error).count(str(path)) == 1, (name, error)
        if _checks_message(reader, name):
            assert re.search(pattern, error.problem), (name, error.problem)


def test_napari_reader_refuses_each_hostile_input_at_once(hostile):
    """What napari calls on a dropped file: our reader, and one MRCZFormatError naming it.

    (The notification napari then shows carries this message: tests/_qt.)
    """
    from napari_mrcz._napari.reader import get_reader

    for name, (path, pattern) in hostile.items():
        with deadline(10):
            reader = get_reader(str(path))
            assert reader is not None, name  # every name here is one of ours
            with pytest.raises(MRCZFormatError) as caught:
                reader(str(path))
        assert type(caught.value) is MRCZFormatError, name
        assert caught.value.path == str(path), (name, caught.value)
        if _kind(name) in NOT_FILES or not name.endswith((".gz", ".bz2")):
            assert re.search(pattern, caught.value.problem), (name, caught.value.problem)


def test_validate_reports_each_hostile_input(hostile):
    for name, (path, pattern) in hostile.items():
        with deadline(10):
            findings = validate_file(path)
        assert findings, name
        assert {finding.severity for finding in findings} == {"problem"}
        if _kind(name) != "cut":  # a cut real file has more findings (NVERSION, statistics)
            assert len(findings) == 1, (name, findings)
        if _checks_message("validate", name):
            messages = [finding.message for finding in findings]
            assert any(re.search(pattern, message) for message in messages), (name, messages)


def run(*args, timeout=60):
    """``mrcz args`` in a subprocess; a hang fails the test through TimeoutExpired."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_cli_info_and_validate_name_each_hostile_file(hostile):
    paths = [path for path, _ in hostile.values()]
    for command in ("info", "validate"):
        result = run(command, *paths)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        for name, (path, pattern) in hostile.items():
            lines = [
                line
                for line in (result.stdout + result.stderr).splitlines()
                if f"{path}:" in line or line.endswith(f"  {path}")
            ]
            if command == "info" and name == "cut_gz.mrc.gz":
                assert f"{path}  (MRCZ" in result.stdout  # its header is all info reads
                continue
            assert len(lines) == 1, (command, lines)
            if command == "info":
                assert re.search(pattern, lines[0]), (name, lines[0])


def test_cli_on_a_folder_holding_hostile_files(hostile, short_tmp, rng):
    """One good file among them is converted; each hostile one fails alone, named."""
    good = rng.normal(size=(3, 16, 16)).astype(np.float32)
    napari_mrcz.writeMRC(good, short_tmp / "good.mrc")
    out = short_tmp.parent / (short_tmp.name + "-out")
    try:
        info = run("info", short_tmp)
        assert info.returncode == 1
        assert "good.mrc  (MRC" in info.stdout
        compress = run("compress", short_tmp, "-o", out, "--no-progress")
        assert compress.returncode == 1, compress.stderr
        assert "Traceback" not in compress.stderr
        np.testing.assert_array_equal(napari_mrcz.readMRC(out / "good.mrcz")[0], good)
        for name, (path, pattern) in hostile.items():
            if name.endswith(".mrcz") or _kind(name) == "folder":
                continue  # compress leaves MRCZ files alone; folders are searched
            failed = [line for line in compress.stdout.splitlines() if line.startswith("FAILED")]
            [line] = [line for line in failed if f" {path}:" in line]
            assert re.search(pattern, line), (name, line)
        assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize(
    "name", ["fifo.mrc", "folder_dm.dm4", "null.mrc", "star.mrc", "empty_dm.dm4"]
)
def test_cli_convert_refuses_a_hostile_input(name, hostile, short_tmp):
    path, pattern = hostile[name]
    result = run("convert", path, short_tmp / "out.mrcz")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith(f"FAILED {path}:")]
    assert re.search(pattern, line), line
    assert not (short_tmp / "out.mrcz").exists()
