"""The Save as MRCZ panel never clobbers, never freezes, never crashes on closing;
in a real napari viewer under Xvfb."""

import io
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.codecs import AVAILABLE_CODECS

from tests.helpers import SHARED_DATA

pytest.importorskip("napari")
pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="a napari viewer needs a display (run under xvfb-run)"
)

from napari_mrcz._qt.save import SaveWidget  # noqa: E402  (after the skip: needs Qt)

#: The real "Replace file?" question (tests/_qt/conftest.py stubs it out otherwise).
REAL_CONFIRM_REPLACE = SaveWidget.confirm_replace


def _panel(viewer):
    _, save = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
    return save


def _debris(folder: pathlib.Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


def _slow_save(save, path) -> None:
    """zlib level 9 on noise: slow enough (about a second) to act during the save."""
    save.output.value = path
    save.codec.value = "zlib"
    save.level.value = 9
    save.threads.value = 1


def test_default_output_is_never_the_source_for_any_codec(make_napari_viewer, tmp_path, rng):
    """orig.mrc, codec none: the file box must not become orig.mrc."""
    source = tmp_path / "orig.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(3, 8, 8)).astype(np.float32), source, pixelsize=2.0)
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin="napari-mrcz")
    save = _panel(viewer)
    for codec in (*AVAILABLE_CODECS, "none", "zstd", "none"):
        save.codec.value = codec
        output = pathlib.Path(save.output.value)
        assert output != source, codec
        assert output.suffix == (".mrc" if codec == "none" else ".mrcz")
    second = tmp_path / "second.mrc"  # prefilled while codec is none
    napari_mrcz.writeMRC(rng.normal(size=(3, 8, 8)).astype(np.float32), second, pixelsize=2.0)
    viewer.open(str(second), plugin="napari-mrcz")
    assert pathlib.Path(save.output.value) == tmp_path / "second-saved.mrc"


