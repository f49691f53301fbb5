"""``mrcz compress`` on a dask.distributed cluster against the same command run locally.

Run it standalone, from the repository root (a few minutes)::

    .venv/bin/python benchmarks/bench_cluster.py [--files 8] [--size-mb 100] [--repeat 3]

The same folder, the same options (zstd level 1, one thread per file), in one run:

* local: ``mrcz compress --jobs 2 --threads 1``, two files at a time in one process;
* cluster: ``mrcz compress --scheduler ADDRESS`` on a ``LocalCluster`` of two
  single-threaded worker processes on 127.0.0.1, started (and napari-mrcz imported
  in its workers) once before the timings: a facility keeps its cluster up.

Data: ``--files`` plain MRC counting-mode movies of about ``--size-mb`` MB (int8
Poisson(1) counts, 4096 x 4096 frames, seeded). Each command is a fresh process
(start-up, and for the cluster the connection, included); outputs are deleted and
synced between runs (untimed); runs alternate and the best of ``--repeat`` is kept.
It prints the cluster's throughput as a ratio of the local one (target: at least
0.9x for 100 MB movies), then, from ``--small`` tiny files, what the cluster adds per
run (mostly importing ``distributed`` in the command) and per file, and the
per-worker figures behind an estimate for N nodes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from distributed import Client, LocalCluster

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers
from tests.helpers import write_counting_movies  # noqa: E402

MRCZ_COMMAND = [sys.executable, "-m", "napari_mrcz.cli", "compress", "-q", "--threads", "1"]
WORKERS = 2


def timed_run(command: list[str], output: str) -> float:
    """Wall time of ``command`` in a fresh process, after removing ``output``."""
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path[1:]])}
    started = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    return time.perf_counter() - started


def best_times(commands: dict[str, list[str]], output: str, repeat: int) -> dict[str, float]:
    """The best wall time of each command, the commands alternating."""
    best: dict[str, float] = {}
    for _ in range(repeat):  # interleaved, so drifting load hits all alike
        for name, command in commands.items():
            best[name] = min(best.get(name, float("inf")), timed_run(command, output))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8, help="movies in the folder")
    parser.add_argument("--size-mb", type=float, default=100.0, help="MB per movie")
    parser.add_argument("--small", type=int, default=40, help="tiny files for the overhead")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best kept")
    parser.add_argument("--out", default=None, help="where the temporary folder goes")
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(dir=args.out, prefix="bench-cluster-") as work,
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(WORKERS, timeout=120)
        client.run(importlib.import_module, "napari_mrcz.cli.cluster")  # a warm cluster
        address = cluster.scheduler_address
        raw, out = os.path.join(work, "raw"), os.path.join(work, "out")
        total = write_counting_movies(raw, args.files, args.size_mb)
        movies = best_times(
            {
                "local": [*MRCZ_COMMAND, raw, "-o", out, "--jobs", str(WORKERS)],
                "cluster": [*MRCZ_COMMAND, raw, "-o", out, "--scheduler", address],
            },
            out,
            args.repeat,
        )
        one, many = os.path.join(work, "one"), os.path.join(work, "many")
        write_counting_movies(one, 1, 1.0, side=512)
        small = write_counting_movies(many, args.small, 1.0, side=512)
        tiny = best_times(
            {
                f"{where} {count}": [
                    *MRCZ_COMMAND,
                    folder,
                    "-o",
                    out,
                    *(("--jobs", str(WORKERS)) if where == "local" else ("--scheduler", address)),
                ]
                for where in ("local", "cluster")
                for count, folder in ((1, one), (args.small, many))
            },
            out,
            args.repeat,
        )

    local_rate, cluster_rate = total / movies["local"], total / movies["cluster"]
    ratio = cluster_rate / local_rate
    print(
        f"{args.files} movies, {total / 1e6:.0f} MB of int8 data, zstd level 1, one thread "
        f"per file, {os.cpu_count()} cores, best of {args.repeat}"
    )
    print(f"{'run':48s} {'seconds':>8s} {'MB/s':>8s}")
    print(
        f"{'local: mrcz compress --jobs 2 --threads 1':48s} {movies['local']:8.2f} "
        f"{local_rate / 1e6:8.1f}"
    )
    print(
        f"{'cluster: 2 single-threaded workers, 127.0.0.1':48s} {movies['cluster']:8.2f} "
        f"{cluster_rate / 1e6:8.1f}"
    )
    print(f"cluster/local throughput: {ratio:.2f}x (target: 0.90x or more)")

    fixed = tiny["cluster 1"] - tiny["local 1"]
    per_file = (
        (tiny[f"cluster {args.small}"] - tiny["cluster 1"])
        - (tiny[f"local {args.small}"] - tiny["local 1"])
    ) / max(1, args.small - 1)
    per_worker = cluster_rate / WORKERS
    print(
        f"{args.small} files of {small / args.small / 1e6:.1f} MB: local "
        f"{tiny[f'local {args.small}']:.2f} s, cluster {tiny[f'cluster {args.small}']:.2f} s"
    )
    print(
        f"the cluster adds {fixed:.2f} s per run (importing distributed, connecting) and "
        f"{per_file * 1000:.0f} ms per file (one task: scheduling, progress, the result)"
    )
    print(
        "cluster/local throughput without the per-run cost: "
        f"{movies['local'] / (movies['cluster'] - fixed):.2f}x"
    )
    print(f"per worker (one core): {per_worker / 1e6:.0f} MB/s on 100 MB movies")
    print(
        "N nodes of C cores, a single-threaded worker per core, files of S MB: about "
        f"N x C x S / (S / {per_worker / 1e6:.0f} + {max(per_file, 0.0):.3f}) MB/s, "
        "until the shared file system's bandwidth is the limit"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
