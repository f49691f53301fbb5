"""Round trips through a real napari viewer (needs a display: run under Xvfb)."""

import os

import mrcfile
import numpy as np
import pint
import pytest

import napari_mrcz
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.mrc.header import HEADER_SIZE
from napari_mrcz.mrc.lazy import LazyMRC

from tests.dm.builder import line_scan
from tests.helpers import SHARED_DATA, in_angstrom
from tests.servers import RangeServer

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
    np.testing.assert_allclose(in_angstrom(layer.scale, layer.units), [4.0, 2.0, 1.0])
    assert [str(unit) for unit in layer.units] == ["nanometer"] * 3
    assert layer.metadata["json_meta"] == {"grid": "A3"}
    assert layer.source.reader_plugin == "napari-mrcz"
    assert viewer.scene.camera.orientation2d == ("down", "right")  # napari's, untouched
    assert layer.affine.affine_matrix[1, 1] == -1  # this layer's y points up


def test_open_a_file_on_a_web_server_in_viewer(make_napari_viewer, tmp_path, rng):
    """An address opens lazily, with the pixel size and orientation of the file."""
    data = rng.normal(5, 1, size=(6, 40, 30)).astype(np.float32)
    path = tmp_path / "tomogram.mrcz"
    napari_mrcz.writeMRC(data, path, pixelsize=[4.0, 2.0, 2.0], compressor="lz4", meta={})
    server = RangeServer()
    try:
        server.files["/run1/tomogram.mrcz"] = path.read_bytes()
        viewer = make_napari_viewer()
        [layer] = viewer.open(server.url("/run1/tomogram.mrcz"), plugin="napari-mrcz")
        assert isinstance(layer.data, LazyMRC)
        assert layer.name == "tomogram.mrcz"
        np.testing.assert_allclose(in_angstrom(layer.scale, layer.units), [4.0, 2.0, 2.0])
        assert layer.affine.affine_matrix[1, 1] == -1
        viewer.dims.set_current_step(0, 5)
        np.testing.assert_array_equal(np.asarray(layer.data[5]), data[5])
        assert len(server.requests) <= 1 + data.shape[0]  # the header, then slices
    finally:
        server.close()


def test_open_real_file_in_viewer(make_napari_viewer):
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is not available")
    path = SHARED_DATA / "mrc" / "tomodrgn_tomogram_001.mrc"
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    with mrcfile.open(path) as mrc:
        np.testing.assert_array_equal(np.asarray(layer.data), mrc.data)
    np.testing.assert_allclose(in_angstrom(layer.scale, layer.units), [125.0] * 3)


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
    np.testing.assert_allclose(in_angstrom(volume.scale, volume.units), [2.5] * 3)
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
    np.testing.assert_allclose(in_angstrom(layer.scale, layer.units), [40000.0, 30.0, 0.02])
    assert [str(unit) for unit in layer.units] == ["nanometer"] * 3
    assert layer.metadata["format"] == "DM"
    np.testing.assert_array_equal(layer.affine.affine_matrix, np.eye(4))  # DM: top-left


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
    np.testing.assert_allclose(in_angstrom(layer.translate, layer.units), [30.0, 20.0, 10.0])
    [saved] = viewer.layers.save(str(tmp_path / "again.mrcz"), plugin="napari-mrcz")
    image, meta = napari_mrcz.readMRC(saved)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["mrcHeader"]["origin"], [10.0, 20.0, 30.0])
    assert meta["voltage"] == 300.0
    assert meta["C3"] == pytest.approx(2.7)
    assert meta["sample"] == "apoferritin"
    assert "mrcHeader" not in (meta.get("json") or {})


def _error_texts(records) -> list[str]:
    return [str(record.message) for record in records if str(record.severity) == "error"]


