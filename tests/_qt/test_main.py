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


def test_a_file_that_cannot_be_read_is_a_notification_and_the_others_open(
    monkeypatch, tmp_path, rng
):
    import numpy as np

    import napari_mrcz

    good = tmp_path / "good.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(3, 8, 8)).astype(np.float32), good)
    empty = tmp_path / "zero.mrc"
    empty.write_bytes(b"")
    missing = tmp_path / "gone.mrc"
    shown = []
    monkeypatch.setattr(napari, "run", lambda: None)
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)  # every notice
    main_module.main([str(empty), str(good), str(missing)])
    viewer = napari.current_viewer()
    try:
        assert [layer.name for layer in viewer.layers] == ["good.mrc"]
        too_short, gone = shown  # each once: the reader's reason, or napari's
        assert too_short.startswith("zero.mrc: too short for an MRC file: 0 bytes")
        assert too_short.endswith(f"(in {empty.parent})")
        assert str(missing) in gone
    finally:
        viewer.close()
