"""A run says "done" (and exits 0) only when every byte of every input is in its output.

Driven as a facility drives ``mrcz``: in subprocesses, with a second process writing
a movie while it is archived, capabilities dropped (``setpriv``) where permissions
matter, and a signal sent while a download is being decompressed.
"""

import gzip
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.cli import batch
from napari_mrcz.cli.batch import Settings, Task, write_outputs
from napari_mrcz.mrc.header import HEADER_SIZE, header_dtype

from tests.dm.builder import DMBuilder, stored_bytes

CLI = [sys.executable, "-m", "napari_mrcz.cli"]


def run(*args, timeout=300, prefix=()):
    return subprocess.run(
        [*prefix, *CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def partials(folder):
    return [path for path in pathlib.Path(folder).rglob("*") if path.name.endswith(".partial")]


# ------------------------------------------------------------ a source that changes


GROWING_FRAME = (256, 256)


def test_a_movie_still_being_written_is_not_done_and_is_converted_next_time(tmp_path):
    """A second process appends frames (and updates NZ) while the movie is archived."""
    raw, out = tmp_path / "raw", tmp_path / "archive"
    raw.mkdir()
    movie = raw / "movie.mrc"
    rng = np.random.default_rng(3)
    napari_mrcz.writeMRC(rng.normal(size=(24, *GROWING_FRAME)).astype(np.float32), movie)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time, numpy as np, napari_mrcz\n"
            "movie, stop = sys.argv[1], pathlib.Path(sys.argv[2])\n"
            "frame, count = np.ones((256, 256), np.float32), 24\n"
            "while not stop.exists():\n"
            "    napari_mrcz.writeMRC(frame, movie, idx=count)\n"
            "    count += 1\n"
            "    time.sleep(0.05)\n",
            str(movie),
            str(stop),
        ]
    )
    try:
        growing = run(
            "compress", raw, "-o", out, "--codec", "zlib", "--level", "9", "--threads", "1",
            "--verify", "--delete-source",
        )  # fmt: skip
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert growing.returncode == 1, growing.stdout + growing.stderr
    assert f"FAILED {movie}: changed while it was converted (it went from" in growing.stderr
    assert "\n1 failed;" in growing.stdout
    assert movie.exists()
    assert not (out / "movie.mrcz").exists()
    assert partials(tmp_path) == []
    # Once the movie is complete, the next run converts all of it.
    frames = napari_mrcz.readMRCHeader(movie)[0]["dimensions"][0]
    assert frames > 24
    again = run("compress", raw, "-o", out, "--verify")
    assert again.returncode == 0, again.stdout + again.stderr
    assert mrcz.readMRC(str(out / "movie.mrcz"))[0].shape == (frames, *GROWING_FRAME)


def test_a_source_replaced_during_its_conversion_is_not_done(tmp_path, rng):
    """Another file moved onto the source's name while it is written: a failure."""
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(4, 16, 16)).astype(np.float32), source)
    other = tmp_path / "other.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(8, 16, 16)).astype(np.float32), other)
    target = tmp_path / "movie.mrcz"
    task = Task(str(source), [str(target)])
    moved = []

    def progress(nbytes):
        if nbytes and not moved:
            os.replace(other, source)
            moved.append(True)

    with pytest.raises(ValueError, match="another file was put in its place"):
        write_outputs(task, Settings("zstd", verify=True), 0, progress, lambda _: None)
    assert not target.exists()
    assert partials(tmp_path) == []


def test_an_mrcz_with_more_slices_than_its_header_says_is_not_converted(tmp_path, rng):
    """NZ not yet updated for the last chunk written: the copy would lose that frame."""
    raw = tmp_path / "raw"
    raw.mkdir()
    source = raw / "frames.mrcz"
    napari_mrcz.writeMRC(rng.normal(size=(4, 16, 16)).astype(np.float32), source, compressor="lz4")
    header = bytearray(source.read_bytes()[:HEADER_SIZE])
    nz_offset = header_dtype("<").fields["nz"][1]
    header[nz_offset : nz_offset + 4] = np.int32(3).tobytes()
    with open(source, "r+b") as handle:
        handle.write(header)
    result = run("decompress", raw, "-o", tmp_path / "plain", "--delete-source")
    assert result.returncode == 1, result.stdout
    assert "1 more compressed z-slices follow the 3 its header declares" in result.stderr
    assert source.exists()
    assert not (tmp_path / "plain" / "frames.mrc").exists()


