"""The folder of movies the command-line tests convert."""

import numpy as np
import pytest

import napari_mrcz


@pytest.fixture
def movies(tmp_path, rng):
    """A folder of three small plain MRC movies (one in a sub-folder) and their data."""
    source = tmp_path / "raw"
    (source / "grid2").mkdir(parents=True)
    data = {}
    for name in ("a.mrc", "b.mrcs", "grid2/c.mrc"):
        frames = rng.poisson(2.0, size=(6, 40, 48)).astype(np.int16)
        napari_mrcz.writeMRC(
            frames, source / name, pixelsize=[1.5, 1.06, 1.06], voltage=300.0, C3=2.7
        )
        data[name] = frames
    return source, data
