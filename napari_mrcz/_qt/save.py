"""The "Save as MRCZ" dock widget: options, a background save, progress, cancel, close.

The save runs on a thread of its own (:class:`~napari_mrcz._napari.save_job.SaveJob`);
this module only starts it, shows its progress and outcome, asks before replacing a
file, and makes napari wait for it (with a visible "please wait") when napari closes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QEvent, QEventLoop, QObject, Qt, Signal, Slot
from qtpy.QtWidgets import QApplication, QMessageBox, QProgressDialog, QSizePolicy, QWidget

from napari_mrcz._napari.layers import (
    check_savable,
    json_meta,
    layer_calibration,
    layer_geometry,
    microscope_values,
    shown_rows_top_down,
    unit_label,
)
from napari_mrcz._napari.save_job import (
    NO_COMPRESSION,
    PIXEL_UNITS,
    ReadOnlyWhileSaving,
    SaveCancelledError,
    SaveJob,
    SaveOptions,
    SaveResult,
    default_output_path,
    expect_statistics,
    layer_source,
    output_path,
    unit_factor,
)
from napari_mrcz._napari.ungain_job import SeparatedSaveJob, can_separate
from napari_mrcz._napari.writer import meta_for_file, writer_settings
from napari_mrcz.mrc.codecs import AVAILABLE_CODECS
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES
from napari_mrcz.threads import default_threads

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

#: Enough for 0.8 Angstrom shown in micrometres.
PIXEL_SIZE_DECIMALS = 6
#: While napari closes during a save: how often the "please wait" dialog is updated.
WAIT_STEP = 0.02
WAIT_MS = 20


class _SaveSignals(QObject):
    """Carries a save's progress and outcome from its thread to the GUI thread."""

    progressed = Signal(int, int)
    done = Signal(object)


class _PanelReceiver(QObject):
    """The panel's end of a save's signals: a child of the panel's widget, so Qt drops
    the connections when napari deletes the panel (on closing); and nothing reaches
    the panel's widgets once napari has begun deleting them."""

    def __init__(self, panel: SaveWidget, parent: QWidget) -> None:
        super().__init__(parent)
        self.panel = panel
        self.gone = False
        parent.destroyed.connect(self._gone)

    def _gone(self, _object: Any = None) -> None:
        self.gone = True

    @Slot(int, int)
    def progressed(self, written: int, _total: int) -> None:
        self._update(lambda: setattr(self.panel.progress, "value", written))

    @Slot(object)
    def done(self, outcome: Any) -> None:
        self._update(lambda: self.panel._finished(outcome))

    def _update(self, change: Callable[[], None]) -> None:
        if self.gone:
            return
        try:
            change()
        except RuntimeError as error:  # a widget already deleted: the panel is closing
            self.gone = True
            logger.debug("save panel closed meanwhile: %s", error)


class _CloseWatcher(QObject):
    """Holds napari's window closing until a save ends (an event filter on the window)."""

    def __init__(self, save: BackgroundSave, window: QWidget) -> None:
        super().__init__(window)
        self.save = save

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Close:
            try:
                self.save.finish_before_close(watched)
            except Exception:  # never into Qt: without napari's hook that aborts
                logger.exception("could not wait for the save while napari closes")
        return False  # napari goes on closing


def _top_window(widget: QWidget) -> QWidget:
    """napari's main window: the root of ``widget``'s parents (a floating dock's too)."""
    while widget.parentWidget() is not None:
        widget = widget.parentWidget()
    return widget