def test_saving_onto_an_existing_file_asks_first(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, rng
):
    """Picking the source (or any existing file) asks; No keeps it, Yes replaces it."""
    source = tmp_path / "orig.mrc"
    original = rng.normal(size=(3, 8, 8)).astype(np.float32)
    napari_mrcz.writeMRC(original, source, pixelsize=2.0)
    source_bytes = source.read_bytes()
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(source), plugin="napari-mrcz")
    save = _panel(viewer)
    save.codec.value = "none"
    save.output.value = source
    questions = []
    monkeypatch.setattr(
        SaveWidget, "confirm_replace", lambda self, path: questions.append(path) or False
    )
    save.start_save()
    assert questions == [str(source)]
    assert not save.busy
    assert source.read_bytes() == source_bytes
    assert "kept" in save.status.value
    monkeypatch.setattr(
        SaveWidget, "confirm_replace", lambda self, path: questions.append(path) or True
    )
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert len(questions) == 2
    with mrcfile.open(source) as mrc:
        np.testing.assert_array_equal(mrc.data, np.asarray(layer.data))
    assert not _debris(tmp_path)


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_the_replace_question_is_a_real_dialog(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, rng, answer
):
    """The question is a modal QMessageBox naming the file, No by default."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    monkeypatch.setattr(SaveWidget, "confirm_replace", REAL_CONFIRM_REPLACE)
    target = tmp_path / "existing.mrcz"
    napari_mrcz.writeMRC(np.ones((2, 4, 4), np.float32), target, compressor="zstd")
    old_bytes = target.read_bytes()
    viewer = make_napari_viewer()
    data = rng.normal(size=(2, 4, 4)).astype(np.float32)
    viewer.add_image(data, name="new")
    save = _panel(viewer)
    save.output.value = target
    seen = {}

    def answer_it():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer_it)
            return
        seen["text"] = box.text()
        seen["default"] = box.defaultButton().text()
        button = (
            QMessageBox.StandardButton.Yes if answer == "Yes" else QMessageBox.StandardButton.No
        )
        box.button(button).click()

    QTimer.singleShot(20, answer_it)
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert "existing.mrcz already exists" in seen["text"]
    assert seen["default"].replace("&", "") == "No"
    if answer == "No":
        assert target.read_bytes() == old_bytes
    else:
        np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], data)


@pytest.mark.parametrize(
    ("codec", "typed", "written"),
    [
        ("zstd", "x.map", "x.mrcz"),
        ("zstd", "noext", "noext.mrcz"),
        ("lz4", "y.mrc", "y.mrcz"),
        ("none", "z.mrcz", "z.mrc"),
        ("none", "plain", "plain.mrc"),
        ("none", "keep.map", "keep.map"),
    ],
)
def test_the_suffix_follows_the_codec(
    make_napari_viewer, qtbot, tmp_path, rng, codec, typed, written
):
    """zstd with a .map name wrote MRCZ data under a plain suffix; a name without a
    suffix was written without one."""
    viewer = make_napari_viewer()
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    viewer.add_image(data, name="layer")
    save = _panel(viewer)
    save.codec.value = codec
    save.output.value = tmp_path / typed
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)
    assert os.listdir(tmp_path) == [written]
    assert pathlib.Path(save.output.value).name == written
    if codec == "none":
        report = io.StringIO()
        assert mrcfile.validate(str(tmp_path / written), print_file=report), report.getvalue()
        with mrcfile.open(tmp_path / written) as mrc:
            np.testing.assert_array_equal(mrc.data, data)
    else:
        import mrcz

        image, meta = mrcz.readMRC(str(tmp_path / written))
        np.testing.assert_array_equal(image, data)
        assert meta["compressor"] == codec


def test_the_save_runs_off_the_gui_thread_without_copying(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, rng
):
    """The type decision (a scan of the data) and the write run on the save's thread,
    on the layer's own array (no copy on the GUI thread); meanwhile
    the array is read-only and a Labels layer not paintable, so no edit reaches the
    file half-written; afterwards both are as before."""
    from napari_mrcz._napari import save_job

    calls = []
    real_write, real_dtype = save_job.write_array, save_job.mrc_dtype

    def write_array(data, *args, **kwargs):
        calls.append(("write", threading.current_thread() is threading.main_thread(), data))
        return real_write(data, *args, **kwargs)

    def mrc_dtype(data, *args, **kwargs):
        calls.append(("dtype", threading.current_thread() is threading.main_thread(), data))
        return real_dtype(data, *args, **kwargs)

    monkeypatch.setattr(save_job, "write_array", write_array)
    monkeypatch.setattr(save_job, "mrc_dtype", mrc_dtype)
    viewer = make_napari_viewer()
    labels = rng.integers(0, 300, size=(64, 64, 64)).astype(np.int64)
    layer = viewer.add_labels(labels.copy(), name="segmentation")
    save = _panel(viewer)
    _slow_save(save, tmp_path / "segmentation.mrcz")
    save.start_save()
    assert save.busy
    assert not layer.data.flags.writeable
    assert not layer.editable
    with pytest.raises(ValueError, match="read-only"):
        layer.data[0, 0, 0] = 7
    qtbot.waitUntil(lambda: not save.busy, timeout=60000)
    assert [(step, on_gui) for step, on_gui, _ in calls] == [("dtype", False), ("write", False)]
    assert all(data is layer.data for _, _, data in calls)
    assert layer.data.flags.writeable
    assert layer.editable
    np.testing.assert_array_equal(napari_mrcz.readMRC(tmp_path / "segmentation.mrcz")[0], labels)


@pytest.fixture
def paused_mid_save(monkeypatch):
    """Saves stop after their first run of slices (of several) until ``resume`` is set:
    closing napari then is sure to happen mid-save, whatever the machine's speed."""
    from napari_mrcz._napari import save_job

    reached, resume = threading.Event(), threading.Event()
    real_write = save_job.write_array

    def write_array(data, path, **kwargs):
        progress = kwargs["progress"]

        def paused(written, total):
            progress(written, total)
            if written < total and not reached.is_set():
                reached.set()
                resume.wait(60)

        return real_write(data, path, **{**kwargs, "progress": paused})

    monkeypatch.setattr(save_job, "write_array", write_array)
    return reached, resume


