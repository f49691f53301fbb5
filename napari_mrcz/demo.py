"""Command-line demo: write a synthetic counting-mode movie as MRCZ and read it back.

Run with ``python -m napari_mrcz.demo [output.mrcz]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from . import open_lazy, readMRC, writeMRC


def synthetic_movie(frames: int = 16, size: int = 512, seed: int = 0) -> np.ndarray:
    """Return a counting-mode movie: int8 Poisson counts around a faint disc."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    disc = ((y - size / 2) ** 2 + (x - size / 2) ** 2 < (size / 3) ** 2) * 0.3
    return rng.poisson(1.0 + disc, size=(frames, size, size)).astype(np.int8)


def main(argv: list[str] | None = None) -> None:
    """Write, re-read and summarise one MRCZ file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", help="file to write (default: a temporary file)")
    args = parser.parse_args(argv)
    movie = synthetic_movie()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.output or os.path.join(scratch, "demo_movie.mrcz")
        started = time.perf_counter()
        writeMRC(movie, path, pixelsize=1.0, compressor="zstd", clevel=1,
                 meta={"source": "napari-mrcz demo"})
        written = time.perf_counter() - started
        data, meta = readMRC(path)
        with open_lazy(path) as lazy:
            last = lazy[-1]
        size = os.path.getsize(path)
        print(f"wrote {path}: {movie.shape} {movie.dtype}, {size / 1e6:.2f} MB "
              f"(ratio {movie.nbytes / size:.1f}x) in {written * 1e3:.0f} ms")
        print(f"read back identical: {bool(np.array_equal(data, movie))}; "
              f"last frame via random access identical: {bool(np.array_equal(last, movie[-1]))}")
        print(f"header: pixel size {meta['pixelsize']} A, min {meta['minImage']}, "
              f"max {meta['maxImage']}, mean {meta['meanImage']:.4f}, rms {meta['rmsImage']:.4f}, "
              f"codec {meta['compressor']}, JSON meta source={meta['source']!r}")


if __name__ == "__main__":
    main()
