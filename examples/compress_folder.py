"""Compress a folder of movies with the ``mrcz`` command, then check every output.

Writes three seeded counting movies (plain MRC) into ``FOLDER/raw/``, runs
``mrcz compress raw/ -o archive/ --verify`` (as a facility's nightly job would), and
reads each compressed movie back to compare it with its source.

Usage::

    python examples/compress_folder.py [FOLDER]

FOLDER defaults to a temporary folder, removed at the end.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

import numpy as np

import napari_mrcz as mrcz

#: Seed of the movies: the same files every run.
SEED = 20261206


def write_movies(raw: pathlib.Path, count: int = 3) -> list[pathlib.Path]:
    """Write ``count`` counting-mode movies (int8 Poisson(1)) as plain MRC files.

    Parameters
    ----------
    raw : pathlib.Path
        Folder to write them into (created).
    count : int
        How many movies.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    rng = np.random.default_rng(SEED)
    raw.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        frames = rng.poisson(1.0, (8, 256, 256)).astype(np.int8)
        path = raw / f"movie_{number:03d}.mrc"
        mrcz.writeMRC(frames, str(path), pixelsize=[1.0, 0.83, 0.83])
        paths.append(path)
    return paths


def compress(folder: pathlib.Path) -> None:
    """Run ``mrcz compress raw/ -o archive/ --verify`` in ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        Folder holding ``raw/``; ``archive/`` is written beside it.

    Raises
    ------
    subprocess.CalledProcessError
        If the command reports a failure (exit status not 0).
    """
    command = [sys.executable, "-m", "napari_mrcz.cli", "compress", "raw", "-o", "archive"]
    subprocess.run([*command, "--verify"], cwd=folder, check=True)


def check(sources: list[pathlib.Path], raw: pathlib.Path, archive: pathlib.Path) -> None:
    """Compare every compressed movie with its source, value for value.

    Parameters
    ----------
    sources : list of pathlib.Path
        The plain MRC movies.
    raw, archive : pathlib.Path
        The source folder and the folder of compressed movies.

    Raises
    ------
    AssertionError
        If a movie differs.
    """
    for source in sources:
        output = (archive / source.relative_to(raw)).with_suffix(".mrcz")
        original, _ = mrcz.readMRC(str(source))
        compressed, meta = mrcz.readMRC(str(output))
        assert np.array_equal(original, compressed), f"{output} differs from {source}"
        ratio = source.stat().st_size / output.stat().st_size
        print(f"{output.name}: {meta['compressor']}, {ratio:.2f}x smaller, identical")


def main(argv: list[str]) -> int:
    """Write, compress and check; return the exit status."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = pathlib.Path(argv[0]) if argv else pathlib.Path(scratch)
        sources = write_movies(folder / "raw")
        compress(folder)
        check(sources, folder / "raw", folder / "archive")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
