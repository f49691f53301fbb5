"""Round trips through a real napari viewer (needs a display: run under Xvfb)."""

import os

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.mrc.header import HEADER_SIZE
from napari_mrcz.mrc.lazy import LazyMRC

from tests.helpers import SHARED_DATA

pytest.importorskip("napari")
pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="a napari viewer needs a display (run under xvfb-run)"
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_open_mrcz_in_viewer(make_napari_viewer, tmp_path, rng):
    data = rng.normal(5, 1, size=(4, 20, 30)).astype(np.float32)
    path = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(
        data, path, pixelsize=[4.0, 2.0, 1.0], compressor="zstd", meta={"grid": "A3"}
    )
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    np.testing.assert_allclose(layer.scale, [4.0, 2.0, 1.0])
    assert [str(unit) for unit in layer.units] == ["angstrom"] * 3
    assert layer.metadata["json_meta"] == {"grid": "A3"}
    assert layer.source.reader_plugin == "napari-mrcz"
    assert viewer.scene.camera.orientation2d == ("up", "right")


def test_open_real_file_in_viewer(make_napari_viewer):
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is not available")
    path = SHARED_DATA / "mrc" / "tomodrgn_tomogram_001.mrc"
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    with mrcfile.open(path) as mrc:
        np.testing.assert_array_equal(np.asarray(layer.data), mrc.data)
    np.testing.assert_allclose(layer.scale, [125.0] * 3)


def test_save_layers_round_trip(make_napari_viewer, tmp_path, rng):
    import mrcz

    data = rng.normal(size=(3, 16, 24)).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(
        data, scale=(3.0, 0.5, 0.5), units="nm", name="tilt series", metadata={"operator": "grace"}
    )
    [written] = viewer.layers.save(str(tmp_path / "series"), plugin="napari-mrcz")
    assert written.endswith("series.mrcz")
    image, meta = mrcz.readMRC(written)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [30.0, 5.0, 5.0], rtol=1e-6)
    assert meta["operator"] == "grace"
    [plain] = viewer.layers.save(str(tmp_path / "series.mrc"), plugin="napari-mrcz")
    with mrcfile.open(plain) as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert float(mrc.voxel_size.z) == pytest.approx(30.0)


def test_labels_layer_saves(make_napari_viewer, tmp_path, rng):
    labels = rng.integers(0, 5, size=(2, 8, 8))
    viewer = make_napari_viewer()
    viewer.add_labels(labels, name="segmentation")
    with pytest.warns(UserWarning, match="int64"):
        [written] = viewer.layers.save(str(tmp_path / "seg.mrcz"), plugin="napari-mrcz")
    np.testing.assert_array_equal(napari_mrcz.readMRC(written)[0], labels)


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mrcz", "volume")
    viewer.open_sample("napari-mrcz", "movie")
    volume, movie = viewer.layers
    assert volume.data.shape == (96, 96, 96)
    np.testing.assert_allclose(volume.scale, [2.5] * 3)
    assert movie.data.dtype == np.int8
    assert movie.metadata["format"] == "MRCZ"


def test_large_file_opens_lazily_with_little_memory(make_napari_viewer, tmp_path, rng):
    """A 630 MB plain MRC (sparse on disk) opens as a LazyMRC and displays a slice
    without reading the file into memory."""
    nz, ny, nx = 600, 512, 512
    first = rng.normal(size=(ny, nx)).astype(np.float32)
    path = tmp_path / "big.mrc"
    napari_mrcz.writeMRC(first, path)
    with open(path, "r+b") as handle:
        handle.seek(8)
        handle.write(np.array([nz], dtype="<i4").tobytes())
        handle.truncate(HEADER_SIZE + nz * ny * nx * 4)
    assert nz * ny * nx * 4 > napari_reader.LAZY_THRESHOLD_BYTES
    viewer = make_napari_viewer()
    before = _rss_bytes()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    viewer.dims.set_current_step(0, 0)
    viewer.screenshot(canvas_only=True)
    grown = _rss_bytes() - before
    assert isinstance(layer.data, LazyMRC)
    assert layer.data.shape == (nz, ny, nx)
    np.testing.assert_array_equal(layer.data[0], first)
    assert grown < 150 * 2**20, f"opening grew the process by {grown / 2**20:.0f} MiB"


def test_unreadable_file_gives_a_clear_error(make_napari_viewer, tmp_path):
    path = tmp_path / "truncated.mrcz"
    path.write_bytes(b"MRC" * 10)
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="too short"):
        viewer.open(str(path), plugin="napari-mrcz")
    assert len(viewer.layers) == 0


def test_open_dm4_in_viewer(make_napari_viewer):
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is not available")
    path = SHARED_DATA / "dm4" / "openncem_dmTest_3D_int16_64_65_66.dm4"
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    np.testing.assert_array_equal(
        np.asarray(layer.data), np.asarray(napari_mrcz.read_dm(path)[0][0])
    )
    # 4 um, 3 nm and 2 pm per pixel along z, y, x
    np.testing.assert_allclose(layer.scale, [40000.0, 30.0, 0.02])
    assert [str(unit) for unit in layer.units] == ["angstrom"] * 3
    assert layer.metadata["format"] == "DM"
    assert viewer.scene.camera.orientation2d != ("up", "right")  # DM starts top-left


def test_open_save_open_keeps_origin_and_microscope(make_napari_viewer, tmp_path, rng):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    path = tmp_path / "map.mrcz"
    napari_mrcz.writeMRC(
        data,
        path,
        pixelsize=2.0,
        compressor="zstd",
        voltage=300.0,
        C3=2.7,
        origin=[30.0, 20.0, 10.0],
        meta={"sample": "apoferritin"},
    )
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    np.testing.assert_allclose(layer.translate, [30.0, 20.0, 10.0])
    [saved] = viewer.layers.save(str(tmp_path / "again.mrcz"), plugin="napari-mrcz")
    image, meta = napari_mrcz.readMRC(saved)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["mrcHeader"]["origin"], [10.0, 20.0, 30.0])
    assert meta["voltage"] == 300.0
    assert meta["C3"] == pytest.approx(2.7)
    assert meta["sample"] == "apoferritin"
    assert "mrcHeader" not in (meta.get("json") or {})