def _when_dialog(action):
    """Run ``action(dialog)`` once a QProgressDialog shows (polling the event loop)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QProgressDialog

    def look():
        dialogs = [
            widget
            for widget in QApplication.allWidgets()
            if isinstance(widget, QProgressDialog) and widget.isVisible()
        ]
        if dialogs:
            action(dialogs[0])
        else:
            QTimer.singleShot(10, look)

    QTimer.singleShot(0, look)


def test_closing_napari_during_a_save_finishes_it(
    make_napari_viewer, qtbot, tmp_path, rng, paused_mid_save
):
    """viewer.close() during a save of 64 slices (after its first run): a "please
    wait" dialog, the file complete, no debris, no exception from a deleted progress
    bar."""
    reached, resume = paused_mid_save
    viewer = make_napari_viewer()
    data = rng.normal(size=(64, 32, 32)).astype(np.float32)
    viewer.add_image(data, name="closing")
    save = _panel(viewer)
    save.output.value = tmp_path / "closing.mrcz"
    save.start_save()
    qtbot.waitUntil(reached.is_set, timeout=60000)
    shown = []

    def answer(dialog):
        shown.append(dialog.labelText())
        resume.set()

    _when_dialog(answer)
    viewer.close()
    assert len(shown) == 1
    assert "please wait" in shown[0]
    np.testing.assert_array_equal(napari_mrcz.readMRC(tmp_path / "closing.mrcz")[0], data)
    assert not _debris(tmp_path)


def test_cancel_while_napari_closes_leaves_nothing(
    make_napari_viewer, qtbot, tmp_path, rng, paused_mid_save
):
    """The "please wait" dialog's Cancel stops the save: no file, no debris."""
    from qtpy.QtWidgets import QPushButton

    reached, resume = paused_mid_save
    viewer = make_napari_viewer()
    viewer.add_image(rng.normal(size=(64, 32, 32)).astype(np.float32), name="closing")
    save = _panel(viewer)
    save.output.value = tmp_path / "closing.mrcz"
    save.start_save()
    qtbot.waitUntil(reached.is_set, timeout=60000)

    def cancel(dialog):
        [button] = [b for b in dialog.findChildren(QPushButton) if "Cancel" in b.text()]
        button.click()
        resume.set()

    _when_dialog(cancel)
    viewer.close()
    assert os.listdir(tmp_path) == []


CLOSE_DURING_SAVE = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication

    target = sys.argv[1]
    data = np.random.default_rng(17).normal(size=(64, 128, 128)).astype(np.float32)
    viewer = napari.Viewer(show=False)
    viewer.add_image(data, name="closing")
    _, save = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
    save.output.value = target
    save.codec.value = "zlib"
    save.level.value = 9
    save.threads.value = 1
    save.start_save()
    app = QApplication.instance()
    while save.progress.value < 16:
        app.processEvents()
        time.sleep(0.005)
    viewer.close()
    for _ in range(40):  # the app goes on (other windows): queued events arrive
        app.processEvents()
        time.sleep(0.01)
    print("closed")
    """
)


def test_closing_during_a_save_without_napari_exception_hook(tmp_path):
    """A process without napari's exception hook (a script, napari's own tests): the
    old panel aborted on the deleted progress bar and left .partial debris."""
    target = tmp_path / "closing.mrcz"
    result = subprocess.run(
        [sys.executable, "-c", CLOSE_DURING_SAVE, str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip().endswith("closed")
    assert "Saved closing.mrcz" in result.stdout  # napari's notification, told
    expected = np.random.default_rng(17).normal(size=(64, 128, 128)).astype(np.float32)
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], expected)
    assert not _debris(tmp_path)


def test_status_line_wraps_and_follows_the_layer(make_napari_viewer, qtbot, tmp_path, rng):
    """A long status does not widen napari's dock; switching layers clears it."""
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.add_image(rng.normal(size=(8, 8)).astype(np.float32), name="first")
    save = _panel(viewer)
    dock = save.native.parentWidget()
    while dock is not None and type(dock).__name__ != "QtViewerDockWidget":
        dock = dock.parentWidget()
    QApplication.processEvents()
    width = dock.width()
    save.status.value = "Could not save first.mrcz: " + "a long reason " * 40
    for _ in range(5):
        QApplication.processEvents()
    assert dock.width() == width
    viewer.add_image(rng.normal(size=(8, 8)).astype(np.float32), name="second")
    assert save.layer.value.name == "second"
    assert save.status.value == ""


def test_a_2d_layer_has_no_z_pixel_size(make_napari_viewer, rng):
    """A 2D image shows and edits only y, x."""
    viewer = make_napari_viewer()
    viewer.add_image(rng.normal(size=(8, 8)).astype(np.float32), scale=(0.5, 0.25), name="flat")
    save = _panel(viewer)
    assert save.size_z.native.isHidden()
    assert (save.size_y.value, save.size_x.value) == (0.5, 0.25)
    viewer.add_image(rng.normal(size=(2, 8, 8)).astype(np.float32), name="stack")
    assert not save.size_z.native.isHidden()


