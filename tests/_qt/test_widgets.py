"""The dock widgets in a real napari viewer (needs a display: run under Xvfb)."""

import os
import pathlib

import numpy as np
import pytest

import napari_mrcz

from tests.helpers import REPO, SHARED_DATA

pytest.importorskip("napari")
pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="a napari viewer needs a display (run under xvfb-run)"
)

#: The README's screenshot, rewritten only when asked (NAPARI_MRCZ_SCREENSHOT=1), so
#: that a test run leaves the tree as it was.
SCREENSHOT = REPO / "docs" / "screenshot.png"


def _docks(viewer):
    _, save = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-mrcz", "MRC Metadata")
    return save, inspector


def _debris(folder: pathlib.Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


def test_save_widget_is_prefilled_from_the_layer(make_napari_viewer, tmp_path, rng):
    viewer = make_napari_viewer()
    data = rng.normal(size=(4, 16, 16)).astype(np.float32)
    path = tmp_path / "tilt.mrcz"
    napari_mrcz.writeMRC(data, path, pixelsize=[3.0, 1.5, 1.25], compressor="zstd")
    viewer.open(str(path), plugin="napari-mrcz")
    save, _ = _docks(viewer)
    assert save.layer.value is viewer.layers[0]
    assert (save.size_z.value, save.size_y.value, save.size_x.value) == pytest.approx(
        (3.0, 1.5, 1.25)
    )
    assert pathlib.Path(save.output.value) == tmp_path / "tilt-saved.mrcz"  # not the source
    save.unit.value = "nm"
    assert save.size_x.value == pytest.approx(0.125)
    assert save.options().pixelsize_zyx == pytest.approx((3.0, 1.5, 1.25))
    save.size_x.value = 0.12345  # nm, typed by the user
    save.unit.value = "µm"
    save.unit.value = "Å"
    assert save.options().pixelsize_zyx[2] == pytest.approx(1.2345, rel=1e-9)
    save.output.value = tmp_path / "mine.mrcz"
    viewer.add_points([[0, 0, 0]])  # another layer: the user's fields stay
    assert pathlib.Path(save.output.value) == tmp_path / "mine.mrcz"
    assert save.options().pixelsize_zyx[2] == pytest.approx(1.2345, rel=1e-9)
    viewer.add_image(np.zeros((8, 8), np.float32), scale=(0.2, 0.2), units="nm", name="other")
    assert save.layer.value.name == "other"
    assert save.size_x.value == pytest.approx(2.0)  # 0.2 nm, shown in Angstrom
    save.codec.value = "none"
    assert str(save.output.value).endswith("other.mrc")
    assert not save.level.enabled


def test_background_save_completes(make_napari_viewer, qtbot, tmp_path, rng):
    import mrcz

    viewer = make_napari_viewer()
    data = rng.poisson(1.0, size=(12, 64, 64)).astype(np.int8)
    viewer.add_image(
        data, scale=(2.0, 1.0, 1.0), units="angstrom", name="movie", metadata={"dose": 0.8}
    )
    save, _ = _docks(viewer)
    save.output.value = tmp_path / "movie.mrcz"
    from napari.utils.notifications import notification_manager

    before = len(notification_manager.records)
    steps = []
    save.start_save()
    assert save.busy
    save._save.signals.progressed.connect(lambda written, total: steps.append(written))
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert steps[-1] == 12  # the last slice is always reported
    assert steps == sorted(steps)
    image, meta = mrcz.readMRC(str(tmp_path / "movie.mrcz"))
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [2.0, 1.0, 1.0])
    assert meta["dose"] == 0.8
    assert "compression ratio" in save.status.value
    told = [str(record.message) for record in notification_manager.records[before:]]
    assert [message for message in told if message.startswith("Saved movie.mrcz")]
    assert not _debris(tmp_path)