@pytest.mark.parametrize("kind", ["truncated", "text"])
def test_the_readers_reason_reaches_the_notification(make_napari_viewer, tmp_path, kind):
    """File > Open of a bad file: napari's own toast says only "Tried to read ... with
    plugin napari-mrcz"; the user must see our one-line reason."""
    from napari.utils.notifications import notification_manager

    path = tmp_path / "particles.mrc"
    if kind == "truncated":
        path.write_bytes(b"MRC" * 10)
    else:  # a RELION STAR file saved under the wrong name
        rows = "".join(
            f"{n:06d}@Extract/job012/mic{n % 7}.mrcs  1.2  {n * 3.1:.2f}\n" for n in range(80)
        )
        path.write_text(
            "# version 30001\n\ndata_particles\n\nloop_\n_rlnImageName #1\n"
            "_rlnDefocusU #2\n_rlnAngleRot #3\n" + rows
        )
    viewer = make_napari_viewer()
    before = len(notification_manager.records)
    with pytest.raises(Exception, match="napari-mrcz"):
        viewer.window._qt_viewer._qt_open([str(path)], stack=False)  # what File > Open runs
    errors = _error_texts(notification_manager.records[before:])
    with pytest.raises(napari_mrcz.MRCZFormatError) as reason:
        napari_mrcz.readMRC(path)
    # our line, as a notification of its own, the reason before the folder
    assert f"particles.mrc: {reason.value.problem} (in {tmp_path})" in errors
    assert len(viewer.layers) == 0


def _world_y(layer, row: int) -> float:
    """Where a row of the layer is along world y, in Angstrom."""
    world = layer.data_to_world([row] + [0] * (layer.ndim - 1))
    return in_angstrom(world, layer.units)[layer.ndim - 2]


def test_each_file_shows_in_its_own_orientation(make_napari_viewer, tmp_path, shared_data):
    """MRC layers y up (IMOD), DM layers top-left (DigitalMicrograph), side by side: the
    camera is napari's, no layer flips another. The pixel size stays
    positive, and saving does not flip the data."""
    dm_path = shared_data / "dm4" / "openncem_dmTest_float32_nonSquare_diffPixelSize.dm4"
    image = np.full((40, 30), 50.0, np.float32)
    image[:4] = 100.0  # MRC rows 0-3: the bottom in IMOD
    image[20, 0] = 0.0  # DMIN 0: the rest shows grey
    mrc_path = tmp_path / "bottom_rows.mrc"
    napari_mrcz.writeMRC(image, mrc_path, pixelsize=1.5)
    viewer = make_napari_viewer()
    [dm_layer] = viewer.open(str(dm_path), plugin="napari-mrcz")
    dm_top, dm_bottom = _world_y(dm_layer, 0), _world_y(dm_layer, dm_layer.data.shape[-2] - 1)
    camera = viewer.scene.camera.orientation
    [mrc_layer] = viewer.open(str(mrc_path), plugin="napari-mrcz")
    assert viewer.scene.camera.orientation == camera  # the shared camera is not turned
    assert (_world_y(dm_layer, 0), _world_y(dm_layer, dm_layer.data.shape[-2] - 1)) == (
        dm_top,
        dm_bottom,
    )
    assert dm_top < dm_bottom  # DM row 0 on top
    assert _world_y(mrc_layer, 0) > _world_y(mrc_layer, 39)  # MRC row 0 at the bottom
    np.testing.assert_allclose(in_angstrom(mrc_layer.scale, mrc_layer.units), [1.5, 1.5])
    viewer.layers.selection = {mrc_layer}
    [saved] = viewer.layers.save(str(tmp_path / "saved.mrc"), selected=True, plugin="napari-mrcz")
    with mrcfile.open(saved) as mrc:
        np.testing.assert_array_equal(mrc.data, image)  # not flipped by the display
        assert float(mrc.voxel_size.x) == pytest.approx(1.5)
    alone = make_napari_viewer(show=True)
    alone.open(str(mrc_path), plugin="napari-mrcz")
    rows = alone.screenshot(canvas_only=True, flash=False)[..., :3].mean(axis=(1, 2))
    shown = np.flatnonzero(rows > 0)
    bright = np.flatnonzero(rows > 0.75 * rows.max())
    assert bright.max() == shown.max()  # what the screen shows lowest is rows 0-3
    assert bright.min() > shown.min() + 0.8 * (shown.max() - shown.min())


