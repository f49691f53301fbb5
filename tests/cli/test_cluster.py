"""The ``mrcz`` command on a real dask.distributed cluster.

As on an HPC cluster: a scheduler and two single-threaded workers started with the
``dask scheduler`` and ``dask worker`` commands, meeting through a scheduler file,
every one of them listening on 127.0.0.1 only. The command runs in a subprocess, as a
user runs it. Outputs are compared byte for byte with a local run of the same files,
or read back with python-mrcz. Every wait has a deadline, so that a broken cluster
fails the tests instead of hanging them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import mrcfile
import mrcz
import numpy as np
import pytest

from tests.helpers import REPO, SHARED_DATA

distributed = pytest.importorskip("distributed")

CLI = [sys.executable, "-m", "napari_mrcz.cli"]
#: Seconds anything may take before the test fails.
TIMEOUT = 120
#: Slow enough to be caught mid-file: zlib level 9 on noise, one thread per file.
SLOW = ("--codec", "zlib", "--level", "9", "--threads", "1")
#: Real files of every kind, one of them (RGB) that no run can convert.
REAL = [
    "mrc/ngl_betaGal.mrc",
    "mrc/cryodrgn_relion31.mrcs",
    "mrc/gemmi_5i55_tiny.ccp4",
    "mrc/rsciio_20241021_00405_movie.mrc",
    "dm4/openncem_dmTest_3D_int16_64_65_66.dm4",
    "dm3/rsciio_2D_multi_signal.dm3",
    "dm4/rsciio_2D_test-8.dm4",
]


def _environment() -> dict[str, str]:
    """This checkout first on the path of every process started."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, and a client."""

    def __init__(self, folder: pathlib.Path, workers: int = 2) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.processes: list[subprocess.Popen] = []
        self.client = None
        loopback = ("--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0")
        self.scheduler = self._start(
            "scheduler", *loopback, "--port", "0", "--scheduler-file", self.scheduler_file
        )
        self.workers = [
            self._start(
                "worker",
                *loopback,
                "--scheduler-file",
                self.scheduler_file,
                "--nthreads",
                "1",
                "--local-directory",
                folder / "scratch",
                "--name",
                f"worker-{number}",
            )
            for number in range(workers)
        ]
        deadline = time.monotonic() + TIMEOUT
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            assert self.scheduler.poll() is None, self.log("scheduler")
            time.sleep(0.05)
        self.client = distributed.Client(
            scheduler_file=str(self.scheduler_file), timeout=TIMEOUT, set_as_default=False
        )
        self.ready()

    def _start(self, role: str, *args) -> subprocess.Popen:
        log = open(self.folder / f"{role}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dask", role, *map(str, args)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(),
            )
        self.processes.append(process)
        return process

    def log(self, role: str) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:] for path in self.folder.glob(f"{role}-*.log")
        )

    def ready(self) -> None:
        """Wait until every worker is up (a killed one is restarted by its nanny)."""
        self.client.wait_for_workers(len(self.workers), timeout=TIMEOUT)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                if self.client.status == "running":
                    self.client.shutdown()  # the scheduler and its workers: quicker than signals
                self.client.close(timeout=10)
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(shared_cluster):
    shared_cluster.ready()
    return shared_cluster


