"""describe(): the facts mrcz info shows, from headers only."""

import gzip
import shutil

import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz._napari.reader import read_layers
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools.info import describe

from tests.helpers import SHARED_DATA, in_angstrom, write_permuted_map


def test_mrcz_summary(tmp_path, rng):
    path = tmp_path / "movie.mrcz"
    data = rng.poisson(0.8, size=(7, 32, 40)).astype(np.uint16)
    napari_mrcz.writeMRC(
        data,
        path,
        meta={"b": 1, "a": [1, 2]},
        pixelsize=0.84,
        compressor="zstd",
        clevel=7,
        voltage=300,
        C3=2.7,
        origin=[0, 5, 6],
    )
    summary = describe(path)
    header, _ = mrcz.readMRCHeader(str(path))  # python-mrcz's reading of the same header
    assert summary["format"] == "MRCZ"
    assert summary["shape"] == [7, 32, 40]
    assert summary["dtype"] == "uint16"
    assert summary["mode"] == 6
    assert summary["codec"] == "zstd"
    assert summary["level"] == 7
    assert summary["packed_bytes"] == header["packedBytes"]
    assert summary["data_bytes"] == data.nbytes
    assert summary["ratio"] == pytest.approx(data.nbytes / header["packedBytes"])
    np.testing.assert_allclose(summary["pixel_size_angstrom"], header["pixelsize"])
    assert summary["voltage_kv"] == pytest.approx(300)
    assert summary["cs_mm"] == pytest.approx(2.7)
    assert summary["origin_angstrom"] == pytest.approx([0, 5, 6])  # z, y, x as written
    assert summary["json_meta_keys"] == ["a", "b"]
    assert summary["statistics"]["max"] == data.max()


def test_plain_and_gzipped_files(tmp_path, rng):
    path = tmp_path / "map.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(4, 6, 8)).astype(np.float32), path)
    plain = describe(path)
    assert plain["codec"] is None
    assert plain["level"] is None
    assert plain["ratio"] == 1.0
    with open(path, "rb") as source, gzip.open(tmp_path / "map.mrc.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    zipped = describe(tmp_path / "map.mrc.gz")
    assert zipped["path"].endswith("map.mrc.gz")
    assert zipped["shape"] == plain["shape"]


def test_level_of_a_recompressed_file_is_not_claimed(tmp_path, rng):
    """A label recording zstd says nothing about a file now holding lz4."""
    path = tmp_path / "x.mrcz"
    napari_mrcz.writeMRC(
        rng.normal(size=(2, 8, 8)).astype(np.float32), path, compressor="zstd", clevel=5
    )
    raw = bytearray(path.read_bytes())
    raw[12:16] = np.int32(2002).tobytes()  # MODE: lz4 (the chunks still say zstd)
    path.write_bytes(bytes(raw))
    assert describe(path)["level"] is None


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_dm_highlights():
    summary = describe(SHARED_DATA / "dm4" / "scifi_DMReader_EELS_STO.dm4")
    [image] = summary["images"]
    assert summary["format"] == "DM4"
    assert image["calibration"] == [{"scale": 0.25, "units": "eV"}]
    assert image["highlights"]["Voltage"] == 200000.0
    assert image["highlights"]["Camera"] == "QUEFINA 1"
    assert image["highlights"]["ExposureSeconds"] == 2.0


def test_origin_and_pixel_size_agree_with_napari_for_a_permuted_map(tmp_path, rng):
    """mrcz info and the napari layer give one origin and pixel size, axis for axis."""
    path = tmp_path / "permuted.map"
    write_permuted_map(path, rng.random((4, 5, 6), dtype=np.float32), origin=(10.0, 20.0, 30.0))
    summary = describe(path)
    ((_, kwargs, _),) = read_layers(str(path))
    layout = read_layout(path)
    order = layout.display_order
    shown_pixel = [summary["pixel_size_angstrom"][axis] for axis in order]
    shown_origin = [summary["origin_angstrom"][axis] for axis in order]
    assert shown_pixel == pytest.approx(in_angstrom(kwargs["scale"], kwargs["units"]))
    assert shown_origin == pytest.approx(in_angstrom(kwargs["translate"], kwargs["units"]))
    # In (z, y, x) as shown: crystal z, y, x voxels of 3, 2, 1 A and origin 30, 20, 10.
    assert in_angstrom(kwargs["scale"], kwargs["units"]) == pytest.approx([3.0, 2.0, 1.0])
    assert in_angstrom(kwargs["translate"], kwargs["units"]) == pytest.approx([30.0, 20.0, 10.0])