@pytest.mark.parametrize("suffix", [".mrcz", ".mrc"])
def test_a_saved_layer_reopens_where_it_was(make_napari_viewer, tmp_path, shared_data, suffix):
    """A DM image (rows top-down) and an array added by hand, saved as MRC(Z) and
    reopened, overlay their layer; an MRC layer (y up) saved so reopens y up. The
    file's data is as the layer holds it (never flipped)."""
    dm_path = shared_data / "dm4" / "openncem_dmTest_float32_nonSquare_diffPixelSize.dm4"
    viewer = make_napari_viewer()
    [dm_layer] = viewer.open(str(dm_path), plugin="napari-mrcz")
    added = viewer.add_image(np.arange(12, dtype=np.float32).reshape(3, 4), name="added")
    mrc_path = tmp_path / "source.mrc"
    napari_mrcz.writeMRC(np.ones((5, 6), np.float32), mrc_path)
    [mrc_layer] = viewer.open(str(mrc_path), plugin="napari-mrcz")
    for layer in (dm_layer, added, mrc_layer):
        viewer.layers.selection = {layer}
        [saved] = viewer.layers.save(
            str(tmp_path / f"{layer.name}-copy{suffix}"), selected=True, plugin="napari-mrcz"
        )
        [copy] = viewer.open(saved, plugin="napari-mrcz")
        last = layer.data.shape[-2] - 1
        assert (_world_y(copy, 0), _world_y(copy, last)) == pytest.approx(
            (_world_y(layer, 0), _world_y(layer, last))
        ), layer.name
        np.testing.assert_array_equal(napari_mrcz.readMRC(saved)[0], np.asarray(layer.data))


def test_a_dm_image_converted_by_the_command_overlays_its_original(
    make_napari_viewer, tmp_path, shared_data
):
    dm_path = shared_data / "dm4" / "openncem_dmTest_float32_nonSquare_diffPixelSize.dm4"
    converted = tmp_path / "converted.mrcz"
    from napari_mrcz.cli.command import main

    assert main(["convert", str(dm_path), str(converted)]) == 0
    viewer = make_napari_viewer()
    [original] = viewer.open(str(dm_path), plugin="napari-mrcz")
    [copy] = viewer.open(str(converted), plugin="napari-mrcz")
    np.testing.assert_array_equal(copy.affine.affine_matrix, original.affine.affine_matrix)


def test_y_up_can_be_turned_off(make_napari_viewer, tmp_path, monkeypatch):
    """With the preference off, MRC layers show rows top-down like any image."""
    monkeypatch.setattr(napari_reader, "y_axis_up", lambda: False)
    path = tmp_path / "plain.mrc"
    napari_mrcz.writeMRC(np.zeros((4, 6), np.float32), path)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    assert _world_y(layer, 0) < _world_y(layer, 3)


def test_y_up_follows_the_plugin_setting(make_napari_viewer):
    from napari.settings import get_plugin_settings

    make_napari_viewer()
    assert napari_reader.y_axis_up() is get_plugin_settings("napari-mrcz").reader.y_axis_up


