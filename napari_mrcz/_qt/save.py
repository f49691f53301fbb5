"""The "Save as MRCZ" dock widget: options, a background save, progress and cancel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

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

from napari_mrcz._napari.layers import (
    check_savable,
    json_meta,
    layer_pixel_size,
    microscope_values,
    pixel_size_angstrom,
)
from napari_mrcz._napari.save_job import (
    NO_COMPRESSION,
    PIXEL_UNITS,
    SaveCancelledError,
    SaveJob,
    SaveOptions,
    SaveResult,
    default_output_path,
    snapshot,
    unit_factor,
)
from napari_mrcz._napari.ungain_job import SeparatedSaveJob, can_separate
from napari_mrcz._napari.writer import writer_settings
from napari_mrcz.mrc.codecs import AVAILABLE_CODECS
from napari_mrcz.mrc.modes import mrc_dtype
from napari_mrcz.threads import default_threads

if TYPE_CHECKING:
    import napari

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
        super().__init__(
            widgets=[
                self.layer,
                self.output,
                self.codec,
                self.level,
                self.threads,
                self.ungain,
                self.size_x,
                self.size_y,
                self.size_z,
                self.unit,
                self.save_button,
                self.cancel_button,
                self.progress,
                self.status,
            ]
        )
        self._job: SaveJob | None = None
        self._worker: Any = None
        self._prefilled_for: Any = None
        self._showing = False
        self._pixel_boxes = (self.size_z, self.size_y, self.size_x)
        self._pixel_zyx = [1.0, 1.0, 1.0]  # Angstrom, what options() uses
        for box in self._pixel_boxes:
            box.changed.connect(self._pixel_edited)
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
        from napari.layers import Image, Labels

        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, (Image, Labels)) and not getattr(layer, "rgb", False)
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
        """Pre-fill the file name and pixel size from the chosen layer."""
        self._prefilled_for = layer
        self.ungain.enabled = layer is not None and can_separate(
            layer.data[0] if layer.multiscale else layer.data
        )
        if not self.ungain.enabled:
            self.ungain.value = False
        if layer is None:
            return
        path = default_output_path(layer)
        if self.codec.value == NO_COMPRESSION:
            path = os.path.splitext(path)[0] + ".mrc"
        self.output.value = path
        self._pixel_zyx = list(layer_pixel_size(layer))
        self._show_pixel_size()

    def _show_pixel_size(self) -> None:
        """Show the pixel size (kept in Angstrom) in the chosen unit."""
        factor = unit_factor(self.unit.value)
        self._showing = True
        try:
            for box, size in zip(self._pixel_boxes, self._pixel_zyx, strict=True):
                box.value = size * factor
        finally:
            self._showing = False

    def _pixel_edited(self, _value: Any = None) -> None:
        """The user typed a pixel size: keep it, in Angstrom, at full precision."""
        if not self._showing:
            factor = unit_factor(self.unit.value)
            self._pixel_zyx = [box.value / factor for box in self._pixel_boxes]

    def _unit_changed(self, _unit: str) -> None:
        self._show_pixel_size()

    def _codec_changed(self, codec: str) -> None:
        """Keep the file's extension in step with compression (.mrcz or .mrc)."""
        stem, suffix = os.path.splitext(str(self.output.value))
        if suffix.lower() in (".mrcz", ".mrc"):
            self.output.value = stem + (".mrc" if codec == NO_COMPRESSION else ".mrcz")
        self.level.enabled = codec != NO_COMPRESSION

    # -------------------------------------------------------------------- save
    def options(self) -> SaveOptions:
        """The save options as the controls show them (pixel size in Angstrom)."""
        layer = self.layer.value
        metadata = layer.metadata if layer is not None else {}
        translate = layer.translate if layer is not None else (0.0,)
        units = getattr(layer, "units", None)
        return SaveOptions(
            path=os.fspath(self.output.value),
            codec=self.codec.value,
            level=int(self.level.value),
            threads=int(self.threads.value),
            pixelsize_zyx=tuple(self._pixel_zyx),
            origin_zyx=tuple(pixel_size_angstrom(translate, units)),
            meta=json_meta(metadata),
            microscope=microscope_values(metadata),
        )

    def start_save(self, _value: Any = None) -> None:
        """Snapshot the layer and write it on a napari thread worker."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_warning

        layer = self.layer.value
        if layer is None or self._worker is not None:
            return
        options = self.options()
        try:
            data = check_savable(
                layer.data, {"multiscale": layer.multiscale, "rgb": getattr(layer, "rgb", False)}
            )
            options.dtype = mrc_dtype(data, plain=options.codec == NO_COMPRESSION, warn=False)
        except ValueError as error:
            self.status.value = f"Cannot save {layer.name}: {error}"
            show_error(self.status.value)
            return
        if options.dtype is not None:
            show_warning(
                f"MRC cannot store {data.dtype}: {layer.name} is written as {options.dtype}"
            )
        job = SeparatedSaveJob if self.ungain.value and can_separate(data) else SaveJob
        self._job = job(snapshot(data), options)
        self.progress.max = self._job.total
        self.progress.value = 0
        self.progress.visible = True
        self.status.value = f"saving {os.path.basename(self._job.options.path)}..."
        self.save_button.enabled = False
        self.cancel_button.enabled = True
        self._worker = create_worker(
            self._job.steps,
            _progress={"total": self._job.total, "desc": "Saving MRCZ"},
            _connect={
                "yielded": self._advanced,
                "returned": self._finished,
                "errored": self._failed,
                "finished": self._stopped,
            },
        )

    def cancel_save(self, _value: Any = None) -> None:
        """Stop the save in progress: no file is left, an old one is kept.

        The writing thread stops at its next slice and the worker reports it as an
        error (SaveCancelledError); a save already past its last slice completes.
        """
        if self._job is not None:
            self._job.cancel()

    def _advanced(self, progress: tuple[int, int]) -> None:
        self.progress.value = progress[0]

    def _finished(self, result: SaveResult | None) -> None:
        from napari.utils.notifications import show_info

        if result is not None:
            self.status.value = result.summary()
            show_info(result.summary())

    def _failed(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        if isinstance(error, SaveCancelledError):
            self._cancelled()
            return
        message = f"Could not save {os.path.basename(self._job.options.path)}: {error}"
        self.status.value = message
        show_error(message)

    def _cancelled(self) -> None:
        from napari.utils.notifications import show_info

        if self._job is not None:
            self._job.wait()  # its temporary file is gone once the thread ends
        self.status.value = "save cancelled; nothing was written"
        show_info(self.status.value)

    def _stopped(self) -> None:
        if self.status.value.startswith("saving "):
            self.status.value = "save stopped"
        self._worker = None
        self.progress.visible = False
        self.save_button.enabled = True
        self.cancel_button.enabled = False

    @property
    def busy(self) -> bool:
        """True while a save runs."""
        return self._worker is not None
