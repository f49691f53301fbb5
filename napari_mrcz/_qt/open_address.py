"""The "Open a file on a server" dock widget: an address in, a lazy layer out.

The header is fetched on a thread of its own, so the viewer stays responsive while a
slow server answers; the layer is added on the GUI thread once it has arrived. napari
itself reads the slices it shows, on the GUI thread unless its preference "Render
Layers Asynchronously" is on: the panel offers that switch, for browsing a slow
server without the viewer freezing for each new slice.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal, Slot
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_mrcz._napari.reader import read_address
from napari_mrcz.errors import MRCZFormatError, RemoteFileError
from napari_mrcz.remote import is_url, redact

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)


def _slicing_in_background() -> bool:
    """napari's "Render Layers Asynchronously" preference."""
    from napari.settings import get_settings

    return bool(get_settings().experimental.async_)


def _slice_in_background(on: bool) -> None:
    from napari.settings import get_settings

    get_settings().experimental.async_ = bool(on)


class _Outcome(QObject):
    """Carries an open's layer data, or its error text, to the GUI thread."""

    opened = Signal(object, str)
    failed = Signal(str)


class OpenAddressWidget(QWidget):
    """Open an MRC or MRCZ file on a web server or object store by its address.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer that gets the layer.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.address = QLineEdit()
        self.address.setPlaceholderText("https://... or s3://bucket/run1/movie.mrcz")
        self.address.returnPressed.connect(self.open)
        self.anonymous = QCheckBox("Public bucket: no credentials")
        self.anonymous.setToolTip(
            "Open an s3:// address without signing in. Other credentials come from "
            "AWS's environment variables and configuration files."
        )
        self.background = QCheckBox("Fetch slices in the background")
        self.background.setToolTip(
            "napari's preference Experimental > Render Layers Asynchronously: napari "
            "reads the slices it shows on another thread and draws each when it has "
            "arrived, so a slow server does not freeze the viewer. Saved with napari's "
            "preferences."
        )
        self.background.setChecked(_slicing_in_background())
        self.background.toggled.connect(_slice_in_background)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open)
        self.status = QLabel("Slices are fetched as you browse them.")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.address, 1)
        row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.anonymous)
        layout.addWidget(self.background)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._outcome = _Outcome(self)
        self._outcome.opened.connect(self._add_layers)
        self._outcome.failed.connect(self._tell_failure)
        self._opening: threading.Thread | None = None

    def open(self) -> None:
        """Fetch the header of the address typed, on a thread; add its layer when done."""
        url = self.address.text().strip()
        if not is_url(url):
            self.status.setText("Type an address starting with https://, http:// or s3://.")
            return
        options = {"anon": True} if self.anonymous.isChecked() else None
        self.open_button.setEnabled(False)
        self.status.setText(f"Opening {redact(url)} ...")
        self._opening = threading.Thread(
            target=self._read, args=(url, options), name="napari-mrcz-open", daemon=True
        )
        self._opening.start()

    def _read(self, url: str, options: dict | None) -> None:
        try:
            layers = read_address(url, options)
        except (MRCZFormatError, RemoteFileError) as error:
            self._emit("failed", str(error))
        except Exception as error:  # told in the panel: nothing else would show it
            logger.debug("opening %s failed", redact(url), exc_info=error)
            self._emit("failed", f"{redact(url)}: {error}")
        else:
            self._emit("opened", layers, redact(url))

    def _emit(self, signal: str, *values: Any) -> None:
        try:
            getattr(self._outcome, signal).emit(*values)
        except RuntimeError as error:  # the panel was closed meanwhile
            logger.debug("open panel closed before the file arrived: %s", error)

    @Slot(object, str)
    def _add_layers(self, layers: list, shown: str) -> None:
        from napari.layers import Layer

        for data, kwargs, kind in layers:
            self.viewer.add_layer(Layer.create(data, kwargs, kind))
        names = ", ".join(kwargs["name"] for _, kwargs, _ in layers)
        self.status.setText(f"Opened {names}.")
        self.status.setToolTip(shown)
        self.open_button.setEnabled(True)

    @Slot(str)
    def _tell_failure(self, text: str) -> None:
        self.status.setText(text)
        self.open_button.setEnabled(True)
