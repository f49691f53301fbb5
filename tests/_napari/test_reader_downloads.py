"""Compressed downloads (.gz, .bz2) through the napari reader: claimed by suffix, named
after the download, and their temporary copy gone once the layer data is.

The engine's decompression (:mod:`napari_mrcz.mrc.gzipped`) is tested in
tests/mrc/test_gzipped.py.
"""

import bz2
import contextlib
import gc
import gzip
import os
import shutil
import tempfile

import npe2
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.gzipped import is_compressed
from napari_mrcz.mrc.lazy import LazyMRC

from tests.helpers import in_angstrom

OPENERS = {".gz": gzip.open, ".bz2": bz2.open}


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The system temporary folder, redirected so that leftovers can be seen."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def compress(plain, suffix):
    """Write ``plain`` compressed next to it; return the new path."""
    target = plain.with_name(plain.name + suffix)
    with open(plain, "rb") as source, OPENERS[suffix](target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


@pytest.fixture
def volume(tmp_path, rng):
    data = rng.normal(5, 2, size=(4, 10, 12)).astype(np.float32)
    path = tmp_path / "emd_1234.map"
    napari_mrcz.writeMRC(data, path, pixelsize=[1.5, 1.2, 1.1])
    return data, path


def copies() -> list[str]:
    """The temporary copies this process holds open: files with no name any more."""
    found = []
    for number in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{number}")
            if target.startswith(tempfile.gettempdir()) and target.endswith(" (deleted)"):
                found.append(target)
    return sorted(set(found))  # the copy, and the reader's descriptor of it


def read(path):
    return npe2.read([str(path)], stack=False, plugin_name="napari-mrcz")


@pytest.mark.parametrize("name", ["a.mrc.gz", "b.MAP.GZ", "c.mrcs.bz2", "d.ccp4.gz"])
def test_suffixes(name):
    assert is_compressed(name)
    assert napari_reader.get_reader(name) is napari_reader.read_layers


@pytest.mark.parametrize("name", ["a.tif.gz", "b.gz", "c.mrc"])
def test_reader_declines_other_compressed_files(name):
    assert is_compressed(name) == name.endswith(".gz")
    expected = napari_reader.read_layers if name == "c.mrc" else None
    assert napari_reader.get_reader(name) is expected


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_napari_reader_names_the_original(volume, suffix, temp_dir):
    data, plain = volume
    packed = compress(plain, suffix)
    [(layer_data, kwargs, _)] = read(packed)
    assert isinstance(layer_data, np.ndarray)
    np.testing.assert_array_equal(layer_data, data)
    assert kwargs["name"] == "emd_1234.map" + suffix
    assert kwargs["metadata"]["path"] == str(packed)
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [1.5, 1.2, 1.1])
    assert list(temp_dir.iterdir()) == []


def test_napari_reader_lazy_copy_lives_with_the_layer_data(volume, temp_dir, monkeypatch):
    data, plain = volume
    packed = compress(plain, ".gz")
    monkeypatch.setattr(napari_reader, "LAZY_THRESHOLD_BYTES", 100)
    [(layer_data, kwargs, _)] = read(packed)
    assert isinstance(layer_data, LazyMRC)
    assert kwargs["name"] == "emd_1234.map.gz"
    np.testing.assert_array_equal(layer_data[1], data[1])
    assert len(copies()) == 1
    del layer_data
    gc.collect()
    assert copies() == []
    assert list(temp_dir.iterdir()) == []


def test_napari_reader_damaged_download(volume, temp_dir):
    _, plain = volume
    packed = compress(plain, ".gz")
    packed.write_bytes(packed.read_bytes()[:200])
    with pytest.raises(MRCZFormatError) as info:
        read(packed)
    assert info.value.path == str(packed)
