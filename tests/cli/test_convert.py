"""``mrcz compress``, ``decompress`` and ``convert``, driven as a user drives them: in a
subprocess, on folders of files, interrupted too."""

import io
import os
import re
import shutil
import signal
import subprocess
import time

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz

from tests.cli.commands import CLI, corrupt_file, digest, leftovers, run
from tests.helpers import SHARED_DATA


def test_compress_a_folder_keeps_its_tree_and_data(movies, tmp_path):
    source, data = movies
    out = tmp_path / "archive"
    result = run("compress", source, "-o", out, "--verify", check_status=0)
    for name, frames in data.items():
        target = out / (os.path.splitext(name)[0] + ".mrcz")
        image, meta = mrcz.readMRC(str(target))  # the reference reader
        np.testing.assert_array_equal(image, frames)
        np.testing.assert_allclose(meta["pixelsize"], [1.5, 1.06, 1.06], rtol=1e-6)
        assert meta["voltage"] == pytest.approx(300.0)
        assert str(target) in result.stdout
    assert "3 done" in result.stdout
    assert "ratio" in result.stdout.splitlines()[0]
    assert "speed" in result.stdout.splitlines()[0]
    assert leftovers(out) == []


def test_corrupt_input_among_good_ones(movies, tmp_path):
    source, data = movies
    bad = source / "broken.mrc"
    corrupt_file(bad)
    out = tmp_path / "archive"
    result = run("compress", source, "-o", out, "--jobs", "2")
    assert result.returncode == 1
    assert f"FAILED {bad}: truncated" in result.stdout  # the summary names the bad one
    assert "3 done" in result.stdout
    assert "1 failed" in result.stdout
    for name, frames in data.items():
        image, _ = napari_mrcz.readMRC(out / (os.path.splitext(name)[0] + ".mrcz"))
        np.testing.assert_array_equal(image, frames)
    assert not (out / "broken.mrcz").exists()
    assert leftovers(out) == []


def test_existing_outputs_are_skipped_unless_overwrite(movies, tmp_path):
    source, _ = movies
    out = tmp_path / "archive"
    run("compress", source, "-o", out, check_status=0)
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*.mrcz")}
    time.sleep(0.01)
    again = run("compress", source, "-o", out, "--codec", "lz4", check_status=0)
    assert "3 skipped" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*.mrcz")} == before
    replaced = run("compress", source, "-o", out, "--codec", "lz4", "--overwrite", check_status=0)
    assert "3 done" in replaced.stdout
    assert napari_mrcz.readMRCHeader(out / "a.mrcz")[0]["compressor"] == "lz4"


def test_delete_source_only_after_verification(movies, tmp_path):
    source, data = movies
    bad = source / "broken.mrc"
    corrupt_file(bad)
    out = tmp_path / "archive"
    result = run("compress", source, "-o", out, "--delete-source", "--level", "3")
    assert result.returncode == 1
    assert "3 source files deleted after verification" in result.stdout
    for name, frames in data.items():
        assert not (source / name).exists()
        image, _ = napari_mrcz.readMRC(out / (os.path.splitext(name)[0] + ".mrcz"))
        np.testing.assert_array_equal(image, frames)
    assert bad.exists(), "a source whose conversion failed must be kept"


def test_outputs_reach_the_disk_before_a_source_is_deleted(movies, tmp_path, monkeypatch):
    from napari_mrcz.cli import batch as cli_batch
    from napari_mrcz.cli.command import main

    source, _ = movies
    events = []
    real_fsync, real_unlink = os.fsync, os.unlink
    monkeypatch.setattr(
        cli_batch.os,
        "fsync",
        lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd),
    )
    monkeypatch.setattr(
        cli_batch.os,
        "unlink",
        lambda path: events.append(("unlink", str(path))) or real_unlink(path),
    )
    out = tmp_path / "archive"
    assert main(["compress", str(source / "a.mrc"), "-o", str(out), "--delete-source", "-q"]) == 0
    deleted = events.index(("unlink", str(source / "a.mrc")))
    synced = [path for kind, path in events[:deleted] if kind == "fsync"]
    assert str(out / "a.mrcz") in synced
    assert str(out) in synced