class BackgroundSave:
    """One save: its job, its read-only hold on the layer, its wait when napari closes.

    Lives apart from the panel, so that a save outlives the panel's widgets (napari
    deletes them on closing): the outcome is notified and the layer given back even
    then. Running saves are kept in :attr:`running` until their outcome arrives.
    """

    running: ClassVar[set[BackgroundSave]] = set()

    def __init__(self, job: SaveJob, hold: ReadOnlyWhileSaving) -> None:
        self.job = job
        self.hold = hold
        self.signals = _SaveSignals()
        self.signals.done.connect(self._done)
        self.finished = False
        self._watcher: _CloseWatcher | None = None
        self._window: QWidget | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.job.options.path)

    def start(self, panel: QWidget) -> None:
        """Start the job; napari's window, when it closes meanwhile, waits for it.

        Call it once the panel has connected to :attr:`signals`.
        """
        self.signals.done.connect(self._notify)
        BackgroundSave.running.add(self)
        self._window = _top_window(panel)
        self._watcher = _CloseWatcher(self, self._window)
        self._window.installEventFilter(self._watcher)
        self.job.start(self.signals.progressed.emit, self.signals.done.emit)

    def _done(self, _outcome: Any) -> None:
        """The job ended (GUI thread): give the layer back."""
        self.finished = True
        if self._watcher is not None:
            self._window.removeEventFilter(self._watcher)
            self._watcher.deleteLater()
            self._watcher = None
        self.hold.release()

    def _notify(self, outcome: Any) -> None:
        """Say how it went (after the panel's own update: a toast is slow to draw).

        The last of the outcome's slots: only now may the save be forgotten (Qt keeps
        no strong reference to the slots of a plain Python object).
        """
        from napari.utils.notifications import show_error, show_info, show_warning

        BackgroundSave.running.discard(self)
        if isinstance(outcome, SaveResult):
            show_info(outcome.summary())
            if outcome.cast_to is not None:
                show_warning(
                    f"MRC has no type for the layer's data: {self.name} holds {outcome.cast_to}"
                )
        elif isinstance(outcome, SaveCancelledError):
            show_info("save cancelled; nothing was written")
        else:
            show_error(f"Could not save {self.name}: {outcome}")

    def finish_before_close(self, window: QObject) -> None:
        """Wait for the save while napari closes, with a visible "please wait".

        The dialog's Cancel stops the save instead; either way no temporary file
        remains, and nothing of the panel (which napari deletes next) is used.
        """
        if not self.job.running:
            return
        dialog = QProgressDialog(
            f"Saving {self.name} before napari closes: please wait.\n"
            "Cancel stops the save (nothing is written then).",
            "Cancel save",
            0,
            self.job.total,
            window if isinstance(window, QWidget) else None,
        )
        dialog.setWindowTitle("napari MRCZ")
        dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(self.job.written)
        dialog.canceled.connect(self.job.cancel)
        dialog.show()
        # Not a nested event loop: napari has scheduled deletions (deleteLater) of its
        # own widgets that it still uses after this event; processEvents leaves them.
        while not self.job.wait(WAIT_STEP):
            if dialog.wasCanceled():  # its button, Escape, or its window's close
                self.job.cancel()
            dialog.setValue(self.job.written)
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, WAIT_MS)
        dialog.close()
        dialog.deleteLater()


