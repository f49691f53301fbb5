"""A movie as a dask array: ``napari_mrcz.to_dask`` opens it without reading its data.

Writes a seeded counting movie, opens it with ``to_dask`` (one chunk per z-slice),
and averages its frames: dask decompresses one slice per task. On a cluster the same
code runs on the workers once a ``distributed.Client`` is connected (see the manual's
"On a cluster" page). Needs the ``cluster`` extra (``pip install '.[cluster]'``).

Usage::

    python examples/to_dask.py [FOLDER]

FOLDER defaults to a temporary folder, removed at the end.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np

import napari_mrcz

#: Seed of the movie: the same file every run.
SEED = 20261206


def write_movie(path: pathlib.Path) -> np.ndarray:
    """Write a counting movie (int8 Poisson(1), 16 x 512 x 512) as MRCZ.

    Parameters
    ----------
    path : pathlib.Path
        The ``.mrcz`` file to write.

    Returns
    -------
    numpy.ndarray
        The movie written.
    """
    rng = np.random.default_rng(SEED)
    movie = rng.poisson(1.0, (16, 512, 512)).astype(np.int8)
    napari_mrcz.writeMRC(movie, str(path), compressor="zstd", clevel=1, pixelsize=0.83)
    return movie


def average_frames(path: pathlib.Path) -> np.ndarray:
    """The mean of a movie's frames, computed by dask, one task per z-slice.

    Parameters
    ----------
    path : pathlib.Path
        An MRC, MRCZ or DM file.

    Returns
    -------
    numpy.ndarray
        float64, (ny, nx).
    """
    movie = napari_mrcz.to_dask(path)
    print(f"{path.name}: {movie.shape} {movie.dtype}, {movie.npartitions} chunks")
    return movie.mean(axis=0).compute()


def main(argv: list[str]) -> int:
    """Write a movie, average it through dask and check the result."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = pathlib.Path(argv[0]) if argv else pathlib.Path(scratch)
        movie = write_movie(folder / "movie.mrcz")
        average = average_frames(folder / "movie.mrcz")
        assert np.allclose(average, movie.mean(axis=0))
        print(f"average: {average.mean():.4f} electrons per pixel and frame")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
