"""The MRC Metadata dock in a real napari viewer, beside the Save dock (needs a display:
run under Xvfb)."""

import os

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


def test_the_header_table_fits_its_dock_and_tells_each_meaning_whole(
    make_napari_viewer, qtbot, tmp_path, rng
):
    """The meaning column was cut off behind a sideways scroll bar."""
    path = tmp_path / "map.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(3, 8, 8)).astype(np.float32), path)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-mrcz")
    _, inspector = _docks(viewer)
    qtbot.waitUntil(lambda: inspector.table.rowCount() > 0)
    table = inspector.table
    assert table.horizontalScrollBar().maximum() == 0
    meanings = [table.item(row, 2) for row in range(table.rowCount())]
    assert all(item.toolTip() == item.text() for item in meanings if item is not None)
    assert any(item.text() for item in meanings if item is not None)