def test_axes_that_are_not_lengths_are_not_edited_as_angstrom(make_napari_viewer, tmp_path, rng):
    """A diffraction pattern in 1/nm: the boxes say so, the file gets 0."""
    viewer = make_napari_viewer()
    viewer.add_image(
        rng.normal(size=(8, 8)).astype(np.float32), scale=(0.081, 0.081), units="1/nm", name="fft"
    )
    save = _panel(viewer)
    assert not save.size_x.enabled
    assert "1/nm" in save.size_x.label
    assert save.options().pixelsize_zyx == (0.0, 0.0, 0.0)
    assert save.options().meta["non_length_axes"]["x"]["scale"] == 0.081


SCRIPT_ENDS_DURING_SAVE = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import napari

    target = sys.argv[1]
    data = np.random.default_rng(5).normal(size=(30, 512, 512)).astype(np.float32)
    viewer = napari.Viewer(show=False)
    viewer.add_image(data, name="ending")
    _, save = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
    save.output.value = target
    save.codec.value = "zlib"
    save.level.value = 9
    save.threads.value = 1
    save.start_save()
    time.sleep(0.3)
    print("script ends", flush=True)
    """
)


def test_a_script_that_ends_during_a_panel_save_gets_its_file(tmp_path):
    """The script's last line runs while the save is under way: Python waits for it."""
    target = tmp_path / "ending.mrcz"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT_ENDS_DURING_SAVE, str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "script ends" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    expected = np.random.default_rng(5).normal(size=(30, 512, 512)).astype(np.float32)
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], expected)
    assert not _debris(tmp_path)


def test_save_widget_is_prefilled_from_the_layer(make_napari_viewer, tmp_path, rng):
    viewer = make_napari_viewer()
    data = rng.normal(size=(4, 16, 16)).astype(np.float32)
    path = tmp_path / "tilt.mrcz"
    napari_mrcz.writeMRC(data, path, pixelsize=[3.0, 1.5, 1.25], compressor="zstd")
    viewer.open(str(path), plugin="napari-mrcz")
    save = _panel(viewer)
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
    save = _panel(viewer)
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
    save = _panel(viewer)
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
    save = _panel(viewer)
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
    save = _panel(viewer)
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


def _saved(save, qtbot):
    """Start a save from the panel and wait for it."""
    save.start_save()
    qtbot.waitUntil(lambda: not save.busy, timeout=30000)


def test_the_pixel_sizes_follow_the_layers_scale_and_units(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.ones((3, 8, 8), np.float32), name="map")
    save = _panel(viewer)
    assert save.size_x.value == pytest.approx(1.0)
    layer.scale = (2, 2, 2)
    assert (save.size_z.value, save.size_y.value, save.size_x.value) == pytest.approx((2, 2, 2))
    save.output.value = tmp_path / "map.mrcz"
    _saved(save, qtbot)
    with mrcfile.open(tmp_path / "map.mrcz", permissive=True, header_only=True) as handle:
        assert float(handle.voxel_size.x) == pytest.approx(2.0)
    layer.units = ("nm", "nm", "nm")
    assert save.options().pixelsize_zyx == pytest.approx((20.0, 20.0, 20.0))


def test_editing_one_pixel_box_in_micrometres_keeps_the_others_exact(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((8, 8), np.float32), scale=(0.666551, 0.666551), name="epu")
    save = _panel(viewer)
    save.unit.value = "µm"
    assert save.size_x.value == pytest.approx(6.66551e-05, rel=1e-9)  # shown, not rounded
    save.size_y.value = 0.00007
    _, y, x = save.options().pixelsize_zyx
    assert y == pytest.approx(0.7, rel=1e-9)
    assert x == 0.666551  # exactly: the box not edited keeps its value


def test_a_folder_as_the_file_saves_into_it_and_an_empty_box_disables_save(
    make_napari_viewer, tmp_path
):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((3, 8, 8), np.float32), name="tomogram")
    save = _panel(viewer)
    work = tmp_path / "work"
    work.mkdir()
    save.output.line_edit.value = str(work)
    assert save.options().path == str(work / "tomogram.mrcz")
    assert save.save_button.enabled
    save.output.line_edit.value = ""
    assert not save.save_button.enabled


