"""Open a movie in napari with the napari-mrcz reader.

Opens PATH (any file napari-mrcz reads: MRC, MRCZ, DM4, DM3), or a seeded synthetic
counting movie written to a temporary folder, in a napari viewer, and prints what
the layer holds. Needs the napari extra (``pip install '.[napari]'``) and a display.

Usage::

    python examples/open_in_napari.py [PATH] [--quit]

``--quit`` closes the viewer by itself once the layer has been shown (the tests run
the script so, under Xvfb).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

import napari_mrcz

#: Seed of the synthetic movie.
SEED = 20261206
#: How long a --quit run shows the viewer, in milliseconds.
QUIT_AFTER_MS = 500


def write_movie(path: pathlib.Path) -> pathlib.Path:
    """Write a synthetic counting movie (int8, 8 x 256 x 256) as MRCZ.

    Parameters
    ----------
    path : pathlib.Path
        The ``.mrcz`` file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    rng = np.random.default_rng(SEED)
    movie = rng.poisson(1.0, (8, 256, 256)).astype(np.int8)
    napari_mrcz.writeMRC(movie, str(path), compressor="zstd", clevel=1, pixelsize=0.83)
    return path


def show(path: pathlib.Path, quit_after_shown: bool) -> None:
    """Open ``path`` in a new napari viewer and run napari until it is closed.

    Parameters
    ----------
    path : pathlib.Path
        The file to open.
    quit_after_shown : bool
        Close the viewer by itself, QUIT_AFTER_MS after the event loop starts.
    """
    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title=f"napari-mrcz: {path.name}")
    for layer in viewer.open(str(path), plugin="napari-mrcz"):
        header = layer.metadata["header"]
        print(
            f"layer {layer.name!r}: shape {layer.data.shape}, scale {tuple(layer.scale)} "
            f"{layer.units[-1]}, MRC mode {header['MRCtype']}"
        )
    if quit_after_shown:
        QTimer.singleShot(QUIT_AFTER_MS, viewer.close)
    napari.run()


def main(argv: list[str]) -> int:
    """Parse the arguments, open the file, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=pathlib.Path, help="file to open")
    parser.add_argument("--quit", action="store_true", help="close the viewer by itself")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        path = arguments.path or write_movie(pathlib.Path(scratch) / "movie.mrcz")
        show(path, arguments.quit)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
