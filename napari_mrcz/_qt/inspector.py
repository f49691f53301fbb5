"""The metadata inspector dock widget: header table, searchable meta tree, facts."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_mrcz._napari.layer_report import MAX_LISTED, LayerReport, layer_report

if TYPE_CHECKING:
    import napari

#: Tree rows shown at most under one node; the rest is summarised.
MAX_CHILDREN = 500
#: Characters shown at most in one tree cell.
MAX_TEXT = 300
#: Enough for several header rows, and for a few tree rows.
TABLE_MIN_HEIGHT = 200
TREE_MIN_HEIGHT = 100


#: Where a tree row keeps the keys leading to its value in the report's tree.
TREE_PATH_ROLE = Qt.ItemDataRole.UserRole


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _leaf_text(value: Any) -> str:
    """A tree cell's text: JSON, summarised when long (huge arrays stay cheap)."""
    if isinstance(value, (list, tuple)) and len(value) > MAX_LISTED:
        return f"<{len(value)} values>"
    text = json.dumps(value, default=str)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


class MetadataInspector(QWidget):
    """Show the selected layer's MRC header, JSON meta or DM tags and file facts.

    Follows the viewer's layer selection. For a layer that did not come from our
    reader it shows what napari-mrcz would write.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose selection is followed.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.report: LayerReport | None = None
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.origin = QLabel()
        self.origin.setWordWrap(True)
        self.facts = QFormLayout()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["field", "value", "meaning"])
        # field and value as wide as their text; the meaning takes the rest of the
        # dock, elided ("...") where it is narrow, the whole text in its tooltip
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setMinimumHeight(TABLE_MIN_HEIGHT)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search keys and values")
        self.search.textChanged.connect(self._filter_tree)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["key", "value"])
        copy_value = QPushButton("Copy value")
        copy_value.clicked.connect(self.copy_value)
        copy_all = QPushButton("Copy all as JSON")
        copy_all.clicked.connect(self.copy_all)

        facts_box = QWidget()
        facts_box.setLayout(self.facts)
        self.tree.setMinimumHeight(TREE_MIN_HEIGHT)
        buttons = QHBoxLayout()
        buttons.addWidget(copy_value)
        buttons.addWidget(copy_all)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.origin)
        layout.addWidget(facts_box)
        layout.addWidget(self.table, stretch=3)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, stretch=2)
        layout.addLayout(buttons)

        self.viewer.layers.selection.events.active.connect(self._selection_changed)
        self.show_layer(self.viewer.layers.selection.active)

    def _selection_changed(self, event: Any) -> None:
        self.show_layer(event.value)

    def _watch(self, layer: Any) -> None:
        """Follow ``layer``'s scale and units (the pixel size shown), and only its."""
        watched = getattr(self, "_watched", None)
        for name in ("scale", "units"):
            if watched is not None and hasattr(watched.events, name):
                getattr(watched.events, name).disconnect(self._layer_changed)
            if layer is not None and hasattr(layer.events, name):
                getattr(layer.events, name).connect(self._layer_changed)
        self._watched = layer

    def _layer_changed(self, _event: Any = None) -> None:
        self.show_layer(self._watched, watch=False)

    def show_layer(self, layer: Any, watch: bool = True) -> None:
        """Fill the panel for ``layer`` (None clears it); follow its scale from now on."""
        if watch:
            self._watch(layer)
        self.report = None if layer is None else layer_report(layer)
        while self.facts.rowCount():
            self.facts.removeRow(0)
        self.table.setRowCount(0)
        self.tree.clear()
        if self.report is None:
            self.title.setText("<b>no layer selected</b>")
            self.origin.setText("")
            return
        self.title.setText(f"<b>{html.escape(self.report.title)}</b>")
        self.origin.setText(self.report.origin)
        for name, value in self.report.facts:
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts.addRow(f"{name}:", label)
        self.table.setRowCount(len(self.report.header_rows))
        for row, cells in enumerate(self.report.header_rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        for name, content in self.report.tree.items():
            self._add_tree_node(self.tree.invisibleRootItem(), name, content)
        self.tree.expandToDepth(0)
        self.tree.resizeColumnToContents(0)
        self._filter_tree(self.search.text())

    def _add_tree_node(
        self, parent: QTreeWidgetItem, key: str, value: Any, path: tuple[str, ...] = ()
    ) -> None:
        path = (*path, str(key))
        if isinstance(value, dict):
            item = QTreeWidgetItem(parent, [str(key), _count(len(value), "entry", "entries")])
            children = list(value.items())
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            item = QTreeWidgetItem(parent, [str(key), _count(len(value), "item", "items")])
            children = list(enumerate(value))
        else:
            item = QTreeWidgetItem(parent, [str(key), _leaf_text(value)])
            children = []
        item.setData(1, TREE_PATH_ROLE, list(path))  # what "Copy value" copies
        for child_key, child in children[:MAX_CHILDREN]:
            self._add_tree_node(item, str(child_key), child, path)
        if len(children) > MAX_CHILDREN:
            QTreeWidgetItem(item, ["...", f"{len(children) - MAX_CHILDREN} more"])

    def _filter_tree(self, text: str) -> None:
        """Show only the rows whose key or value contains ``text`` (and their parents)."""
        needle = text.strip().lower()

        def visit(item: QTreeWidgetItem) -> bool:
            own = not needle or needle in item.text(0).lower() or needle in item.text(1).lower()
            children = [visit(item.child(index)) for index in range(item.childCount())]
            shown = own or any(children)
            item.setHidden(not shown)
            if needle and any(children):
                item.setExpanded(True)
            return shown

        root = self.tree.invisibleRootItem()
        for index in range(root.childCount()):
            visit(root.child(index))

    def selected_value(self) -> str:
        """The value of the selected table row or tree row ('' if none).

        A tree node's value is its whole subtree as JSON; a leaf's, its JSON value
        (not the shortened text the tree shows).
        """
        if self.tree.hasFocus() or not self.table.selectedItems():
            items = self.tree.selectedItems()
            if items:
                path = items[0].data(1, TREE_PATH_ROLE)
                if not path or self.report is None:  # the "... more" row
                    return items[0].text(1)
                value: Any = self.report.tree
                for key in path:
                    value = value[int(key)] if isinstance(value, list) else value[key]
                return value if isinstance(value, str) else json.dumps(value, default=str)
        row = self.table.currentRow()
        if row >= 0 and self.table.item(row, 1) is not None:
            return self.table.item(row, 1).text()
        return ""

    def copy_value(self) -> None:
        """Copy the selected value to the clipboard."""
        QApplication.clipboard().setText(self.selected_value())

    def copy_all(self) -> None:
        """Copy everything shown, as JSON, to the clipboard."""
        if self.report is not None:
            QApplication.clipboard().setText(
                json.dumps(self.report.as_json_ready(), indent=2, default=str)
            )
