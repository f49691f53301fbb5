"""Folder compression with ``mrcz compress``/``decompress`` against a python-mrcz script.

Run it standalone, from the repository root::

    .venv/bin/python benchmarks/bench_cli.py [--files 4] [--size-mb 200] [--repeat 3]

A facility without our command would loop over its files with python-mrcz 0.6.0: read
each MRC, write it as MRCZ. This benchmark times exactly that, as a script in a
subprocess, against the ``mrcz`` command on the same folder, in one run:

* data: ``--files`` plain MRC counting-mode movies of about ``--size-mb`` MB each
  (int8 Poisson(1) counts, 4096 x 4096 frames, seeded);
* compress, zstd level 1, all cores: ``mrcz compress`` with one file at a time (every
  core on its slices), with ``--jobs 2 --threads 1``, and with ``--verify``; the peer
  is the python-mrcz loop (``readMRC`` then ``writeMRC(compressor='zstd', clevel=1,
  n_threads=cores)``), with its default ``quickStats=True`` (statistics of the first
  frame only) and with ``quickStats=False``;
* decompress: ``mrcz decompress`` against the python-mrcz loop back to plain MRC.

Each command is a fresh process (start-up included for everyone), outputs are deleted
and synced between runs (untimed), and the best of ``--repeat`` runs is kept. Ratios
above 1 mean the ``mrcz`` command is faster. Files go to a temporary folder inside
``--out`` (default: the system temporary folder), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests.helpers
from tests.helpers import write_counting_movies

MRCZ_COMMAND = [sys.executable, "-m", "napari_mrcz.cli"]

PEER_COMPRESS = """
import glob, os, sys
import mrcz
source, target, threads, quick = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(target, exist_ok=True)
for path in sorted(glob.glob(os.path.join(source, "*.mrc"))):
    data, meta = mrcz.readMRC(path)
    name = os.path.splitext(os.path.basename(path))[0] + ".mrcz"
    mrcz.writeMRC(data, os.path.join(target, name), pixelsize=meta["pixelsize"],
                  compressor="zstd", clevel=1, n_threads=threads, quickStats=quick == "1")
"""

PEER_DECOMPRESS = """
import glob, os, sys
import mrcz
source, target, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(target, exist_ok=True)
for path in sorted(glob.glob(os.path.join(source, "*.mrcz"))):
    data, meta = mrcz.readMRC(path, n_threads=threads)
    name = os.path.splitext(os.path.basename(path))[0] + ".mrc"
    mrcz.writeMRC(data, os.path.join(target, name), pixelsize=meta["pixelsize"])
"""


def timed_run(command: list[str], output: str) -> float:
    """Wall time of ``command`` in a fresh process, after removing ``output``."""
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4, help="movies in the folder")
    parser.add_argument("--size-mb", type=float, default=200.0, help="MB per movie")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best kept")
    parser.add_argument("--out", default=None, help="where the temporary folder goes")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(dir=args.out, prefix="bench-cli-") as work:
        raw = os.path.join(work, "raw")
        total = write_counting_movies(raw, args.files, args.size_mb)
        packed, plain = os.path.join(work, "packed"), os.path.join(work, "plain")
        compress = {
            "mrcz compress": [*MRCZ_COMMAND, "compress", raw, "-o", packed, "-q"],
            "mrcz compress --jobs 2 --threads 1": [
                *MRCZ_COMMAND,
                "compress",
                raw,
                "-o",
                packed,
                "-q",
                "--jobs",
                "2",
                "--threads",
                "1",
            ],
            "mrcz compress --verify": [
                *MRCZ_COMMAND,
                "compress",
                raw,
                "-o",
                packed,
                "-q",
                "--verify",
            ],
            "python-mrcz loop": [
                sys.executable,
                "-c",
                PEER_COMPRESS,
                raw,
                packed,
                str(cores),
                "1",
            ],
            "python-mrcz loop, quickStats=False": [
                sys.executable,
                "-c",
                PEER_COMPRESS,
                raw,
                packed,
                str(cores),
                "0",
            ],
        }
        decompress = {
            "mrcz decompress": [*MRCZ_COMMAND, "decompress", packed, "-o", plain, "-q"],
            "python-mrcz loop": [sys.executable, "-c", PEER_DECOMPRESS, packed, plain, str(cores)],
        }
        best: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, so drifting load hits all alike
            for name, command in compress.items():
                best[name] = min(best.get(name, float("inf")), timed_run(command, packed))
        # The MRCZ files the decompressions start from: ours, kept.
        subprocess.run(compress["mrcz compress"], check=True, stdout=subprocess.DEVNULL)
        best_back: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, command in decompress.items():
                best_back[name] = min(best_back.get(name, float("inf")), timed_run(command, plain))

    print(
        f"{args.files} movies, {total / 1e6:.0f} MB of int8 data, zstd level 1, "
        f"{cores} cores, best of {args.repeat}"
    )
    print(f"{'compress':40s} {'seconds':>8s} {'MB/s':>8s} {'mrcz compress vs this':>22s}")
    for name, seconds in best.items():
        print(
            f"{name:40s} {seconds:8.2f} {total / seconds / 1e6:8.1f} "
            f"{seconds / best['mrcz compress']:21.2f}x"
        )
    print(f"{'decompress':40s} {'seconds':>8s} {'MB/s':>8s} {'mrcz decompress vs this':>22s}")
    for name, seconds in best_back.items():
        print(
            f"{name:40s} {seconds:8.2f} {total / seconds / 1e6:8.1f} "
            f"{seconds / best_back['mrcz decompress']:21.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
