"""Exact header statistics of one slice: numpy's route against the compiled kernel.

Run it standalone, from the repository root (about 20 s)::

    .venv/bin/python benchmarks/bench_stats.py [--mb 64] [--repeat 5]

For 64 MB of int8 (Poisson(1) counts), uint16 and float32 data it prints the GB/s of
:class:`napari_mrcz.mrc.stats.SliceStats` on the numpy route and, for 8/16-bit data,
on the compiled kernel (:mod:`napari_mrcz.mrc.stats_kernels`), next to numpy's
``min`` and ``max`` alone (a memory-speed reference), all on one thread in this
process, best of ``--repeat``; then what preparing the kernel costs a fresh process
(importing numba and loading the cached kernels, or compiling them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from napari_mrcz.mrc import stats, stats_kernels
from napari_mrcz.mrc.stats import SliceStats

PREPARE = (
    "import time; from napari_mrcz.mrc import stats_kernels; started = time.perf_counter(); "
    "stats_kernels.wait_for_kernel(); print(time.perf_counter() - started)"
)


def best(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=64.0, help="MB of data per dtype")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; best kept")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20261201)
    size = int(args.mb * 1e6)
    data = {
        "int8": rng.poisson(1.0, size).astype(np.int8),
        "uint16": rng.poisson(200.0, size // 2).astype(np.uint16),
        "float32": rng.normal(1.0, 0.05, size // 4).astype(np.float32),
    }
    kernel = stats_kernels.wait_for_kernel()
    print(f"{args.mb:.0f} MB per dtype, one thread, best of {args.repeat}, GB/s:")
    print(f"{'dtype':<8} {'min+max':>8} {'numpy':>8} {'kernel':>8}")
    for name, values in data.items():
        gb = values.nbytes / 1e9
        minmax = gb / best(lambda v=values: (v.min(), v.max()), args.repeat)
        routed = stats.integer_stats_kernel
        stats.integer_stats_kernel = lambda nbytes=0: None  # the numpy route
        try:
            numpy_route = gb / best(lambda v=values: SliceStats(0).add(v), args.repeat)
        finally:
            stats.integer_stats_kernel = routed
        compiled = "-"
        if kernel is not None and values.dtype.kind in "iu":
            compiled = f"{gb / best(lambda v=values: SliceStats(0).add(v), args.repeat):.1f}"
        print(f"{name:<8} {minmax:>8.1f} {numpy_route:>8.1f} {compiled:>8}")
    seconds = [
        float(
            subprocess.run(
                [sys.executable, "-c", PREPARE], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    print(
        f"preparing the kernel in a fresh process: {seconds[0]:.2f} s (first), "
        f"{seconds[1]:.2f} s (from numba's cache)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