# ------------------------------------------------------------ folders it cannot read

#: Runs the command as root without the capabilities that let root read any folder.
WITHOUT_CAPABILITIES = ("setpriv", "--inh-caps=-all", "--bounding-set=-all", "--")

needs_setpriv = pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and setpriv to drop capabilities",
)


@pytest.fixture
def tree_with_a_locked_folder(tmp_path, rng):
    """raw/a.mrc, raw/locked/b.mrc (mode 000), raw/linked -> elsewhere, raw/loop -> raw."""
    raw = tmp_path / "raw"
    (raw / "locked").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path in (raw / "a.mrc", raw / "locked" / "b.mrc", elsewhere / "c.mrc"):
        napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), path)
    (raw / "linked").symlink_to(elsewhere, target_is_directory=True)
    (raw / "loop").symlink_to(raw, target_is_directory=True)
    (raw / "locked").chmod(0)
    yield raw
    (raw / "locked").chmod(0o755)


@needs_setpriv
def test_a_folder_that_cannot_be_listed_fails_the_run(tree_with_a_locked_folder, tmp_path):
    raw = tree_with_a_locked_folder
    out = tmp_path / "out"
    result = run("compress", raw, "-o", out, "--delete-source", prefix=WITHOUT_CAPABILITIES)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {raw / 'locked'}: folder could not be listed: Permission denied" in (
        result.stdout
    )
    assert "2 done, 1 skipped, 1 failed" in result.stdout
    [loop] = [line for line in result.stdout.splitlines() if f"{raw / 'loop'} " in line]
    assert loop.split()[0] == "skipped"
    assert f"{raw / 'loop'}: a link to {raw}, a folder walked already" in result.stdout
    # The linked folder was followed, once; the locked one was not deleted blindly.
    assert (out / "a.mrcz").exists()
    assert (out / "linked" / "c.mrcz").exists()
    assert not (raw / "a.mrc").exists()
    for command in ("validate", "info"):
        checked = run(command, raw, prefix=WITHOUT_CAPABILITIES)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert f"{raw / 'locked'}: failed: folder could not be listed" in checked.stderr