def test_edits_during_a_save_do_not_reach_the_file(make_napari_viewer, qtbot, tmp_path, rng):
    """The layer's array is read-only while it is saved (no copy is made): an edit
    fails instead of reaching the file; afterwards the layer is editable again."""
    viewer = make_napari_viewer()
    data = rng.normal(size=(20, 128, 128)).astype(np.float32)
    layer = viewer.add_image(data.copy(), name="live")
    save, _ = _docks(viewer)
    save.output.value = tmp_path / "snapshot.mrcz"
    save.start_save()
    with pytest.raises(ValueError, match="read-only"):
        layer.data[:] = 0
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    np.testing.assert_array_equal(napari_mrcz.readMRC(tmp_path / "snapshot.mrcz")[0], data)
    layer.data[:] = 0


def test_cancelled_save_leaves_nothing(make_napari_viewer, qtbot, monkeypatch, tmp_path, rng):
    from napari_mrcz._qt.save import SaveWidget

    monkeypatch.setattr(SaveWidget, "confirm_replace", lambda self, path: True)
    viewer = make_napari_viewer()
    viewer.add_image(rng.normal(size=(300, 128, 128)).astype(np.float32), name="big")
    old = tmp_path / "big.mrcz"
    napari_mrcz.writeMRC(np.ones((2, 4, 4), np.float32), old, compressor="zstd")
    old_bytes = old.read_bytes()
    save, _ = _docks(viewer)
    save.output.value = old
    save.start_save()
    job = save._save.job
    save.cancel_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert job.wait(0)
    assert old.read_bytes() == old_bytes
    assert not _debris(tmp_path)
    assert "cancelled" in save.status.value


def test_failed_save_is_a_notification_not_a_crash(make_napari_viewer, qtbot, tmp_path, rng):
    viewer = make_napari_viewer()
    viewer.add_image(rng.normal(size=(3, 8, 8)).astype(np.float32), name="img")
    save, _ = _docks(viewer)
    save.output.value = tmp_path / "no such folder" / "img.mrcz"
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert save.status.value.startswith("Could not save img.mrcz")
    assert not (tmp_path / "no such folder").exists()
    viewer.add_image(rng.normal(size=(4, 8, 8, 3)).astype(np.float32), name="rgb", rgb=True)
    assert "rgb" not in [name for name, _ in save._layer_choices()]
    viewer.add_image(np.zeros((2, 2, 4, 4), np.float32), name="4d")
    save.layer.value = viewer.layers["4d"]
    save.start_save()
    assert not save.busy
    assert "2D images and 3D stacks" in save.status.value


def test_inspector_follows_the_selection(make_napari_viewer, tmp_path, rng):
    viewer = make_napari_viewer()
    path = tmp_path / "with_meta.mrcz"
    napari_mrcz.writeMRC(
        rng.normal(size=(3, 8, 8)).astype(np.float32),
        path,
        compressor="zstd",
        meta={"microscope": {"voltage": 300}},
    )
    [from_file] = viewer.open(str(path), plugin="napari-mrcz")
    plain = viewer.add_image(np.zeros((5, 6, 7), np.float64), name="plain", scale=(1, 2, 3))
    _, inspector = _docks(viewer)
    viewer.layers.selection.active = from_file
    assert inspector.report.title == "with_meta.mrcz"
    facts = dict(inspector.report.facts)
    assert facts["compression"] == "zstd"
    assert "compression ratio" in facts
    fields = {
        inspector.table.item(row, 0).text(): inspector.table.item(row, 1).text()
        for row in range(inspector.table.rowCount())
    }
    assert fields["nz"] == "3"
    assert fields["exttyp"] == "json"
    inspector.search.setText("voltage")
    visible = []
    iterator_root = inspector.tree.invisibleRootItem()
    stack = [iterator_root.child(index) for index in range(iterator_root.childCount())]
    while stack:
        item = stack.pop()
        if not item.isHidden():
            visible.append(item.text(0))
        stack.extend(item.child(index) for index in range(item.childCount()))
    assert "voltage" in visible
    viewer.layers.selection.active = plain
    assert inspector.report.title == "plain"
    plain.scale = (4, 5, 6)
    assert dict(inspector.report.facts)["pixel size (z, y, x)"] == "4, 5, 6 Å"
    assert "would write" in inspector.report.origin
    fields = {
        inspector.table.item(row, 0).text(): inspector.table.item(row, 1).text()
        for row in range(inspector.table.rowCount())
    }
    assert fields["mode"] == "6002"  # float64 is written as float32 (mode 2), zstd (6)
    inspector.table.selectRow(0)
    inspector.copy_value()
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == fields["nx"]
    inspector.copy_all()
    assert '"layer": "plain"' in QApplication.clipboard().text()