def test_spectrum_opens_without_a_dimensionality_warning(make_napari_viewer, shared_data):
    """An EELS spectrum showed as a 1-pixel line with napari's scale-bar warning
    "mismatched dimensionality" (pixel against eV)."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.canvas.overlays.scale_bar.visible = True
    before = len(notification_manager.records)
    strip, plot = viewer.open(
        str(shared_data / "dm3" / "rsciio_1D_test-EELS_spectrum.dm3"), plugin="napari-mrcz"
    )
    messages = [str(record.message) for record in notification_manager.records[before:]]
    assert not [message for message in messages if "dimensionality" in message]
    assert type(plot).__name__ == "Shapes"
    top, bottom = (strip.data_to_world([row, 0])[0] for row in (-0.5, 0.5))
    assert bottom - top > 10 * strip.scale[1]  # many channels tall, not one


@pytest.mark.parametrize(
    ("folder", "name", "unit"),
    [
        ("dm3", "rsciio_2D_test_diffraction_pattern.dm3", "1 / nanometer"),
        ("dm3", "rsciio_1D_test-EELS_spectrum.dm3", "electron_volt"),
    ],
)
def test_non_length_axes_are_saved_with_pixel_size_0(
    make_napari_viewer, tmp_path, shared_data, folder, name, unit
):
    """A diffraction pattern (1/nm) and an EELS spectrum (eV) were saved with their
    scale as Angstrom; now the header has 0, the JSON meta the calibration, and the
    file opens again in its unit."""
    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_data / folder / name), plugin="napari-mrcz")[0]
    viewer.layers.selection = {layer}  # the image (a spectrum's plot is a drawing)
    with pytest.warns(napari_mrcz.MRCZWarning, match="not a length"):
        [saved] = viewer.layers.save(
            str(tmp_path / "saved.mrcz"), selected=True, plugin="napari-mrcz"
        )
    import mrcz

    _, meta = mrcz.readMRC(saved)
    assert meta["pixelsize"] == pytest.approx([0.0, 0.0, 0.0])
    assert meta["non_length_axes"]["x"]["unit"] == unit
    [again] = viewer.open(saved, plugin="napari-mrcz")
    assert [str(u) for u in again.units] == [unit, unit]
    np.testing.assert_allclose(again.scale, layer.scale)


def test_a_line_scan_fills_the_view_and_saves_its_own_calibration(make_napari_viewer, tmp_path):
    """It showed as a sliver (250 nm by 41 keV) with napari's "mismatched
    dimensionality" warning; the file saved keeps 25 A per position and the keV axis."""
    from napari.utils.notifications import notification_manager

    path, data = line_scan(tmp_path)
    viewer = make_napari_viewer()
    viewer.canvas.overlays.scale_bar.visible = True
    before = len(notification_manager.records)
    [layer] = viewer.open(str(path), plugin="napari-mrcz")
    messages = [str(record.message) for record in notification_manager.records[before:]]
    assert not [message for message in messages if "dimensionality" in message], messages
    (top, left), (bottom, right) = (layer.data_to_world(corner) for corner in ([0, 0], [99, 4095]))
    assert 0.4 < (bottom - top) / (right - left) < 0.6  # as DigitalMicrograph fills its window
    assert [str(unit) for unit in layer.units] == ["kiloelectron_volt"] * 2  # the bar reads keV
    [saved] = viewer.layers.save(str(tmp_path / "copy.mrcz"), selected=True, plugin="napari-mrcz")
    with mrcfile.open(saved, permissive=True) as mrc:
        assert float(mrc.voxel_size.y) == pytest.approx(25.0)
    meta = napari_mrcz.readMRC(saved)[1]
    assert pint.Unit(meta["non_length_axes"]["x"]["unit"]) == pint.Unit("keV")
    [copy] = viewer.open(saved, plugin="napari-mrcz")
    np.testing.assert_allclose(copy.scale, layer.scale, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(copy.data), data)
    layer.scale = (50.0, 0.01)  # the user's own calibration is the layer's
    viewer.layers.selection = {layer}
    [resaved] = viewer.layers.save(
        str(tmp_path / "mine.mrcz"), selected=True, plugin="napari-mrcz"
    )
    assert napari_mrcz.readMRC(resaved)[1]["non_length_axes"]["y"]["scale"] == 50.0


def test_scale_bar_reads_in_nm_and_pm(make_napari_viewer, tmp_path, rng):
    """Lengths are shown in nm, so napari's scale bar reads "125 nm" for a 512-pixel
    image at 10 Å, and "750 pm" zoomed in: never "kÅ" or "mÅ"."""
    path = tmp_path / "micrograph.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(512, 512)).astype(np.float32), path, pixelsize=10.0)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-mrcz")
    viewer.canvas.overlays.scale_bar.visible = True
    [bar] = viewer.window._qt_viewer.canvas._viewer_overlay_to_visual[
        viewer.canvas.overlays.scale_bar
    ]
    texts = [bar.node.text.text]
    viewer.camera.zoom = 200
    bar._on_size_or_zoom_change(force=True)
    texts.append(bar.node.text.text)
    assert texts[0].endswith(" nm"), texts
    assert texts[1].endswith(" pm"), texts
