"""The "Save as MRCZ" dock widget: options, a background save, progress and cancel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

from .._writer import json_meta, writer_settings
from ..codecs import AVAILABLE_CODECS
from ..threads import default_threads
from ._model import (
    NO_COMPRESSION,
    PIXEL_UNITS,
    SaveJob,
    SaveOptions,
    SaveResult,
    default_output_path,
    layer_pixel_size,
    snapshot,
    unit_factor,
)

if TYPE_CHECKING:
    import napari

SAVABLE_LAYER_TYPES = ("image", "labels")
#: Enough for 0.8 Angstrom shown in micrometres.
PIXEL_SIZE_DECIMALS = 6


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
        self.codec = ComboBox(label="codec", choices=[*AVAILABLE_CODECS, NO_COMPRESSION],
                              value=settings["codec"] if settings["codec"] in (
                                  *AVAILABLE_CODECS, NO_COMPRESSION) else "zstd",
                              tooltip="blosc codec; 'none' writes plain MRC2014")
        self.level = SpinBox(label="level", min=1, max=9, value=int(settings["level"]),
                             tooltip="1 is fastest; higher levels compress a little more")
        self.threads = SpinBox(label="threads", min=1, max=cores,
                               value=min(cores, int(settings["threads"]) or cores))
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
        super().__init__(widgets=[
            self.layer, self.output, self.codec, self.level, self.threads, self.size_x,
            self.size_y, self.size_z, self.unit, self.save_button, self.cancel_button,
            self.progress, self.status])
        self._job: SaveJob | None = None
        self._worker: Any = None
        self._unit_shown = "Å"
        self.layer.changed.connect(self._layer_changed)
        self.unit.changed.connect(self._unit_changed)
        self.codec.changed.connect(self._codec_changed)
        self.save_button.changed.connect(self.start_save)
        self.cancel_button.changed.connect(self.cancel_save)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._follow_selection)
        self._refresh_layers()

    # ------------------------------------------------------------------ layers
    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers
                if layer._type_string in SAVABLE_LAYER_TYPES]

    def _refresh_layers(self, _event: Any = None) -> None:
        self.layer.reset_choices()
        self._layer_changed(self.layer.value)

    def _follow_selection(self, event: Any) -> None:
        active = event.value
        if active is not None and active in [layer for _, layer in self._layer_choices()]:
            self.layer.value = active

    def _layer_changed(self, layer: Any) -> None:
        """Pre-fill the file name and pixel size from the chosen layer."""
        if layer is None:
            return
        path = default_output_path(layer)
        if self.codec.value == NO_COMPRESSION:
            path = os.path.splitext(path)[0] + ".mrc"
        self.output.value = path
        factor = unit_factor(self.unit.value)
        size_z, size_y, size_x = layer_pixel_size(layer)
        self.size_x.value, self.size_y.value, self.size_z.value = (
            size_x * factor, size_y * factor, size_z * factor)

    def _unit_changed(self, unit: str) -> None:
        """Show the same pixel size in the new unit."""
        ratio = unit_factor(unit) / unit_factor(self._unit_shown)
        for box in (self.size_x, self.size_y, self.size_z):
            box.value = box.value * ratio
        self._unit_shown = unit

    def _codec_changed(self, codec: str) -> None:
        """Keep the file's extension in step with compression (.mrcz or .mrc)."""
        stem, suffix = os.path.splitext(str(self.output.value))
        if suffix.lower() in (".mrcz", ".mrc"):
            self.output.value = stem + (".mrc" if codec == NO_COMPRESSION else ".mrcz")
        self.level.enabled = codec != NO_COMPRESSION

    # -------------------------------------------------------------------- save
    def options(self) -> SaveOptions:
        """The save options as the controls show them (pixel size in Angstrom)."""
        factor = unit_factor(self.unit.value)
        layer = self.layer.value
        return SaveOptions(
            path=os.fspath(self.output.value),
            codec=self.codec.value,
            level=int(self.level.value),
            threads=int(self.threads.value),
            pixelsize_zyx=(self.size_z.value / factor, self.size_y.value / factor,
                           self.size_x.value / factor),
            meta=json_meta(layer.metadata if layer is not None else {}),
        )

    def start_save(self, _value: Any = None) -> None:
        """Snapshot the layer and write it on a napari thread worker."""
        from napari.qt.threading import create_worker

        layer = self.layer.value
        if layer is None or self._worker is not None:
            return
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        self._job = SaveJob(snapshot(data), self.options())
        self.progress.max = self._job.total
        self.progress.value = 0
        self.progress.visible = True
        self.status.value = f"saving {os.path.basename(self._job.options.path)}..."
        self.save_button.enabled = False
        self.cancel_button.enabled = True
        self._worker = create_worker(
            self._job.steps,
            _progress={"total": self._job.total, "desc": "Saving MRCZ"},
            _connect={"yielded": self._advanced, "returned": self._finished,
                      "errored": self._failed, "aborted": self._aborted,
                      "finished": self._stopped},
        )

    def cancel_save(self, _value: Any = None) -> None:
        """Stop the save in progress: no file is left, an old one is kept."""
        if self._job is not None:
            self._job.cancel()
        if self._worker is not None:
            self._worker.quit()

    def _advanced(self, progress: tuple[int, int]) -> None:
        self.progress.value = progress[0]

    def _finished(self, result: SaveResult | None) -> None:
        from napari.utils.notifications import show_info

        if result is not None:
            self.status.value = result.summary()
            show_info(result.summary())

    def _failed(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        from ._model import SaveCancelledError

        if isinstance(error, SaveCancelledError):
            self._aborted()
            return
        message = f"Could not save {os.path.basename(self._job.options.path)}: {error}"
        self.status.value = message
        show_error(message)

    def _aborted(self) -> None:
        from napari.utils.notifications import show_info

        if self._job is not None:
            self._job.wait()  # its temporary file is gone once the thread ends
        self.status.value = "save cancelled; nothing was written"
        show_info(self.status.value)

    def _stopped(self) -> None:
        self._worker = None
        self.progress.visible = False
        self.save_button.enabled = True
        self.cancel_button.enabled = False

    @property
    def busy(self) -> bool:
        """True while a save runs."""
        return self._worker is not None