class SaveWidget(Container):
    """Save a layer as MRCZ (or plain MRC) in the background.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose Image and Labels layers are offered.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        settings = writer_settings()
        cores = default_threads()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="layer", choices=self._layer_choices)
        self.output = FileEdit(label="file", mode="w", filter="*.mrcz *.mrc")
        self.codec = ComboBox(
            label="codec",
            choices=[*AVAILABLE_CODECS, NO_COMPRESSION],
            value=settings["codec"]
            if settings["codec"] in (*AVAILABLE_CODECS, NO_COMPRESSION)
            else "zstd",
            tooltip="blosc codec; 'none' writes plain MRC2014",
        )
        self.level = SpinBox(
            label="level",
            min=1,
            max=9,
            value=int(settings["level"]),
            tooltip="1 is fastest; higher levels compress a little more",
        )
        self.threads = SpinBox(
            label="threads", min=1, max=cores, value=min(cores, int(settings["threads"]) or cores)
        )
        self.ungain = CheckBox(
            text="counts + gain (float32 movies)",
            value=False,
            tooltip="Store a gain-normalised float32 movie as its integer electron counts "
            "and its gain reference (estimated from the movie, saved beside the file): about "
            "ten times smaller, checked bit for bit. A movie that is not gain x whole counts "
            "is saved as float32.",
        )
        self.size_x = FloatSpinBox(label="pixel x", min=0.0, max=1e9, step=0.01, value=1.0)
        self.size_y = FloatSpinBox(label="pixel y", min=0.0, max=1e9, step=0.01, value=1.0)
        self.size_z = FloatSpinBox(label="pixel z", min=0.0, max=1e9, step=0.01, value=1.0)
        for box in (self.size_x, self.size_y, self.size_z):
            box.native.setDecimals(PIXEL_SIZE_DECIMALS)
        self.unit = ComboBox(label="unit", choices=list(PIXEL_UNITS), value="Å")
        self.save_button = PushButton(text="Save")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0, visible=False)
        self.status = Label(value="")
        # A long message wraps instead of widening napari's dock.
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        super().__init__(
            widgets=[
                self.layer,
                self.output,
                self.codec,
                self.level,
                self.threads,
                self.ungain,
                self.size_z,
                self.size_y,
                self.size_x,
                self.unit,
                self.save_button,
                self.cancel_button,
                self.progress,
                self.status,
            ]
        )
        self._save: BackgroundSave | None = None
        self._receiver = _PanelReceiver(self, self.native)
        self._prefilled_for: Any = None
        self._showing = False
        self._choosing = False
        self._confirmed_path: str | None = None
        self._pixel_boxes = (self.size_z, self.size_y, self.size_x)
        self._pixel_zyx: list[float | None] = [1.0, 1.0, 1.0]  # Angstrom; None: not a length
        for index, box in enumerate(self._pixel_boxes):
            box.changed.connect(partial(self._pixel_edited, index))
        self._watched: Any = None  # the layer whose scale and units the panel follows
        self.layer.changed.connect(self._layer_changed)
        self.unit.changed.connect(self._unit_changed)
        self.codec.changed.connect(self._codec_changed)
        self.output.choose_btn.native.pressed.connect(self._choosing_started)
        self.output.changed.connect(self._output_changed)
        self.output.choose_btn.changed.connect(self._choosing_ended)
        self.output.line_edit.changed.connect(self._output_typed)
        self.save_button.changed.connect(self.start_save)
        self.cancel_button.changed.connect(self.cancel_save)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._follow_selection)
        self._refresh_layers()
        active = self.viewer.layers.selection.active
        if active is not None and active in [layer for _, layer in self._layer_choices()]:
            self.layer.value = active

    # ------------------------------------------------------------------ layers
    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """The Image and Labels layers; one MRC cannot hold is named with the reason."""
        from napari.layers import Image, Labels

        return [
            (
                layer.name if _unsavable(layer) is None else f"{layer.name} (cannot be saved)",
                layer,
            )
            for layer in self.viewer.layers
            if isinstance(layer, (Image, Labels))
        ]

    def _refresh_layers(self, _event: Any = None) -> None:
        """Offer the current layers; the fields change only if the chosen layer did."""
        self.layer.reset_choices()
        if self.layer.value is not self._prefilled_for:
            self._layer_changed(self.layer.value)

    def _follow_selection(self, event: Any) -> None:
        active = event.value
        if active is not None and active in [layer for _, layer in self._layer_choices()]:
            self.layer.value = active

    def _layer_changed(self, layer: Any) -> None:
        """Pre-fill the file name and pixel size from the chosen layer, and follow it."""
        self._prefilled_for = layer
        self._follow_layer(layer)
        unsavable = None if layer is None else _unsavable(layer)
        self.ungain.enabled = (
            layer is not None
            and unsavable is None
            and can_separate(layer.data[0] if layer.multiscale else layer.data)
        )
        if not self.ungain.enabled:
            self.ungain.value = False
        if not self.busy:
            self.status.value = ""  # about the layer shown before
            if layer is None:
                self.status.value = "no Image or Labels layer to save"
            elif unsavable is not None:
                self.status.value = f"{layer.name} cannot be saved: {unsavable}"
        self._update_save_button()
        if layer is None or unsavable is not None:
            self.output.line_edit.value = ""  # not the file of another layer
            for box in self._pixel_boxes:
                box.enabled = False
            return
        expect_statistics(layer.data[0] if layer.multiscale else layer.data)
        self.output.value = default_output_path(layer, self.codec.value)
        self._fill_pixel_sizes(layer)

    def _follow_layer(self, layer: Any) -> None:
        """Listen to ``layer``'s scale and units (and no longer to the layer before)."""
        if self._watched is not None:
            for name in ("scale", "units"):
                emitter = getattr(self._watched.events, name, None)
                if emitter is not None:
                    emitter.disconnect(self._calibration_changed)
        self._watched = layer
        if layer is not None:
            for name in ("scale", "units"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    emitter.connect(self._calibration_changed)

    def _calibration_changed(self, _event: Any = None) -> None:
        """The layer's scale or units changed: the pixel sizes shown (and saved) follow."""
        if self._watched is not None and _unsavable(self._watched) is None:
            self._fill_pixel_sizes(self._watched)

    def _fill_pixel_sizes(self, layer: Any) -> None:
        """The pixel boxes from the layer's calibration."""
        axes = layer_calibration(layer)
        self.size_z.visible = len(axes) == 3  # a 2D image has no z pixel size
        axes = (axes[0], *axes) if len(axes) == 2 else axes  # z of a 2D image: its y
        self._pixel_zyx = [axis.angstrom for axis in axes]
        for box, axis in zip(self._pixel_boxes, axes, strict=True):
            box.enabled = axis.is_length
            box.label = (
                f"pixel {axis.name}"
                if axis.is_length
                else f"pixel {axis.name} ({unit_label(axis.unit)}: saved as 0)"
            )
            box.tooltip = (
                None
                if axis.is_length
                else f"{axis.describe()} is not a length: the header gets 0, "
                "the JSON meta keeps the calibration"
            )
        self._show_pixel_size()

    def _show_pixel_size(self) -> None:
        """Show the pixel size (kept in Angstrom) in the chosen unit.

        The boxes get as many more decimals as the unit is larger than an Angstrom
        (0.666551 Å shows as 0.0000666551 µm); what they show never changes the
        value kept.
        """
        factor = unit_factor(self.unit.value)
        decimals = PIXEL_SIZE_DECIMALS + max(0, round(-math.log10(factor)))
        self._showing = True
        try:
            for box, size in zip(self._pixel_boxes, self._pixel_zyx, strict=True):
                box.native.setDecimals(decimals)
                box.value = 0.0 if size is None else size * factor
        finally:
            self._showing = False

    def _pixel_edited(self, index: int, value: Any = None) -> None:
        """The user typed one pixel size: keep it, in Angstrom; the others stay exact."""
        if not self._showing and self._pixel_zyx[index] is not None:
            self._pixel_zyx[index] = float(self._pixel_boxes[index].value) / unit_factor(
                self.unit.value
            )

    def _unit_changed(self, _unit: str) -> None:
        self._show_pixel_size()

    def _codec_changed(self, codec: str) -> None:
        """Keep the file's suffix in step with compression (.mrcz, or a plain one)."""
        path = output_path(str(self.output.value), codec)
        source = layer_source(self.layer.value) if self.layer.value is not None else None
        if source and os.path.abspath(path) == os.path.abspath(source):
            path = default_output_path(self.layer.value, codec)  # never the source
        self.output.value = path
        self.level.enabled = codec != NO_COMPRESSION

    # ----------------------------------------------------------- file choosing
    def _choosing_started(self) -> None:
        self._choosing = True

    def _output_changed(self, value: Any) -> None:
        # Qt's save dialog asked already before returning an existing file.
        if self._choosing and os.path.exists(os.fspath(value)):
            self._confirmed_path = os.path.abspath(os.fspath(value))

    def _choosing_ended(self, _value: Any = None) -> None:
        self._choosing = False

    def _output_typed(self, _value: Any = None) -> None:
        self._update_save_button()

    def _update_save_button(self) -> None:
        """Save is possible with a savable layer, a file name, and no save running."""
        layer = self.layer.value
        self.save_button.enabled = (
            not self.busy
            and layer is not None
            and _unsavable(layer) is None
            and bool(self.output.line_edit.value.strip())
        )

    def _target(self, layer: Any) -> str:
        """The file to write: the box's, or in a folder it names, the layer's name there."""
        given = os.path.expanduser(self.output.line_edit.value.strip())
        if os.path.isdir(given):
            given = os.path.join(
                given, os.path.basename(default_output_path(layer, self.codec.value))
            )
        return output_path(given, self.codec.value)

    def confirm_replace(self, path: str) -> bool:
        """Ask whether to replace the existing file ``path`` (No is the default)."""
        box = QMessageBox(self.native)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Replace file?")
        box.setText(f"{os.path.basename(path)} already exists. Replace it?")
        box.setInformativeText(
            f"In {os.path.dirname(path)}. Saving replaces its contents "
            "once the new file is complete."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        return box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes

    # -------------------------------------------------------------------- save
    def options(self) -> SaveOptions:
        """The save options as the controls show them (pixel size in Angstrom)."""
        layer = self.layer.value
        metadata = layer.metadata if layer is not None else {}
        geometry = layer_geometry(layer) if layer is not None else None
        path = self._target(layer) if layer is not None else ""
        layer_meta = {**json_meta(metadata), **(geometry.meta() if geometry else {})}
        return SaveOptions(
            path=path,
            codec=self.codec.value,
            level=int(self.level.value),
            threads=int(self.threads.value),
            pixelsize_zyx=tuple(size or 0.0 for size in self._pixel_zyx),
            origin_zyx=tuple(geometry.origin_zyx) if geometry else (0.0, 0.0, 0.0),
            # File > Save's rule: no JSON in plain MRC unless the preference says so
            meta=meta_for_file(path, layer_meta, bool(writer_settings()["json_in_plain"])) or {},
            microscope=microscope_values(metadata),
            source_metadata=metadata,
            rows_top_down=shown_rows_top_down(layer.affine),
        )

    def _refuse(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status.value = message
        show_error(message)

    def start_save(self, _value: Any = None) -> None:
        """Check the target, then write the layer on a thread of its own."""
        from napari.utils.notifications import show_warning

        layer = self.layer.value
        if layer is None or self.busy or not self.save_button.enabled:
            return
        options = self.options()
        name = os.path.basename(options.path)
        renamed = ""
        if options.path != os.fspath(self.output.value):
            self.output.value = options.path  # the suffix the codec needs, shown
            renamed = (
                f" (MRCZ files end in {COMPRESSED_SUFFIX})"
                if options.compressed
                else f" (plain MRC files end in {', '.join(PLAIN_SUFFIXES)})"
            )
        try:
            data = check_savable(
                layer.data, {"multiscale": layer.multiscale, "rgb": getattr(layer, "rgb", False)}
            )
        except ValueError as error:
            self._refuse(f"Cannot save {layer.name}: {error}")
            return
        folder = os.path.dirname(os.path.abspath(options.path))
        if not os.path.isdir(folder):
            self._refuse(f"Could not save {name}: the folder {folder} does not exist")
            return
        if os.path.isdir(options.path):
            self._refuse(f"Could not save {name}: {options.path} is a folder")
            return
        if (
            os.path.exists(options.path)
            and os.path.abspath(options.path) != self._confirmed_path
            and not self.confirm_replace(options.path)
        ):
            self.status.value = f"not saved: {name} exists and was kept"
            return
        self._confirmed_path = None
        geometry = layer_geometry(layer)
        message = geometry.warning(layer.name)
        if message is not None:
            show_warning(message)
        job = (SeparatedSaveJob if self.ungain.value and can_separate(data) else SaveJob)(
            data, options
        )
        self._save = BackgroundSave(job, ReadOnlyWhileSaving(layer, data))
        self._save.signals.progressed.connect(self._receiver.progressed)
        self._save.signals.done.connect(self._receiver.done)
        self.progress.max = job.total
        self.progress.value = 0
        self.progress.visible = True
        self.status.value = f"saving {name}{renamed}..."
        self.save_button.enabled = False
        self.cancel_button.enabled = True
        self._save.start(self.native)

    def cancel_save(self, _value: Any = None) -> None:
        """Stop the save in progress: no file is left, an old one is kept.

        The writing thread stops at its next slice; a save already past its last
        slice completes.
        """
        if self._save is not None:
            self._save.job.cancel()

    def _finished(self, outcome: SaveResult | BaseException) -> None:
        """The save ended: the panel's own line (BackgroundSave notifies napari)."""
        name = os.path.basename(self._save.job.options.path) if self._save else ""
        self._save = None
        self.progress.visible = False
        self.cancel_button.enabled = False
        self._update_save_button()
        if isinstance(outcome, SaveResult):
            self.status.value = outcome.summary()
        elif isinstance(outcome, SaveCancelledError):
            self.status.value = "save cancelled; nothing was written"
        else:
            self.status.value = f"Could not save {name}: {outcome}"

    @property
    def busy(self) -> bool:
        """True while a save runs."""
        return self._save is not None


def _unsavable(layer: Any) -> str | None:
    """Why MRC cannot hold ``layer`` (RGB, other than 2 or 3 dimensions), or None."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    try:
        check_savable(data, {"rgb": getattr(layer, "rgb", False)})
    except ValueError as error:
        return str(error)
    return None