def test_a_path_over_the_system_limit_is_a_failure(removed_with_rm):
    tmp_path = removed_with_rm
    """Folders nested past PATH_MAX cannot be listed by name: named, not skipped silently."""
    raw = tmp_path / "raw"
    raw.mkdir()
    napari_mrcz.writeMRC(np.ones((1, 4, 4), np.float32), raw / "shallow.mrc")
    name = "n" * 250
    folder = os.open(raw, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 251 characters: past Linux's 4096
            os.mkdir(name, dir_fd=folder)
            inner = os.open(name, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = inner
    finally:
        os.close(folder)
    result = run("compress", raw, "-o", tmp_path / "out")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "folder could not be listed: File name too long" in result.stdout
    assert (tmp_path / "out" / "shallow.mrcz").exists()


@pytest.fixture
def removed_with_rm(tmp_path):
    """tmp_path, emptied with rm: trees too deep for shutil.rmtree (pytest's clean-up)."""
    yield tmp_path
    subprocess.run(["rm", "-rf", *map(str, tmp_path.iterdir())], check=True)


def test_folders_a_thousand_levels_deep_are_converted(removed_with_rm):
    tmp_path = removed_with_rm
    raw = tmp_path / "raw"
    deep = raw
    for _ in range(1101):  # one level at a time: makedirs recurses once per level
        deep.mkdir()
        deep = deep / "d"
    deep = deep.parent
    napari_mrcz.writeMRC(np.ones((1, 4, 4), np.float32), raw / "shallow.mrc")
    napari_mrcz.writeMRC(np.full((1, 4, 4), 2, np.float32), deep / "deep.mrc")
    result = run("compress", raw, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 done" in result.stdout
    copy = tmp_path.joinpath("out", *["d"] * 1100, "deep.mrcz")
    np.testing.assert_array_equal(mrcz.readMRC(str(copy))[0], np.full((4, 4), 2))


# ------------------------------------------------------------ asyncWriteMRC at exit


def test_asyncwritemrc_as_the_last_call_of_a_script_writes_the_file(tmp_path):
    target = tmp_path / "last.mrcz"
    script = (
        "import sys, numpy as np, napari_mrcz\n"
        "data = np.random.default_rng(0).normal(size=(30, 256, 256)).astype(np.float32)\n"
        "napari_mrcz.asyncWriteMRC(data, sys.argv[1], compressor='zstd', clevel=9,"
        " n_threads=1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = np.random.default_rng(0).normal(size=(30, 256, 256)).astype(np.float32)
    np.testing.assert_array_equal(mrcz.readMRC(str(target))[0], expected)


def test_a_failed_asyncwritemrc_at_exit_is_reported(tmp_path):
    target = tmp_path / "missing" / "last.mrcz"
    script = (
        "import sys, numpy as np, napari_mrcz\n"
        "napari_mrcz.asyncWriteMRC(np.ones((2, 8, 8), np.float32), sys.argv[1])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=120
    )
    assert "MRCZWarning: a background write or read failed as the script ended" in result.stderr
    assert str(target) in result.stderr


# ------------------------------------------------------------ compressed downloads


def gzip_bomb(path, shape, members):
    """A .mrc.gz of ``shape`` int8 whose data is ``members`` gzip members of 1 MiB of zeros."""
    header = np.zeros((), dtype=header_dtype("<"))
    header["nz"], header["ny"], header["nx"] = shape
    header["mode"] = 0
    header["mapc"], header["mapr"], header["maps"] = 1, 2, 3
    header["map"] = b"MAP "
    header["machst"] = np.frombuffer(b"\x44\x44\x00\x00", dtype="u1")
    member = gzip.compress(bytes(2**20), compresslevel=1)
    with open(path, "wb") as sink:
        sink.write(gzip.compress(header.tobytes()))
        for _ in range(members):
            sink.write(member)
    return path


def test_info_of_a_huge_download_reads_only_its_header(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    bomb = gzip_bomb(tmp_path / "huge.mrc.gz", (800, 8192, 8192), 256)
    result = subprocess.run(
        [*CLI, "info", str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    assert result.returncode == 0, result.stderr
    assert "dimensions: 8192 x 8192 x 800 (x, y, z)" in result.stdout
    assert list(temporary.iterdir()) == []


def copy_size(pid: int) -> int | None:
    """The size of the nameless temporary copy process ``pid`` is writing, if any."""
    folder = f"/proc/{pid}/fd"
    for number in os.listdir(folder):
        try:
            if os.readlink(f"{folder}/{number}").endswith(" (deleted)"):
                return os.stat(f"{folder}/{number}").st_size
        except OSError:
            continue
    return None


def test_sigterm_stops_the_decompression_of_a_download(tmp_path):
    """A 2 GiB expansion: the run stops at once, and no copy is left anywhere."""
    declared = 32 * 8192 * 8192
    if shutil.disk_usage(tmp_path).free < 3 * declared:
        pytest.skip("not enough free disk for the expansion to start")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    (tmp_path / "raw").mkdir()
    bomb = gzip_bomb(tmp_path / "raw" / "big.mrc.gz", (32, 8192, 8192), declared // 2**20)
    process = subprocess.Popen(
        [*CLI, "compress", str(bomb.parent), "-o", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    deadline = time.monotonic() + 120
    while (copy_size(process.pid) or 0) < 64 * 2**20 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    largest = 0
    while process.poll() is None and time.monotonic() < deadline:
        largest = max(largest, copy_size(process.pid) or 0)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert largest < declared // 2  # it stopped decompressing, not ran to the end
    assert list(temporary.iterdir()) == []
    assert not (tmp_path / "out").exists() or partials(tmp_path / "out") == []


# ------------------------------------------------------------ headers that come back


def sampled_map(path, rng):
    """MX = MY = MZ = 100 over N = 32, CELLA 120 A, space group 19 (as the issue saw)."""
    with mrcfile.new(path) as handle:
        handle.set_data(rng.normal(size=(32, 32, 32)).astype(np.float32))
        handle.header.mx = handle.header.my = handle.header.mz = 100
        handle.header.cella = (120.0, 120.0, 120.0)
        handle.header.ispg = 19


def permuted_map(path, rng):
    """MAPC, MAPR, MAPS = 3, 1, 2 with its own sampling, starts and origin (EMDB-like)."""
    with mrcfile.new(path) as handle:
        handle.set_data(rng.normal(size=(4, 5, 6)).astype(np.float32))
        handle.header.mapc, handle.header.mapr, handle.header.maps = 3, 1, 2
        handle.header.mx, handle.header.my, handle.header.mz = 50, 60, 70
        handle.header.cella = (50.0, 120.0, 210.0)
        handle.header.nxstart, handle.header.nystart, handle.header.nzstart = -3, 2, 7
        handle.header.origin = (1.0, 2.0, 3.0)


#: What a plain copy is allowed to write anew (statistics are measured again, labels
#: and the machine stamp are the writer's).
REWRITTEN = {"dmin", "dmax", "dmean", "rms", "machst", "nlabl", "label", "nversion"}


@pytest.mark.parametrize("make", [sampled_map, permuted_map])
def test_an_archived_map_comes_back_with_its_header(make, tmp_path, rng):
    """compress --delete-source, then decompress: every header field and every byte of
    data as the source had them (mrcfile reads both the same)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    source = raw / "map.map"
    make(source, rng)
    original = source.read_bytes()
    with mrcfile.open(source) as handle:
        expected = handle.data.copy(), handle.voxel_size.copy(), handle.header.copy()
    archived = run("compress", raw, "-o", tmp_path / "arch", "--verify", "--delete-source")
    assert archived.returncode == 0, archived.stdout + archived.stderr
    assert not source.exists(), archived.stdout
    restored = run("decompress", tmp_path / "arch", "-o", tmp_path / "back", "--verify")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    back = tmp_path / "back" / "map.mrc"
    assert back.read_bytes()[HEADER_SIZE:] == original[HEADER_SIZE:]
    with mrcfile.open(back) as handle:
        np.testing.assert_array_equal(handle.data, expected[0])
        assert handle.voxel_size == expected[1]
        for name in handle.header.dtype.names:
            if name not in REWRITTEN:
                assert handle.header[name].tobytes() == expected[2][name].tobytes(), name
    assert mrcfile.validate(str(back), print_file=io.StringIO())


def test_a_map_whose_grid_cannot_be_recorded_is_kept(tmp_path, rng):
    """An FEI extended header leaves no room for the grid record: the source stays."""
    raw = tmp_path / "raw"
    raw.mkdir()
    source = raw / "fei.mrc"
    with mrcfile.new(source) as handle:
        handle.set_data(rng.normal(size=(4, 16, 16)).astype(np.float32))
        handle.set_extended_header(np.zeros(4 * 128, dtype="u1"))
        handle.header.exttyp = b"FEI1"
        handle.header.mx = handle.header.my = 20
        handle.header.cella = (20.0, 20.0, 4.0)
    result = run("compress", raw, "-o", tmp_path / "arch", "--verify", "--delete-source")
    assert result.returncode == 0, result.stdout + result.stderr
    assert source.exists()
    assert (
        "source kept: its axis order and sampling cannot be recorded in an MRCZ copy beside "
        "its 512-byte extended header (FEI1): MX (sampling intervals along x (pixel size = "
        "CELLA.x / MX)) 20 would come back as 16"
    ) in result.stdout


# ------------------------------------------------------------ messages


def test_json_output_is_valid_for_a_file_name_that_is_not_utf8(tmp_path):
    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(os.fsencode(str(folder)) + b"/lat\xe9.mrc")
    napari_mrcz.writeMRC(np.ones((2, 4, 4), np.float32), name)
    for command in ("info", "validate"):
        result = subprocess.run(
            [*CLI, command, "--json", str(folder)], capture_output=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        [entry] = json.loads(result.stdout.decode("utf-8"))
        assert entry["path"] == str(folder / "lat\\xe9.mrc")


@needs_setpriv
def test_a_source_that_cannot_be_deleted_is_done_and_kept(tmp_path, rng):
    raw = tmp_path / "raw"
    raw.mkdir()
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), raw / "a.mrc")
    raw.chmod(0o555)  # the folder cannot lose its files
    try:
        result = run(
            "compress", raw, "-o", tmp_path / "out", "--delete-source", prefix=WITHOUT_CAPABILITIES
        )
    finally:
        raw.chmod(0o755)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = [line for line in result.stdout.splitlines() if line.startswith("done")]
    assert row.split()[1] == str(raw / "a.mrc")
    assert f"{raw / 'a.mrc'}: source kept: it could not be deleted (Permission denied)" in (
        result.stdout
    )
    assert (raw / "a.mrc").exists()
    assert (tmp_path / "out" / "a.mrcz").exists()


# ------------------------------------------------------------ what killed runs leave


def slow_movies(folder, count, seed):
    """Movies that take a few seconds each with zlib-9 on one thread."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for number in range(count):
        data = rng.normal(size=(48, 256, 256)).astype(np.float32)
        napari_mrcz.writeMRC(data, folder / f"m{number}.mrc")


SLOW = ("--codec", "zlib", "--level", "9", "--threads", "1")


def start(*args):
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_partials(folder, process):
    deadline = time.monotonic() + 120
    while not partials(folder) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    assert partials(folder)


def test_a_later_run_removes_what_a_killed_run_left_and_says_so(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    slow_movies(raw, 2, seed=1)
    killed = start("compress", raw, "-o", out, *SLOW)
    wait_for_partials(out, killed)
    killed.kill()
    killed.communicate(timeout=60)
    left = partials(out)
    assert left
    again = run("compress", raw, "-o", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "unfinished temporary file" in again.stdout
    assert f"that a stopped run left in {out}" in again.stdout
    assert partials(out) == []
    assert sorted(path.name for path in out.iterdir()) == ["m0.mrcz", "m1.mrcz"]


def test_a_live_runs_temporaries_are_left_alone(tmp_path):
    out = tmp_path / "out"
    slow_movies(tmp_path / "slow", 2, seed=2)
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), tmp_path / "quick.mrc")
    live = start("compress", tmp_path / "slow", "-o", out, *SLOW)
    wait_for_partials(out, live)
    other = run("compress", tmp_path / "quick.mrc", "-o", out)
    assert other.returncode == 0, other.stdout + other.stderr
    assert "unfinished temporary file" not in other.stdout
    stdout, stderr = live.communicate(timeout=300)
    assert live.returncode == 0, stdout + stderr
    assert sorted(path.name for path in out.iterdir()) == ["m0.mrcz", "m1.mrcz", "quick.mrcz"]


# ------------------------------------------------------------ changes at the edges


def test_a_rewrite_that_sets_the_modification_time_back_is_seen(tmp_path, rng):
    """Bytes rewritten in place, then touch -r: the change time gives it away."""
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(4, 16, 16)).astype(np.float32), source)
    task = Task(str(source), [str(tmp_path / "movie.mrcz")])
    done = []

    def progress(nbytes):
        if nbytes and not done:
            before = os.stat(source)
            with open(source, "r+b") as handle:
                handle.seek(HEADER_SIZE)
                handle.write(bytes(64))
            os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
            done.append(True)

    with pytest.raises(ValueError, match="changed while it was converted"):
        # without --verify: the re-read would see the new bytes too
        write_outputs(task, Settings("zstd"), 0, progress, lambda _: None)
    assert not (tmp_path / "movie.mrcz").exists()


def test_a_change_as_the_outputs_get_their_names_removes_them(tmp_path, rng, monkeypatch):
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(4, 16, 16)).astype(np.float32), source)
    target = tmp_path / "movie.mrcz"
    real_publish = batch.publish

    def publish_then_append(*args):
        real_publish(*args)
        napari_mrcz.writeMRC(np.ones((16, 16), np.float32), source, idx=4)

    monkeypatch.setattr(batch, "publish", publish_then_append)
    with pytest.raises(ValueError, match="changed while it was converted"):
        write_outputs(Task(str(source), [str(target)]), Settings("zstd"), 0, lambda _: None,
                      lambda _: None)  # fmt: skip
    assert not target.exists()
    assert partials(tmp_path) == []


def test_a_change_while_the_copy_is_flushed_keeps_the_source(tmp_path, rng, monkeypatch):
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(4, 16, 16)).astype(np.float32), source)
    task = Task(str(source), [str(tmp_path / "movie.mrcz")])
    check = write_outputs(task, Settings("zstd", verify=True), 0, lambda _: None, lambda _: None)
    real_flush = batch.flush_to_disk

    def flush_while_written(path):
        real_flush(path)
        if not task.message:
            napari_mrcz.writeMRC(np.ones((16, 16), np.float32), source, idx=4)
            task.message = "appended"

    monkeypatch.setattr(batch, "flush_to_disk", flush_while_written)
    batch.delete_source(task, check)
    assert source.exists()
    assert not task.source_deleted
    assert task.message.startswith("source kept: it changed while it was converted")


def test_a_tenth_label_stays_and_its_source_may_go(tmp_path, rng):
    raw = tmp_path / "raw"
    raw.mkdir()
    source = raw / "imod.mrc"
    with mrcfile.new(source) as handle:
        handle.set_data(rng.normal(size=(4, 16, 16)).astype(np.float32))
        for number in range(10):
            handle.header.label[number] = f"label {number}".encode()
        handle.header.nlabl = 10
    result = run("compress", raw, "-o", tmp_path / "arch", "--verify", "--delete-source")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not source.exists(), result.stdout
    back = run("decompress", tmp_path / "arch", "-o", tmp_path / "back")
    assert back.returncode == 0, back.stdout + back.stderr
    with mrcfile.open(tmp_path / "back" / "imod.mrc") as handle:
        labels = [bytes(label).strip().decode() for label in handle.header.label]
    assert labels == [f"label {number}" for number in range(10)]


def test_a_link_that_leads_nowhere_fails_the_run(tmp_path, rng):
    raw = tmp_path / "raw"
    raw.mkdir()
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), raw / "one.mrc")
    (raw / "session9").symlink_to("/nonexistent/mount/session9")
    result = run("compress", raw, "-o", tmp_path / "out", "--delete-source")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"{raw / 'session9'}: a link to /nonexistent/mount/session9, which does not exist"
        in result.stdout
    )


@needs_setpriv
def test_a_link_into_a_folder_it_cannot_enter_fails_the_run(tmp_path, rng):
    share, raw = tmp_path / "share", tmp_path / "raw"
    (share / "locked" / "inner").mkdir(parents=True)
    raw.mkdir()
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), raw / "one.mrc")
    (raw / "session2").symlink_to(share / "locked" / "inner", target_is_directory=True)
    (share / "locked").chmod(0)
    try:
        result = run("compress", raw, "-o", tmp_path / "out", prefix=WITHOUT_CAPABILITIES)
    finally:
        (share / "locked").chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{raw / 'session2'}: cannot be looked into: Permission denied" in result.stdout


