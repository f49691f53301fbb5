"""The one door for files: what a file is, and its images, by name and by content."""

import gzip
import shutil

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import formats
from napari_mrcz.formats import Format

from tests.helpers import real_files, write_permuted_map

DM4 = real_files("dm4")


@pytest.fixture
def movie(tmp_path, rng):
    """A 4-frame movie written by mrcfile, voxel 0.8 Å."""
    data = rng.normal(size=(4, 6, 8)).astype(np.float32)
    path = tmp_path / "movie.mrc"
    with mrcfile.new(path) as handle:
        handle.set_data(data)
        handle.voxel_size = 0.8
    return path, data


def test_each_family_is_told_by_its_name(movie, tmp_path):
    path, data = movie
    assert formats.identify(path) == formats.FileKind(str(path), Format.MRC)
    packed = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(data, packed, compressor="zstd")
    assert formats.identify(packed).format is Format.MRC
    download = tmp_path / "emd_1.map.gz"
    download.write_bytes(gzip.compress(path.read_bytes()))
    assert formats.identify(download) == formats.FileKind(str(download), Format.MRC, "gzip")


@pytest.mark.skipif(not DM4, reason="no real DM4 files here")
def test_a_dm_file_is_told_by_its_name_or_its_first_bytes(tmp_path):
    assert formats.identify(DM4[0]).format is Format.DM
    unnamed = tmp_path / "exported.bin"
    shutil.copyfile(DM4[0], unnamed)
    assert formats.identify(unnamed).format is Format.DM


@pytest.mark.skipif(not DM4, reason="no real DM4 files here")
def test_a_file_named_as_the_other_family_is_refused_with_the_name_to_give_it(movie, tmp_path):
    mrc_named = tmp_path / "actually_dm.mrc"
    shutil.copyfile(DM4[0], mrc_named)
    with pytest.raises(napari_mrcz.MRCZFormatError, match=r"name it \.dm4 or \.dm3") as caught:
        formats.identify(mrc_named)
    assert caught.value.path == str(mrc_named)
    dm_named = tmp_path / "actually_mrc.dm4"
    shutil.copyfile(movie[0], dm_named)
    with pytest.raises(napari_mrcz.MRCZFormatError, match=r"it is an MRC file: name it \.mrc"):
        formats.identify(dm_named)


def test_what_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path):
    folder = tmp_path / "folder.mrc"
    folder.mkdir()
    with pytest.raises(napari_mrcz.MRCZFormatError, match="a folder"):
        formats.identify(folder)


def test_an_mrc_image_has_its_shape_type_and_pixel_size(movie):
    path, data = movie
    (image,) = formats.lazy_images(path)
    assert (image.shape, image.dtype, image.stacked) == (data.shape, data.dtype, True)
    assert image.pixel_size == pytest.approx([0.8, 0.8, 0.8])
    np.testing.assert_array_equal(image.data.read_slices(1, 3), data[1:3])
    with formats.open_images(path) as (streamed,):
        np.testing.assert_array_equal(np.asarray(streamed.data), data)
        assert streamed.nbytes == data.nbytes


@pytest.mark.skipif(not DM4, reason="no real DM4 files here")
def test_dm_images_are_what_read_dm_gives(tmp_path):
    source = next(path for path in DM4 if path.name == "rsciio_2D_test-11.dm4")
    expected = napari_mrcz.read_dm(source, lazy=False)
    images = formats.lazy_images(source)
    assert formats.image_count(source) == len(images) == len(expected)
    for image, (data, meta) in zip(images, expected, strict=True):
        assert image.shape == data.shape
        assert image.dtype == data.dtype
        assert image.pixel_size == meta["pixelsize"]
        np.testing.assert_array_equal(np.asarray(image.data), data)


def test_a_permuted_map_streams_in_standard_order_on_request(tmp_path, rng):
    """MAPC, MAPR, MAPS = 2, 1, 3: rows run along x and columns along y, so (z, y, x)
    is the data with rows and columns swapped."""
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / "permuted.map"
    write_permuted_map(path, data)
    with formats.open_images(path) as (as_stored,):
        np.testing.assert_array_equal(np.asarray(as_stored.data), data)
    with formats.open_images(path, standard_order=True) as (standard,):
        assert standard.layout.mapcrs == (1, 2, 3)
        assert standard.shape == (3, 5, 4)
        np.testing.assert_array_equal(
            np.stack([standard.data[z] for z in range(3)]), data.transpose(0, 2, 1)
        )
