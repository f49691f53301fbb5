"""File > Open Files as Stack through the napari reader: several MRC files as one layer
with a leading file axis, lazily when large, and the cases that stay one layer per file.

The engine's stack (:mod:`napari_mrcz.mrc.stack`) is tested in tests/mrc/test_stack.py.
"""

import gzip
import shutil

import npe2
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.stack import LazyStack

from tests.helpers import real_files


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


def read_stack(paths):
    return npe2.read([str(path) for path in paths], stack=True, plugin_name="napari-mrcz")


@pytest.fixture
def files(tmp_path, rng):
    """Three (4, 6, 8) float32 volumes, the second of them MRCZ-compressed.

    One suffix for all: npe2 refuses stacks of mixed suffixes.
    """
    volumes = [rng.normal(i, 1, size=(4, 6, 8)).astype(np.float32) for i in range(3)]
    paths = []
    for number, data in enumerate(volumes):
        path = tmp_path / f"vol{number}.mrc"
        napari_mrcz.writeMRC(
            data, path, pixelsize=[2.0, 1.5, 1.0], compressor="zstd" if number == 1 else None
        )
        paths.append(path)
    return np.stack(volumes), paths


def test_three_files_make_one_layer(files):
    expected, paths = files
    [(data, kwargs, layer_type)] = read_stack(paths)
    assert layer_type == "image"
    assert isinstance(data, np.ndarray)
    np.testing.assert_array_equal(data, expected)
    assert kwargs["name"] == "vol0.mrc (+2)"
    np.testing.assert_allclose(kwargs["scale"], [1.0, 2.0, 1.5, 1.0])
    assert len(kwargs["translate"]) == 4
    assert kwargs["metadata"]["paths"] == [str(path) for path in paths]
    assert kwargs["metadata"]["path"] == str(paths[0])


def test_large_stacks_are_lazy(files, monkeypatch):
    expected, paths = files
    monkeypatch.setattr(napari_reader, "LAZY_THRESHOLD_BYTES", 1000)
    [(data, _, _)] = read_stack(paths)
    assert isinstance(data, LazyStack)
    assert data.shape == expected.shape
    assert data.dtype == expected.dtype
    assert data.ndim == 4
    np.testing.assert_array_equal(data[1, 2], expected[1, 2])
    np.testing.assert_array_equal(data[-1], expected[-1])
    np.testing.assert_array_equal(data[:, 3, 2:4], expected[:, 3, 2:4])
    np.testing.assert_array_equal(data[::2, ..., 1], expected[::2, ..., 1])
    np.testing.assert_array_equal(data[[2, 0]], expected[[2, 0]])
    np.testing.assert_array_equal(data[1:1], expected[1:1])
    np.testing.assert_array_equal(data[..., None][0], expected[..., None][0])
    np.testing.assert_array_equal(np.asarray(data), expected)
    data.close()


@pytest.mark.parametrize("what", ["shape", "dtype"])
def test_mismatched_file_is_named(files, tmp_path, what):
    _, paths = files
    odd = tmp_path / "odd.mrc"
    data = np.zeros((4, 6, 9), np.float32) if what == "shape" else np.zeros((4, 6, 8), np.int16)
    napari_mrcz.writeMRC(data, odd)
    with pytest.raises(MRCZFormatError, match=what) as info:
        read_stack([paths[0], odd, paths[2]])
    assert info.value.path == str(odd)
    assert "vol0.mrc" in str(info.value)


def test_single_images_stack_into_a_volume(tmp_path, rng):
    images = [rng.normal(size=(6, 8)).astype(np.float32) for _ in range(2)]
    paths = [tmp_path / f"im{number}.mrc" for number in range(2)]
    for image, path in zip(images, paths, strict=True):
        napari_mrcz.writeMRC(image, path, pixelsize=0.5)
    [(data, kwargs, _)] = read_stack(paths)
    np.testing.assert_array_equal(data, np.stack(images))
    np.testing.assert_allclose(kwargs["scale"], [1.0, 0.5, 0.5])


def test_compressed_downloads_stack(files, tmp_path, monkeypatch):
    expected, paths = files
    packed = []
    for path in paths:
        packed.append(path.with_name(path.name + ".gz"))
        with open(path, "rb") as source, gzip.open(packed[-1], "wb") as sink:
            shutil.copyfileobj(source, sink)
    monkeypatch.setattr(napari_reader, "LAZY_THRESHOLD_BYTES", 1000)
    [(data, kwargs, _)] = read_stack(packed)
    np.testing.assert_array_equal(np.asarray(data), expected)
    assert kwargs["name"] == "vol0.mrc.gz (+2)"
    assert kwargs["metadata"]["paths"] == [str(path) for path in packed]
    data.close()
    [(data, _, _)] = napari_reader.read_layers([str(paths[0]), str(packed[1])])  # mixed suffixes
    np.testing.assert_array_equal(data, expected[:2])


def test_complex_files_open_one_layer_per_file(tmp_path, rng):
    paths = [tmp_path / f"fft{number}.mrc" for number in range(2)]
    for path in paths:
        napari_mrcz.writeMRC(rng.normal(size=(2, 4, 4)).astype(np.complex64), path)
    assert len(read_stack(paths)) == 4  # amplitude and phase of each


def test_dm_in_a_list_keeps_one_layer_per_file(files):
    dm_files = real_files("dm4") + real_files("dm3")
    if not dm_files:
        pytest.skip("no real DM files")
    _, paths = files
    layers = napari_reader.read_layers([str(paths[0]), str(dm_files[0])])
    assert len(layers) >= 2
    assert layers[0][1]["name"] == "vol0.mrc"


def test_one_path_as_a_stack_is_one_file(files):
    expected, paths = files
    [(data, kwargs, _)] = read_stack(paths[:1])
    np.testing.assert_array_equal(data, expected[0])
    assert kwargs["name"] == "vol0.mrc"
