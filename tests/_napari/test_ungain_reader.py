"""napari reads gain-separated files as the float32 movie, eagerly and lazily."""

import mrcfile
import npe2
import numpy as np
import pytest

from napari_mrcz import formats
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.gain.separation import GainSettings, convert_image
from napari_mrcz.gain.store import GainStore
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.lazy import LazyMRC

from tests.helpers import gain_normalised_movie, in_angstrom


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


@pytest.fixture
def separated(tmp_path, rng):
    movie, _, _ = gain_normalised_movie(rng, (40, 24, 32), dose=3.0)
    source = tmp_path / "raw.mrc"
    with mrcfile.new(source) as handle:
        handle.set_data(movie)
        handle.voxel_size = 1.2
    target = tmp_path / "movie.mrcz"
    with formats.open_images(source) as (image,):
        convert_image(image, str(target), "zstd", gain=GainSettings(GainStore("zstd"), True))
    return target, movie, mrcfile.open(source).header


@pytest.mark.parametrize("lazy", [False, True])
def test_napari_shows_the_float32_movie(separated, monkeypatch, lazy):
    target, movie, header = separated
    if lazy:
        monkeypatch.setattr(napari_reader, "LAZY_THRESHOLD_BYTES", 0)
    [(data, kwargs, layer_type)] = npe2.read([str(target)], stack=False, plugin_name="napari-mrcz")
    assert layer_type == "image"
    assert isinstance(data, LazyMRC) is lazy
    assert data.dtype == np.float32
    np.testing.assert_array_equal(
        np.asarray(data).view(np.uint32), np.ascontiguousarray(movie).view(np.uint32)
    )
    assert kwargs["contrast_limits"] == (float(header.dmin), float(header.dmax))
    assert in_angstrom(kwargs["scale"], kwargs["units"]) == pytest.approx([1.2, 1.2, 1.2])
    assert GAIN_KEY in kwargs["metadata"]["json_meta"]
