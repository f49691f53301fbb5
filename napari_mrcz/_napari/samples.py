"""napari sample data: a synthetic cryo-EM volume and a counting-mode movie, as MRCZ.

Made in code (no download), written once to a cache folder as MRCZ and opened with
our reader, so that opening a sample exercises the whole read path.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from napari_mrcz.__about__ import __version__
from napari_mrcz._napari.reader import LayerData, read_layers
from napari_mrcz.mrc.write import write_array

SAMPLE_FOLDER = os.path.join(tempfile.gettempdir(), f"napari-mrcz-samples-{__version__}")


def synthetic_volume(size: int = 96, seed: int = 1) -> np.ndarray:
    """A cryo-EM-like map: two stacked rings of 7 globular subunits in noise, float32."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:size, :size, :size].astype(np.float32) - size / 2
    volume = np.zeros((size, size, size), dtype=np.float32)
    for angle in np.linspace(0, 2 * np.pi, 7, endpoint=False):
        for height in (-size / 12, size / 12):
            centre = (height, size / 4 * np.sin(angle), size / 4 * np.cos(angle))
            distance2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
            volume += np.exp(-distance2 / (2 * (size / 14) ** 2))
    volume += rng.normal(scale=0.15, size=volume.shape).astype(np.float32)
    return volume


def synthetic_movie(frames: int = 24, size: int = 512, seed: int = 2) -> np.ndarray:
    """A counting-mode movie: int8 Poisson counts of a drifting specimen (t, y, x)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    movie = np.empty((frames, size, size), dtype=np.int8)
    for frame in range(frames):
        shift = 0.5 * frame
        specimen = 0.6 * (np.sin((x + shift) / 9.0) * np.cos((y - shift) / 13.0) > 0.3)
        movie[frame] = rng.poisson(0.8 + specimen)
    return movie


def _sample(name: str, make: callable, pixelsize: float) -> list[LayerData]:
    path = os.path.join(SAMPLE_FOLDER, name)
    if not os.path.isfile(path):
        os.makedirs(SAMPLE_FOLDER, exist_ok=True)
        write_array(
            make(),
            path,
            pixelsize=pixelsize,
            compressor="zstd",
            clevel=1,
            meta={"sample": name, "made_by": f"napari-mrcz {__version__}"},
        )
    return read_layers(path)


def volume_sample() -> list[LayerData]:
    """npe2 sample: a 96^3 synthetic map at 2.5 Angstrom per voxel."""
    return _sample("synthetic_volume.mrcz", synthetic_volume, 2.5)


def movie_sample() -> list[LayerData]:
    """npe2 sample: a 24-frame 512 x 512 int8 counting movie at 0.8 Angstrom per pixel."""
    return _sample("counting_movie.mrcz", synthetic_movie, 0.8)