def mrcz_command(*args, cluster: Cluster | None = None, env=None, cwd=None):
    """Run ``mrcz args``, on ``cluster`` if given; the completed process."""
    where = ["--scheduler-file", cluster.scheduler_file] if cluster else []
    return subprocess.run(
        [*CLI, *map(str, args), *map(str, where)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env or _environment(),
        cwd=cwd,
    )


@contextlib.contextmanager
def ended(process: subprocess.Popen):
    """Kill the command if the test fails while it runs."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def start_command(*args, cluster: Cluster) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, *map(str, args), "--scheduler-file", str(cluster.scheduler_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        # Ctrl-C back for a suite started in a shell's background (SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until(condition, process: subprocess.Popen, what: str) -> None:
    """Poll ``condition`` while the command runs; fail after :data:`TIMEOUT` seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, f"the command ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(0.01)


def mid_file_report(client, earlier: set[str]) -> dict | None:
    """A progress report of a file with more than half of it still to do, if any yet.

    Runs whose reports went to the topics ``earlier`` are left out.
    """
    for topic, events in client.get_events().items():
        if topic.startswith("mrcz-progress-") and topic not in earlier:
            for _, report in events:
                if 0 < report["done"] < report["total"] // 2:
                    return report
    return None


def digests(folder: pathlib.Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) by relative name: its SHA-256."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(folder: pathlib.Path) -> list[pathlib.Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".partial")]


def summary(stdout: str, *folders: pathlib.Path) -> list[str]:
    """The summary table without speeds and times, folder names made neutral."""
    for number, folder in enumerate(folders):
        stdout = stdout.replace(str(folder), f"<{number}>")
    lines = []
    for line in stdout.splitlines():
        line = re.sub(r"\s+\d+\.\d( [KMG]iB/s)?$|\s+-$", "", line)  # the speed column
        line = re.sub(r" in \d+\.\d s.*$", "", line)  # the totals' time and rate
        lines.append(re.sub(r"\s+", " ", line))
    return lines


def warnings_in(stderr: str, folder: pathlib.Path) -> list[str]:
    """The warnings printed, temporary names and ``folder`` made neutral."""
    found = re.findall(r"warning: .*", stderr.replace(str(folder), "<>"))
    return sorted(re.sub(r"\.mrcz-[0-9a-f-]+\.partial", "<temporary>", line) for line in found)


def noise_movies(folder: pathlib.Path, rng, count: int, shape) -> dict[str, np.ndarray]:
    """``count`` float32 noise movies written by mrcfile; their data by name."""
    folder.mkdir(parents=True)
    movies = {}
    for number in range(count):
        data = rng.normal(size=shape).astype(np.float32)
        mrcfile.write(folder / f"movie_{number}.mrc", data)
        movies[f"movie_{number}"] = data
    return movies


def assert_complete(output: pathlib.Path, source: np.ndarray) -> None:
    """python-mrcz reads ``output`` back as ``source``."""
    data, _ = mrcz.readMRC(str(output))
    np.testing.assert_array_equal(data, source)


@pytest.fixture
def mixed_folder(tmp_path, rng):
    """Real files nobody here wrote and generated ones, in two sub-folders."""
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is absent")
    folder = tmp_path / "raw"
    (folder / "real").mkdir(parents=True)
    for name in REAL:
        shutil.copy(SHARED_DATA / name, folder / "real" / pathlib.Path(name).name)
    made = folder / "made"
    made.mkdir()
    counts = rng.poisson(1.0, size=(12, 256, 256)).astype(np.int8)
    mrcfile.write(made / "counts.mrc", counts)
    mrcfile.write(made / "gain.mrc", rng.random((256, 256), dtype=np.float32))
    mrcfile.write(made / "map.mrc.gz", rng.normal(size=(20, 32, 48)).astype(np.float32))
    with mrcfile.new(made / "odd_axes.mrc") as odd:  # an invalid axis order: a warning
        odd.set_data(rng.normal(size=(4, 16, 16)).astype(np.float32))
        odd.header.mapc = odd.header.mapr = 1
    mrcfile.write(made / "trailing.mrc", rng.normal(size=(3, 16, 16)).astype(np.float32))
    with open(made / "trailing.mrc", "ab") as handle:  # bytes after the data: source kept
        handle.write(b"junk")
    for path in folder.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return folder


# ----------------------------------------------------------------------------- same outputs


def test_outputs_and_summary_match_a_local_run_byte_for_byte(cluster, mixed_folder, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(mixed_folder, here / "raw")
    shutil.copytree(mixed_folder, there / "raw")
    options = ("--delete-source",)  # implies --verify; deletes only on verified results
    local = mrcz_command("compress", here / "raw", "-o", here / "out", "--jobs", "2", *options)
    remote = mrcz_command(
        "compress", there / "raw", "-o", there / "out", "--progress", *options, cluster=cluster
    )
    assert local.returncode == remote.returncode == 1, (local, remote)  # the RGB file fails
    assert digests(there / "out") == digests(here / "out"), (
        remote.stdout,
        remote.stderr,
        cluster.log("worker"),
    )
    assert set(digests(here / "out")) == {
        "made/counts.mrcz",
        "made/gain.mrcz",
        "made/map.mrcz",
        "made/odd_axes.mrcz",
        "made/trailing.mrcz",
        "real/cryodrgn_relion31.mrcz",
        "real/gemmi_5i55_tiny.mrcz",  # a permuted map, written in standard axis order
        "real/ngl_betaGal.mrcz",
        "real/openncem_dmTest_3D_int16_64_65_66.mrcz",
        "real/rsciio_20241021_00405_movie.mrcz",
        "real/rsciio_2D_multi_signal_0.mrcz",  # two images, two outputs
        "real/rsciio_2D_multi_signal_1.mrcz",
    }  # the RGB file fails (MRCZ cannot hold RGB)
    assert digests(there / "raw") == digests(here / "raw")  # the same sources deleted
    assert summary(remote.stdout, there) == summary(local.stdout, here)
    assert "1 failed" in local.stdout
    # gemmi_5i55_tiny.ccp4 stays: its axis order cannot be recorded beside its symmetry
    # records, so a plain copy of its MRCZ would not have its header
    assert "8 source files deleted" in local.stdout
    assert "gemmi_5i55_tiny.ccp4: source kept: its axis order and sampling" in local.stdout
    assert warnings_in(remote.stderr, there) == warnings_in(local.stderr, here)
    assert "odd_axes.mrc: the axis order in the header" in remote.stderr  # from a worker
    assert "100%|" in remote.stderr  # the progress bar, run to its end
    assert leftovers(there) == []

    # and back to plain MRC
    local = mrcz_command("decompress", here / "out", "-o", here / "back", "--jobs", "2")
    remote = mrcz_command("decompress", there / "out", "-o", there / "back", cluster=cluster)
    assert local.returncode == remote.returncode == 0, (local, remote)
    assert digests(there / "back") == digests(here / "back")


def test_validate_reports_as_a_local_run(cluster, mixed_folder):
    # Names relative to this folder: the workers run in another one.
    folder = mixed_folder.parent
    local = mrcz_command("validate", "raw", "missing.mrc", "--json", cwd=folder)
    remote = mrcz_command("validate", "raw", "missing.mrc", "--json", cluster=cluster, cwd=folder)
    assert local.returncode == remote.returncode == 1  # real files with real problems
    assert remote.stdout == local.stdout
    assert '"path": "raw/made/counts.mrc"' in remote.stdout


def test_convert_one_file_named_relative_to_here(cluster, mixed_folder):
    folder = mixed_folder.parent
    source = "raw/real/rsciio_2D_multi_signal.dm3"
    local = mrcz_command("convert", source, "here.mrcz", cwd=folder)
    remote = mrcz_command("convert", source, "there.mrcz", cluster=cluster, cwd=folder)
    assert remote.returncode == 0, remote
    assert summary(remote.stdout.replace("there", "here")) == summary(local.stdout)
    for number in (0, 1):
        assert (folder / f"there_{number}.mrcz").read_bytes() == (
            folder / f"here_{number}.mrcz"
        ).read_bytes()


# ----------------------------------------------------------------------------- failures


def test_a_worker_killed_mid_file_loses_nothing(cluster, tmp_path, rng):
    movies = noise_movies(tmp_path / "raw", rng, 2, (64, 256, 256))  # a second or more each
    sources = digests(tmp_path / "raw")
    out = tmp_path / "out"
    pids = cluster.client.run(os.getpid)
    earlier = set(cluster.client.get_events())  # other tests' runs
    process = start_command(
        "compress", tmp_path / "raw", "-o", out, "--verify", *SLOW, cluster=cluster
    )
    with ended(process):
        wait_until(lambda: mid_file_report(cluster.client, earlier), process, "file half done")
        killed = mid_file_report(cluster.client, earlier)
        os.kill(pids[killed["worker"]], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, (stdout, stderr, cluster.log("worker"))
    restarted = f"converting {tmp_path / 'raw' / 'movie_'}{killed['task']}.mrc again"
    assert restarted in stderr
    assert stdout.count("\ndone ") == 2
    for name, data in movies.items():
        assert_complete(out / f"{name}.mrcz", data)
    assert leftovers(out) == []
    assert digests(tmp_path / "raw") == sources


def test_ctrl_c_cancels_the_cluster_tasks_and_cleans_up(cluster, tmp_path, rng):
    movies = noise_movies(tmp_path / "raw", rng, 6, (16, 256, 256))
    sources = digests(tmp_path / "raw")
    out = tmp_path / "out"
    process = start_command(
        "compress", tmp_path / "raw", "-o", out, "--delete-source", *SLOW, cluster=cluster
    )
    with ended(process):
        wait_until(
            lambda: list(out.glob("*.mrcz")) and leftovers(out), process, "file done, one going"
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 128 + signal.SIGINT, (stdout, stderr)
    assert "cancelled" in stdout
    assert leftovers(out) == []  # the running files stopped and removed their temporaries
    finished = {path.stem for path in out.glob("*.mrcz")}
    assert 0 < len(finished) < len(movies)
    for name, data in movies.items():
        source = tmp_path / "raw" / f"{name}.mrc"
        if name in finished:  # converted and verified; its source deleted, unless the
            # interrupt came between the worker's publishing and the deletion here
            assert_complete(out / f"{name}.mrcz", data)
            assert (
                not source.exists()
                or digests(tmp_path / "raw")[source.name] == sources[source.name]
            ), stdout
        else:
            assert digests(tmp_path / "raw")[f"{name}.mrc"] == sources[f"{name}.mrc"]


def test_the_scheduler_going_away_ends_the_run_cleanly(tmp_path, rng):
    movies = noise_movies(tmp_path / "raw", rng, 6, (16, 256, 256))
    sources = digests(tmp_path / "raw")
    out = tmp_path / "out"
    cluster = Cluster(tmp_path / "cluster")
    try:
        process = start_command(
            "compress", tmp_path / "raw", "-o", out, "--delete-source", *SLOW, cluster=cluster
        )
        with ended(process):
            wait_until(lambda: list(out.glob("*.mrcz")), process, "file done")
            cluster.scheduler.kill()  # as a lost node: no goodbye to anyone
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        # The workers notice too, stop their files and leave.
        for worker in cluster.workers:
            worker.wait(timeout=TIMEOUT)
    finally:
        cluster.close()
    assert process.returncode == 1, (stdout, stderr)
    assert "lost the dask scheduler" in stderr
    assert "not finished: lost the dask scheduler" in stdout
    assert leftovers(out) == []
    deleted = {name for name in sources if not (tmp_path / "raw" / name).exists()}
    for name, data in movies.items():
        output = out / f"{name}.mrcz"
        if output.exists():  # whole and right, whoever finished it
            assert_complete(output, data)
        if f"{name}.mrc" in deleted:  # only for a result the client held, verified
            assert output.exists()
            assert f"done {tmp_path / 'raw' / name}.mrc -> {output} (source deleted)" in stderr
    assert len(list(out.glob("*.mrcz"))) < len(movies)  # the files waiting never ran
    current = digests(tmp_path / "raw")
    assert all(current[name] == sources[name] for name in current)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, rng):
    noise_movies(tmp_path / "raw", rng, 1, (2, 16, 16))
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_environment(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    address = f"tcp://127.0.0.1:{port}"
    result = mrcz_command(
        "compress", tmp_path / "raw", "-o", tmp_path / "out", "--scheduler", address, env=env
    )
    assert result.returncode == 1
    assert f"cannot reach the dask scheduler {address}" in result.stderr
    result = mrcz_command(
        "validate", tmp_path / "raw", "--scheduler-file", tmp_path / "none.json", env=env
    )
    assert result.returncode == 1
    assert f"no scheduler file {tmp_path / 'none.json'}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_without_distributed_the_option_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from napari_mrcz.cli.command import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["compress", str(tmp_path), "-o", str(tmp_path / "out"), "--scheduler", "tcp://h:1"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_environment(),
    )
    assert result.returncode == 2
    assert "--scheduler: needs dask.distributed: pip install 'napari-mrcz[cluster]'" in (
        result.stderr
    )
