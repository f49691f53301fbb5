"""The Save as MRCZ panel's counts + gain option and the inspector's gain facts, in a
real napari viewer (needs a display: run under Xvfb)."""

import os

import numpy as np
import pytest

import napari_mrcz

from tests.helpers import gain_normalised_movie

pytest.importorskip("napari")
pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="a napari viewer needs a display (run under xvfb-run)"
)

#: Where the test leaves a picture of the panels, to look at.
SCREENSHOT = os.environ.get("NAPARI_MRCZ_UNGAIN_SCREENSHOT")


def test_a_float32_movie_is_saved_as_counts_and_gain(make_napari_viewer, qtbot, tmp_path, rng):
    viewer = make_napari_viewer(show=bool(SCREENSHOT))
    movie, counts, gain = gain_normalised_movie(rng, (40, 64, 64))
    viewer.add_image(rng.poisson(1.0, (6, 64, 64)).astype(np.int8), name="counts")
    _, save = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
    assert not save.ungain.enabled  # int8: nothing to separate
    viewer.add_image(movie, name="movie", scale=(1.0, 0.8, 0.8), units="angstrom")
    assert save.layer.value.name == "movie"
    assert save.ungain.enabled
    assert not save.ungain.value  # off by default
    save.ungain.value = True
    save.output.value = tmp_path / "movie.mrcz"
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=60000)
    assert "against float32" in save.status.value
    assert "gain-separated: int8 counts x gain_" in save.status.value
    stored, _ = napari_mrcz.readMRC(tmp_path / "movie.mrcz", counts=True)
    np.testing.assert_array_equal(stored, counts)
    np.testing.assert_array_equal(
        napari_mrcz.read_gain_reference(tmp_path / "movie.mrcz").view(np.uint32),
        gain.view(np.uint32),
    )
    ratio = float(save.status.value.split("compression ratio ")[1].split("x")[0])
    files = os.listdir(tmp_path)
    assert ratio == pytest.approx(
        movie.nbytes / sum(os.path.getsize(tmp_path / name) for name in files), rel=0.01
    )

    viewer.open(str(tmp_path / "movie.mrcz"), plugin="napari-mrcz")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-mrcz", "MRC Metadata")
    facts = dict(inspector.report.facts)
    gain_file = next(name for name in files if name.startswith("gain_"))
    assert facts["gain-separated"] == f"int8 counts x {gain_file}"
    assert facts["gain"] == "estimated from movie.mrcz"
    assert viewer.layers[-1].data.dtype == np.float32
    if SCREENSHOT:
        from qtpy.QtWidgets import QApplication

        viewer.window._qt_window.resize(1500, 950)
        for _ in range(10):
            QApplication.processEvents()
        import imageio.v3 as iio

        iio.imwrite(SCREENSHOT, viewer.screenshot(canvas_only=False, flash=False))
