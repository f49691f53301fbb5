"""napari's File > Open Sample > napari-mrcz: a synthetic map and a counting movie.

What the samples protect: both open through npe2 as the manifest declares them, as
real MRCZ files that python-mrcz reads back (so opening a sample exercises the whole
write and read path), with the pixel sizes their menu entries promise, the same
pixels every time, and written once to a cache that is then reused.
"""

import os

import mrcz
import npe2
import numpy as np
import pytest

from napari_mrcz.__about__ import __version__
from napari_mrcz._napari import samples

from tests.helpers import in_angstrom


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The samples' cache folder, redirected so that each test writes its own."""
    folder = tmp_path / "samples"
    monkeypatch.setattr(samples, "SAMPLE_FOLDER", str(folder))
    return folder


def npe2_sample(key):
    """The layers napari gets for File > Open Sample > napari-mrcz > ``key``."""
    contributions = dict(npe2.PluginManager.instance().iter_sample_data())["napari-mrcz"]
    [contribution] = [one for one in contributions if one.key == key]
    return contribution.open()


def test_the_manifest_offers_the_volume_and_the_movie():
    contributions = dict(npe2.PluginManager.instance().iter_sample_data())["napari-mrcz"]
    assert {one.key: one.display_name for one in contributions} == {
        "volume": "Synthetic cryo-EM volume (MRCZ)",
        "movie": "Counting-mode movie (MRCZ)",
    }


def test_volume_sample_is_a_96_cube_at_2_5_angstrom(cache):
    [(data, kwargs, layer_type)] = npe2_sample("volume")
    assert layer_type == "image"
    assert isinstance(data, np.ndarray)
    assert data.shape == (96, 96, 96)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, samples.synthetic_volume())
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [2.5, 2.5, 2.5])
    assert kwargs["units"] == ["nm"] * 3
    assert kwargs["name"] == "synthetic_volume.mrcz"
    assert kwargs["metadata"]["format"] == "MRCZ"
    assert kwargs["metadata"]["path"] == str(cache / "synthetic_volume.mrcz")


def test_movie_sample_is_an_int8_counting_movie_at_0_8_angstrom(cache):
    [(data, kwargs, _)] = npe2_sample("movie")
    assert data.shape == (24, 512, 512)
    assert data.dtype == np.int8
    np.testing.assert_array_equal(data, samples.synthetic_movie())
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [0.8, 0.8, 0.8])
    assert kwargs["units"] == ["nm"] * 3
    assert kwargs["metadata"]["header"]["compressor"] == "zstd"


@pytest.mark.parametrize(
    ("open_sample", "name", "make", "pixelsize"),
    [
        (samples.volume_sample, "synthetic_volume.mrcz", samples.synthetic_volume, 2.5),
        (samples.movie_sample, "counting_movie.mrcz", samples.synthetic_movie, 0.8),
    ],
    ids=["volume", "movie"],
)
def test_the_cached_sample_is_an_mrcz_file_python_mrcz_reads(
    cache, open_sample, name, make, pixelsize
):
    open_sample()
    image, meta = mrcz.readMRC(str(cache / name))
    np.testing.assert_array_equal(image, make())
    np.testing.assert_allclose(meta["pixelsize"], [pixelsize] * 3, rtol=1e-6)
    assert meta["compressor"] == "zstd"
    assert meta["sample"] == name
    assert meta["made_by"] == f"napari-mrcz {__version__}"


def test_a_sample_is_written_once_then_read_from_the_cache(cache, monkeypatch):
    [(first, _, _)] = samples.volume_sample()
    written = (cache / "synthetic_volume.mrcz").stat()

    def no_second_write(*args, **kwargs):
        raise AssertionError("the cached sample was written again")

    monkeypatch.setattr(samples, "write_array", no_second_write)
    [(again, _, _)] = samples.volume_sample()
    np.testing.assert_array_equal(again, first)
    assert (cache / "synthetic_volume.mrcz").stat().st_mtime_ns == written.st_mtime_ns
    assert sorted(os.listdir(cache)) == ["synthetic_volume.mrcz"]  # no debris beside it


def test_each_version_caches_its_samples_apart():
    """An upgrade makes its own samples rather than open an older version's file."""
    assert os.path.basename(samples.SAMPLE_FOLDER) == f"napari-mrcz-samples-{__version__}"


def test_the_synthetic_data_are_the_same_every_time():
    np.testing.assert_array_equal(samples.synthetic_volume(32), samples.synthetic_volume(32))
    np.testing.assert_array_equal(samples.synthetic_movie(3, 64), samples.synthetic_movie(3, 64))
    assert not np.array_equal(samples.synthetic_volume(32), samples.synthetic_volume(32, seed=5))


def test_the_volume_holds_two_rings_of_seven_subunits_in_noise():
    """Density about 1 at each of the 14 subunit centres, about 0 elsewhere, noise 0.15."""
    size = 96
    volume = samples.synthetic_volume(size)
    centres = [
        (
            size / 2 + height,
            size / 2 + size / 4 * np.sin(angle),
            size / 2 + size / 4 * np.cos(angle),
        )
        for angle in np.linspace(0, 2 * np.pi, 7, endpoint=False)
        for height in (-size / 12, size / 12)
    ]
    voxels = {tuple(round(value) for value in centre) for centre in centres}
    assert len(voxels) == 14
    peaks = [volume[voxel] for voxel in voxels]
    assert 0.8 < np.mean(peaks) < 1.3
    assert min(peaks) > 0.5
    empty = volume[:12, :12, :12]  # a corner, far from every subunit
    assert abs(float(empty.mean())) < 0.05
    assert float(empty.std()) == pytest.approx(0.15, rel=0.1)


def test_the_movie_is_poisson_counts_of_a_drifting_specimen():
    """Counts of mean about 1, and a specimen that moves 0.5 pixel per frame (towards
    lower x, higher y): something for motion correction to correct."""
    movie = samples.synthetic_movie()
    assert movie.min() == 0
    assert 0.8 < movie.mean() < 1.4
    assert movie.max() < 20  # Poisson counts of mean < 2: far from int8's limit
    early = movie[:6].astype(np.float64).mean(axis=0)
    late = movie[-6:].astype(np.float64).mean(axis=0)
    early -= early.mean()
    late -= late.mean()
    correlation = np.fft.ifft2(np.fft.fft2(late) * np.conj(np.fft.fft2(early))).real
    dy, dx = np.unravel_index(np.argmax(correlation), correlation.shape)
    size = movie.shape[-1]
    shift = [int(value) - size if value > size // 2 else int(value) for value in (dy, dx)]
    assert shift == [9, -9]  # 18 frames apart at 0.5 pixel per frame