def test_parallel_jobs_write_the_same_bytes(movies, tmp_path):
    source, _ = movies
    run(
        "compress", source, "-o", tmp_path / "one", "--jobs", "1", "--threads", "1", check_status=0
    )
    run("compress", source, "-o", tmp_path / "two", "--jobs", "2", check_status=0)
    for path in (tmp_path / "one").rglob("*.mrcz"):
        assert digest(path) == digest(tmp_path / "two" / path.relative_to(tmp_path / "one"))


def test_progress_bar_over_bytes(movies, tmp_path):
    source, _ = movies
    result = run("compress", source, "-o", tmp_path / "out", "--progress", check_status=0)
    assert "100%" in result.stderr
    assert "B/s" in result.stderr
    unasked = run("compress", source, "-o", tmp_path / "plain", check_status=0)
    assert "%|" not in unasked.stderr  # not a terminal: no bar unless asked


def test_output_replacing_its_input_is_refused(tmp_path, rng):
    path = tmp_path / "x.mrc"
    napari_mrcz.writeMRC(rng.random((2, 8, 8), dtype=np.float32), path)
    before = digest(path)
    result = run("decompress", path, "-o", tmp_path)
    assert result.returncode == 1
    assert f"FAILED {path}: its output {path} would replace the input {path}" in result.stdout
    assert digest(path) == before


def test_two_inputs_for_one_output_are_refused(tmp_path, rng):
    for name in ("x.mrc", "x.mrcs"):
        napari_mrcz.writeMRC(rng.random((2, 8, 8), dtype=np.float32), tmp_path / name)
    result = run("compress", tmp_path / "x.mrc", tmp_path / "x.mrcs", "-o", tmp_path / "out")
    assert result.returncode == 1
    for name, other in (("x.mrc", "x.mrcs"), ("x.mrcs", "x.mrc")):
        assert (
            f"FAILED {tmp_path / name}: {tmp_path / other} would also be written to "
            f"{tmp_path / 'out' / 'x.mrcz'}: not converted" in result.stdout
        )
    assert not (tmp_path / "out" / "x.mrcz").exists()


def test_same_source_twice_is_converted_once(movies, tmp_path):
    source, data = movies
    (source / "link.mrc").symlink_to(source / "a.mrc")
    out = tmp_path / "archive"
    result = run(
        "compress", source, source / "a.mrc", "-o", out, "--delete-source", check_status=0
    )
    assert "3 done" in result.stdout
    assert not (source / "a.mrc").exists()
    np.testing.assert_array_equal(napari_mrcz.readMRC(out / "a.mrcz")[0], data["a.mrc"])


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_numbered_dm_outputs_cannot_collide(tmp_path):
    """x.dm3 with two images writes x_0 and x_1: an input x_0.dm3 would clash."""
    folder = tmp_path / "dm"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3", folder / "x.dm3")
    shutil.copy(SHARED_DATA / "dm3" / "rsciio_2D_test-1.dm3", folder / "x_0.dm3")
    result = run("compress", folder, "-o", tmp_path / "out", "--delete-source")
    assert result.returncode == 1
    assert f"would also be written to {tmp_path / 'out' / 'x_0.mrcz'}" in result.stdout
    assert sorted(path.name for path in folder.iterdir()) == ["x.dm3", "x_0.dm3"]
    assert not (tmp_path / "out" / "x_0.mrcz").exists()


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_rounded_source_is_not_deleted(tmp_path):
    """float64 DM data are stored as float32: verified, but the source is kept."""
    source = tmp_path / "double.dm4"
    shutil.copy(SHARED_DATA / "dm4" / "rsciio_3D_test-12.dm4", source)
    result = run("compress", source, "-o", tmp_path / "out", "--delete-source", check_status=0)
    assert "source kept: float64 stored as float32" in result.stdout
    assert source.exists()