def test_the_panel_follows_the_layer_list_and_says_what_it_cannot_save(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.ones((3, 8, 8), np.float32), name="stack")
    save = _panel(viewer)
    assert save.save_button.enabled
    viewer.layers.remove(layer)
    assert save.layer.value is None
    assert not save.save_button.enabled
    assert save.output.line_edit.value == ""
    assert "no Image or Labels layer" in save.status.value
    viewer.add_image(np.ones((3, 8, 8), np.float32), name="kept")
    rgb = viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="photo")
    assert save.layer.value is rgb  # the selection is followed, also to what cannot be saved
    assert not save.save_button.enabled
    assert save.status.value == (
        "photo cannot be saved: MRC holds no colour (RGB) images: split the channels first"
    )
    assert save.output.line_edit.value == ""
    shown = [save.layer.native.itemText(index) for index in range(save.layer.native.count())]
    assert "photo (cannot be saved)" in shown


def test_codec_none_keeps_json_out_of_plain_files_as_file_save_does(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((3, 8, 8), np.float32), name="noted", metadata={"note": "grid 3"})
    save = _panel(viewer)
    save.codec.value = "none"
    save.output.value = tmp_path / "noted.mrc"
    with pytest.warns(napari_mrcz.MRCZWarning, match="not saved in this plain MRC file"):
        _saved(save, qtbot)
    assert mrcfile.validate(str(tmp_path / "noted.mrc"), print_file=io.StringIO())


@pytest.mark.skipif(SHARED_DATA is None, reason="needs the real files of ../shared/data")
def test_a_dm_layer_saves_with_the_voltage_and_cs_mrcz_convert_keeps(
    make_napari_viewer, qtbot, tmp_path
):
    source = SHARED_DATA / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"
    converted = tmp_path / "converted.mrcz"
    subprocess.run(
        [sys.executable, "-m", "napari_mrcz.cli", "convert", str(source), str(converted)],
        check=True,
        capture_output=True,
    )
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin="napari-mrcz")
    save = _panel(viewer)
    save.output.value = tmp_path / "panel.mrcz"
    _saved(save, qtbot)
    panel_meta = mrcz.readMRC(str(tmp_path / "panel.mrcz"))[1]
    convert_meta = mrcz.readMRC(str(converted))[1]
    assert panel_meta["voltage"] == convert_meta["voltage"] == pytest.approx(200.0)
    assert panel_meta["C3"] == convert_meta["C3"] == pytest.approx(1.31)


@pytest.mark.skipif(SHARED_DATA is None, reason="needs the real files of ../shared/data")
def test_a_panel_save_keeps_the_fei_records_mrcz_convert_keeps(
    make_napari_viewer, qtbot, tmp_path
):
    """The EPU-style file's 888 KiB FEI2 extended header (HT, dose, defocus, stage)."""
    from napari_mrcz.mrc.layout import read_layout

    source = SHARED_DATA / "mrc" / "rsciio_HAADFscan.mrc"
    converted = tmp_path / "converted.mrcz"
    subprocess.run(
        [sys.executable, "-m", "napari_mrcz.cli", "convert", str(source), str(converted)],
        check=True,
        capture_output=True,
    )
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin="napari-mrcz")
    save = _panel(viewer)
    save.output.value = tmp_path / "panel.mrcz"
    _saved(save, qtbot)
    panel, convert = read_layout(tmp_path / "panel.mrcz"), read_layout(converted)
    assert (panel.exttyp, panel.nsymbt) == (convert.exttyp, convert.nsymbt) == ("FEI2", 909312)
    assert panel.read_extended_header() == convert.read_extended_header()


def test_a_dm_layer_saved_from_the_panel_reopens_over_its_original(
    make_napari_viewer, qtbot, tmp_path
):
    source = SHARED_DATA / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"
    viewer = make_napari_viewer()
    [original] = viewer.open(str(source), plugin="napari-mrcz")
    save = _panel(viewer)
    save.output.value = tmp_path / "panel.mrcz"
    _saved(save, qtbot)
    [copy] = viewer.open(str(tmp_path / "panel.mrcz"), plugin="napari-mrcz")
    np.testing.assert_array_equal(copy.affine.affine_matrix, original.affine.affine_matrix)
    np.testing.assert_allclose(copy.scale, original.scale, rtol=1e-6)


def test_the_panel_shows_a_line_scans_own_calibration(make_napari_viewer, tmp_path):
    """A line scan is shown with both axes in keV; the panel edits its file's 25 A."""
    from tests.dm.builder import line_scan

    path, _ = line_scan(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-mrcz")
    save = _panel(viewer)
    assert save._pixel_zyx[1:] == [pytest.approx(25.0), None]