def test_screenshot_with_both_docks(make_napari_viewer, qtbot, tmp_path):
    """The README's screenshot: napari with both docks on a real cryo-EM map.

    Written to a temporary folder, or to docs/ with NAPARI_MRCZ_SCREENSHOT=1.
    """
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is not available")
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.open(str(SHARED_DATA / "mrc" / "ngl_betaGal.mrc"), plugin="napari-mrcz")
    viewer.canvas.overlays.scale_bar.visible = True
    _docks(viewer)
    viewer.window._qt_window.resize(1500, 950)
    for _ in range(10):
        QApplication.processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    assert image.shape[0] > 500
    assert image.shape[1] > 800
    assert image[..., :3].std() > 10  # not a blank window
    import imageio.v3 as iio

    target = SCREENSHOT if os.environ.get("NAPARI_MRCZ_SCREENSHOT") == "1" else tmp_path / "s.png"
    iio.imwrite(target, image)
    assert iio.imread(target).shape == image.shape


def test_inspector_shows_a_2d_image_in_y_and_x_only(make_napari_viewer, tmp_path, rng):
    """An EPU-like micrograph: no invented z pixel size."""
    path = tmp_path / "micrograph.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(8, 6)).astype(np.float32), path, pixelsize=0.667)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-mrcz")
    _, inspector = _docks(viewer)
    facts = dict(inspector.report.facts)
    assert facts["pixel size (y, x)"] == "0.667, 0.667 Å"
    assert not [name for name in facts if "z" in name.split("(")[-1]]


def test_inspector_labels_non_length_axes_in_their_unit(make_napari_viewer, shared_data):
    """A diffraction pattern in 1/nm was labelled Å."""
    viewer = make_napari_viewer()
    viewer.open(
        str(shared_data / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"), plugin="napari-mrcz"
    )
    _, inspector = _docks(viewer)
    assert dict(inspector.report.facts)["pixel size (y, x)"] == "0.1744 1/nm, 0.1744 1/nm"


def test_copy_value_of_a_tree_node_copies_its_subtree(make_napari_viewer, tmp_path, rng):
    """ "Copy value" on a node copied "14 entries"; it copies the node's JSON."""
    import json

    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    path = tmp_path / "with_meta.mrcz"
    microscope = {"voltage": 300, "cs": 2.7, "detector": {"name": "K3", "mode": "counting"}}
    napari_mrcz.writeMRC(
        rng.normal(size=(2, 4, 4)).astype(np.float32),
        path,
        compressor="zstd",
        meta={"microscope": microscope},
    )
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-mrcz")
    _, inspector = _docks(viewer)
    [node] = inspector.tree.findItems("microscope", Qt.MatchFlag.MatchRecursive)
    assert node.text(1) == "3 entries"
    inspector.tree.setFocus()
    inspector.tree.setCurrentItem(node)
    inspector.copy_value()
    assert json.loads(QApplication.clipboard().text()) == microscope
    [leaf] = inspector.tree.findItems("name", Qt.MatchFlag.MatchRecursive)
    inspector.tree.setCurrentItem(leaf)
    inspector.copy_value()
    assert QApplication.clipboard().text() == "K3"