def test_sources_holding_more_than_their_output_are_kept(tmp_path, rng):
    """Bytes after the data, and DM tag arrays too large for JSON, are not copied."""
    folder = tmp_path / "raw"
    folder.mkdir()
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), folder / "t.mrc")
    with open(folder / "t.mrc", "ab") as handle:
        handle.write(b"two more slices a program forgot to count")
    if SHARED_DATA is not None:
        shutil.copy(SHARED_DATA / "dm3" / "rsciio_1D_test-EELS_spectrum.dm3", folder / "e.dm3")
    result = run("compress", folder, "-o", tmp_path / "out", "--delete-source", check_status=0)
    assert "source kept: 41 bytes after the data" in result.stdout
    assert (folder / "t.mrc").exists()
    if SHARED_DATA is not None:
        assert re.search(r"\d+ DM tag arrays? too large for JSON meta", result.stdout)
        assert (folder / "e.dm3").exists()


def test_names_differing_only_in_case_collide(tmp_path, rng):
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in ("Sample.mrc", "sample.map"):
        napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), folder / name)
    result = run("compress", folder, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert result.stdout.count("would also be written to") == 2


def test_unreadable_dm_file_fails_alone(movies, tmp_path):
    source, _ = movies
    (source / "gone.dm4").symlink_to(tmp_path / "nowhere.dm4")
    result = run("compress", source, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"FAILED {source / 'gone.dm4'}" in result.stdout
    assert "3 done" in result.stdout


def test_interrupt_while_planning_stops_cleanly(movies, tmp_path, monkeypatch):
    from napari_mrcz.cli import batch as cli_batch
    from napari_mrcz.cli.command import main

    source, data = movies
    calls = []

    def interrupted(path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return 0, False

    monkeypatch.setattr(cli_batch, "_estimate", interrupted)
    status = main(["compress", str(source), "-o", str(tmp_path / "out"), "-q", "--delete-source"])
    assert status == 130
    assert all((source / name).exists() for name in data)
    assert leftovers(tmp_path) == []


def test_failed_verification_keeps_the_previous_output(movies, tmp_path, monkeypatch):
    """Outputs are verified under their temporary name, before they replace anything."""
    from napari_mrcz.cli import batch as cli_batch
    from napari_mrcz.cli.command import main

    source, _ = movies
    out = tmp_path / "archive"
    run("compress", source / "a.mrc", "-o", out, check_status=0)
    before = digest(out / "a.mrcz")

    def damaged(image, target, progress=None):
        raise cli_batch.VerificationError(f"{target}: z-slice 0 differs from the source")

    monkeypatch.setattr(cli_batch, "verify_image", damaged)
    status = main(
        [
            "compress",
            str(source / "a.mrc"),
            "-o",
            str(out),
            "--codec",
            "lz4",
            "--overwrite",
            "--verify",
            "-q",
        ]
    )
    assert status == 1
    assert digest(out / "a.mrcz") == before
    assert leftovers(out) == []


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for command in ("info", "validate"):
        result = run(command, tmp_path / "empty")
        assert result.returncode == 2
        assert "no MRC, MRCZ or DM files found" in result.stderr
    result = run("compress", tmp_path / "empty", "-o", tmp_path / "out")
    assert result.returncode == 2


def test_decompress_gives_mrcfile_valid_files(movies, tmp_path):
    source, data = movies
    run("compress", source, "-o", tmp_path / "z", check_status=0)
    run("decompress", tmp_path / "z", "-o", tmp_path / "plain", "--verify", check_status=0)
    for name, frames in data.items():
        target = tmp_path / "plain" / (os.path.splitext(name)[0] + ".mrc")
        assert mrcfile.validate(str(target), print_file=io.StringIO())
        with mrcfile.open(target) as handle:
            np.testing.assert_array_equal(handle.data, frames)
            assert handle.voxel_size.x == pytest.approx(1.06)
            assert handle.voxel_size.z == pytest.approx(1.5)


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_decompressed_int32_gets_an_mrc2014_mode(tmp_path):
    """python-mrcz's mode 7 (int32) is MRCZ-only: plain output must open in mrcfile."""
    source = SHARED_DATA / "dm3" / "rsciio_test_stackbuilder_imagestack.dm3"
    run("compress", source, "-o", tmp_path / "z", check_status=0)
    packed = tmp_path / "z" / "rsciio_test_stackbuilder_imagestack.mrcz"
    assert napari_mrcz.readMRCHeader(packed)[0]["MRCtype"] in (7, 8)
    run("decompress", packed, "-o", tmp_path / "plain", "--verify", check_status=0)
    [(expected, _)] = napari_mrcz.read_dm(source)
    with mrcfile.open(tmp_path / "plain" / "rsciio_test_stackbuilder_imagestack.mrc") as copy:
        assert copy.header.mode in (1, 2, 6)
        np.testing.assert_array_equal(copy.data, expected)


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_convert_dm4_keeps_pixel_size_and_tags(tmp_path):
    source = SHARED_DATA / "dm4" / "openncem_dmTest_float32_nonSquare_diffPixelSize.dm4"
    target = tmp_path / "image.mrcz"
    run("convert", source, target, "--verify", check_status=0)
    [(expected, dm_meta)] = napari_mrcz.read_dm(source)
    image, meta = mrcz.readMRC(str(target))  # python-mrcz reads it
    np.testing.assert_array_equal(image, expected)
    # DM calibrates y in Angstrom (2 A) and x in nm (1 nm): both in Angstrom in MRC.
    np.testing.assert_allclose(meta["pixelsize"][1:], [2.0, 10.0])
    assert meta["dm_tags"]["ImageList"]["1"]["Name"] == dm_meta["name"]


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_convert_dm_with_two_images_and_microscope_values(tmp_path):
    source = SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3"
    run("convert", source, tmp_path / "multi.mrc", check_status=0)
    images = napari_mrcz.read_dm(source)
    for number, (expected, _) in enumerate(images):
        path = tmp_path / f"multi_{number}.mrc"
        assert mrcfile.validate(str(path), print_file=io.StringIO())  # no JSON in plain
        with mrcfile.open(path) as handle:
            np.testing.assert_array_equal(handle.data.reshape(expected.shape), expected)
    header, _ = napari_mrcz.readMRCHeader(tmp_path / "multi_0.mrc")
    assert header["voltage"] == pytest.approx(300.0)  # DM's 300000 V
    assert header["C3"] == pytest.approx(1.0)
    np.testing.assert_allclose(header["pixelsize"][1:], [0.17751578, 0.17751578])


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_convert_refuses_rgb_with_a_clear_message(tmp_path):
    source = SHARED_DATA / "dm4" / "rsciio_2D_test-8.dm4"
    result = run("convert", source, tmp_path / "rgb.mrcz")
    assert result.returncode == 1
    assert f"FAILED {source}: image 0 is RGB" in result.stdout
    assert list(tmp_path.iterdir()) == []


INTERRUPTIBLE_FRAMES = (48, 256, 256)


@pytest.fixture
def slow_batch(tmp_path):
    """Inputs that take a few seconds to compress with zlib-9 on one thread."""
    source = tmp_path / "raw"
    source.mkdir()
    rng = np.random.default_rng(7)
    for number in range(4):
        data = rng.normal(size=INTERRUPTIBLE_FRAMES).astype(np.float32)
        napari_mrcz.writeMRC(data, source / f"m{number}.mrc")
    return source, {path.name: digest(path) for path in source.iterdir()}


def start_and_interrupt(args, out, signum, wait_for_partial=True):
    process = subprocess.Popen(
        [*CLI, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background of a shell ignores SIGINT, and so would
        # the command (Python keeps an inherited SIG_IGN): give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if not wait_for_partial or leftovers(out):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupted_run_leaves_no_partial_output_and_no_lost_input(slow_batch, tmp_path, signum):
    source, digests = slow_batch
    out = tmp_path / "archive"
    status, stdout, stderr = start_and_interrupt(
        [
            "compress",
            source,
            "-o",
            out,
            "--codec",
            "zlib",
            "--level",
            "9",
            "--threads",
            "1",
            "--delete-source",
        ],
        out,
        signum,
    )
    assert status == 128 + signum, (stdout, stderr)
    assert leftovers(out) == []
    assert "cancelled" in stdout
    finished = sorted(path.name for path in out.glob("*.mrcz")) if out.exists() else []
    for name, expected in digests.items():
        stem = os.path.splitext(name)[0]
        if stem + ".mrcz" in finished:  # converted and verified before the interrupt
            assert not (source / name).exists()
        else:
            assert digest(source / name) == expected
    assert len(finished) < len(digests)
    # Every output left is complete; running again finishes the rest.
    run("compress", source, "-o", out, check_status=0)
    assert len(list(out.glob("*.mrcz"))) == len(digests)