# ------------------------------------------------------------ messages about outputs


@needs_setpriv
def test_an_output_folder_that_cannot_be_written_is_named_not_our_hidden_files(tmp_path):
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), source)
    out = tmp_path / "archive"
    out.mkdir()
    out.chmod(0o555)
    result = run("compress", source, "-o", out, prefix=WITHOUT_CAPABILITIES)
    assert result.returncode == 1, result.stderr
    (failure,) = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert "Permission denied" in failure
    assert str(out / "movie.mrcz") in failure
    assert ".mrcz-" not in failure  # neither a temporary nor the owner lock
    assert os.listdir(out) == []


def test_an_output_folder_that_is_a_file_is_refused_before_anything_runs(tmp_path):
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), source)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    result = run("compress", source, "-o", existing)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mrcz compress: -o {existing} is a file: give the folder to write the outputs into"
    )
    assert existing.read_text() == "keep me"


def test_a_source_whose_json_meta_is_damaged_is_converted_and_kept(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    source = raw / "movie.mrcz"
    napari_mrcz.writeMRC(data, source, compressor="zstd", meta={"note": "hello"})
    damaged = bytearray(source.read_bytes())
    damaged[damaged.index(b'"note"') + 1] = 0xFF
    source.write_bytes(bytes(damaged))
    out = tmp_path / "plain"
    result = run("decompress", raw, "-o", out, "--verify", "--delete-source")
    assert result.returncode == 0, result.stderr
    assert "source kept: its damaged JSON meta is not in the copy" in result.stdout
    assert source.read_bytes() == bytes(damaged)
    with mrcfile.open(out / "movie.mrc") as handle:
        np.testing.assert_array_equal(handle.data, data)


@pytest.mark.parametrize(
    ("values", "deleted"),
    [((-(2**31), 2**31 - 1), False), ((-5, 40000), True)],
    ids=["full range", "fits uint16 or float32"],
)
def test_an_int32_source_no_plain_mrc_can_hold_is_kept(tmp_path, values, deleted):
    """MRCZ keeps int32 (mode 7); decompress can give it back only if MRC2014 holds it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    builder = DMBuilder(4, "<")
    data = np.array([[values[0], 0], [1, values[1]]], dtype=np.int32)
    source = raw / "labels.dm4"
    source.write_bytes(builder.file([builder.image(7, [2, 2], stored_bytes(data, "<"))]))
    archive = tmp_path / "archive"
    result = run("compress", raw, "-o", archive, "--verify", "--delete-source")
    assert result.returncode == 0, result.stderr
    assert source.exists() != deleted
    if not deleted:
        assert "source kept: no plain MRC file can hold its int32 values" in result.stdout
    back = run("decompress", archive, "-o", tmp_path / "back")
    assert (back.returncode == 0) == deleted, back.stderr


@pytest.fixture
def small_temporary_disk(tmp_path):
    """A 64 MiB tmpfs as the temporary folder (needs root, as CI runs)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace')}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_downloads_expanded_at_once_share_the_temporary_disk(tmp_path, small_temporary_disk):
    """Two 35 MiB expansions (--jobs 2) on a 64 MiB disk: each fits alone, not both.

    The second is refused with the reason before it fills the disk; the first is
    converted."""
    (tmp_path / "raw").mkdir()
    for name in ("a", "b"):
        gzip_bomb(tmp_path / "raw" / f"{name}.mrc.gz", (35, 1024, 1024), 35)
    result = subprocess.run(
        [*CLI, "compress", str(tmp_path / "raw"), "-o", str(tmp_path / "out"), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(small_temporary_disk)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "held for copies under way" in result.stdout + result.stderr
    assert "No space left" not in result.stdout + result.stderr
    assert len(list((tmp_path / "out").glob("*.mrcz"))) == 1
    assert list(small_temporary_disk.iterdir()) == []
