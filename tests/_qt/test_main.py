"""``python -m napari_mrcz`` (the README's main job): napari with a sample, no noise."""

import warnings

import pytest

napari = pytest.importorskip("napari")

from napari_mrcz import __main__ as main_module  # noqa: E402


def test_the_main_job_shows_a_sample_with_a_scale_bar_and_no_warning(monkeypatch):
    monkeypatch.setattr(napari, "run", lambda: None)  # the event loop: not in a test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main_module.main([])
    viewer = napari.current_viewer()
    try:
        assert [layer.name for layer in viewer.layers]
        assert viewer.canvas.overlays.scale_bar.visible
        # A warning about our call points at our code or, a level up, at its caller.
        ours = [w for w in caught if "napari_mrcz" in w.filename or w.filename == __file__]
        assert ours == [], [str(w.message) for w in ours]
    finally:
        viewer.close()
