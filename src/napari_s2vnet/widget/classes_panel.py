"""Class list of the S2VNet dock and the per-class click Points layers.

Each class has a name, a label id and a colour (the colour of that id in the dock's Labels layer,
set through a ``DirectLabelColormap``). "Add class" creates a Points layer ``S2VNet: <name>`` with
that colour; selecting a class selects its Points layer in ``add`` mode. A plain click adds a
positive click (disc); a click with **Shift** held, or with the "negative" toggle on, adds a
negative click (cross). New points are reported through :attr:`ClassesPanel.click_added`; deleting
or moving points through :attr:`ClassesPanel.points_edited` (the dock then recomputes the class from
the points that are left, ``widget/dock_prompts.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_s2vnet.inference.state import Click
from napari_s2vnet.widget.autosave import ClassEntry

POINTS_PREFIX = "S2VNet: "
POINTS_META = "s2vnet_class"
#: distinct colours, picked by label id so a class keeps its colour across sessions
PALETTE = [
    (0.90, 0.10, 0.10), (0.12, 0.47, 0.90), (0.20, 0.75, 0.20), (1.00, 0.60, 0.00), (0.60, 0.20, 0.80),
    (0.00, 0.80, 0.80), (0.95, 0.85, 0.10), (0.90, 0.30, 0.60), (0.55, 0.35, 0.15), (0.50, 0.80, 0.40),
    (0.30, 0.30, 0.95), (0.95, 0.55, 0.45), (0.10, 0.55, 0.45), (0.75, 0.60, 0.95), (0.70, 0.70, 0.20),
    (0.95, 0.40, 0.10), (0.40, 0.65, 0.95), (0.80, 0.10, 0.45), (0.45, 0.95, 0.75), (0.65, 0.45, 0.35),
]
COL_USE, COL_NAME, COL_ID, COL_COLOR, COL_LOCK = range(5)


def default_color(label: int) -> list[float]:
    """RGBA colour of a label id (stable across sessions)."""
    r, g, b = PALETTE[(int(label) - 1) % len(PALETTE)]
    return [r, g, b, 1.0]


def label_colormap(colors: dict[int, Any]) -> Any:
    """``DirectLabelColormap`` with these RGBA colours by label id, 0 transparent, other ids grey
    (the dock's Labels layer and the sample reference labels use the same one)."""
    from napari.utils.colormaps import DirectLabelColormap

    color_dict: dict[int | None, Any] = {None: np.array([0.6, 0.6, 0.6, 1.0]), 0: np.zeros(4)}
    for label, color in colors.items():
        color_dict[int(label)] = np.asarray(color, dtype=float)
    return DirectLabelColormap(color_dict=color_dict)


@contextmanager
def own_edits(owner: Any) -> Iterator[None]:
    """Layer changes the plugin makes itself: while inside, ``owner._syncing`` is set so that its
    layer-event handlers do not take them for the user's edits."""
    owner._syncing = True
    try:
        yield
    finally:
        owner._syncing = False


def _swatch(color: list[float]) -> QIcon:
    """A filled square icon (stays visible when the row is selected, unlike a background)."""
    pixmap = QPixmap(28, 14)
    pixmap.fill(QColor.fromRgbF(*[float(c) for c in color[:3]]))
    return QIcon(pixmap)


class ClassesPanel(QWidget):
    """Class table + add controls; owns the click Points layers of the current image.

    Signals: ``click_added(label, z, y, x, positive)``, ``points_edited(label)`` (points deleted or moved),
    ``class_selected(label)``, ``colors_changed()``, ``lock_changed()``.
    """

    click_added = Signal(int, int, int, int, bool)
    points_edited = Signal(int)
    class_selected = Signal(int)
    colors_changed = Signal()
    lock_changed = Signal()

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.entries: dict[int, ClassEntry] = {}
        self.model_classes: dict[int, str] = {}
        self._points: dict[int, Any] = {}
        self._shift_down: dict[int, bool] = {}
        self._syncing = False
        self.negative_mode = False
        self.scale: tuple[float, ...] = (1.0, 1.0, 1.0)
        self.shape: tuple[int, ...] | None = None
        self.point_size = 4.0

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["auto", "class", "label", "colour", "lock"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for col in (COL_USE, COL_ID, COL_COLOR, COL_LOCK):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip(
            "auto: include in Auto-segment (none checked = all model classes); "
            "colour: double-click to change; lock: never overwrite this class's voxels"
        )
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.table.cellDoubleClicked.connect(self._on_cell_double_clicked)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.setMinimumHeight(140)
        layout.addWidget(self.table)

        row = QHBoxLayout()
        self.name_combo = QComboBox()
        self.name_combo.setEditable(True)
        self.name_combo.setToolTip("a class of the loaded model, or type a new name")
        self.name_combo.lineEdit().setPlaceholderText("class name")
        self.name_combo.currentTextChanged.connect(self._on_name_changed)
        self.id_spin = QSpinBox()
        self.id_spin.setRange(0, 65535)
        self.id_spin.setSpecialValueText("id")  # 0: no name typed yet (Add class then picks the id)
        self.id_spin.setToolTip("label id written in the Labels layer (a model class's own id, else a free one)")
        self.add_button = QPushButton("Add class")
        self.add_button.clicked.connect(self._on_add_clicked)
        row.addWidget(self.name_combo, 3)
        row.addWidget(self.id_spin, 1)
        row.addWidget(self.add_button)
        layout.addLayout(row)
        self.hint = QLabel("Click = positive, Shift+click = negative (or toggle Negative)")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

    # ------------------------------------------------------------------ model classes
    def set_model_classes(self, class_names: dict[int, str]) -> None:
        """Offer the loaded model's classes by name in the add combo box."""
        self.model_classes = dict(class_names)
        text = self.name_combo.currentText()
        self.name_combo.blockSignals(True)
        self.name_combo.clear()
        for label, name in sorted(self.model_classes.items(), key=lambda kv: kv[1]):
            self.name_combo.addItem(name, label)
        self.name_combo.setEditText(text)
        self.name_combo.blockSignals(False)
        self._on_name_changed(self.name_combo.currentText())
        for entry in self.entries.values():
            entry.from_model = entry.label in self.model_classes

    def _on_name_changed(self, text: str) -> None:
        if not text.strip():
            self.id_spin.setValue(0)
            return
        for label, name in self.model_classes.items():
            if name == text.strip():
                self.id_spin.setValue(label)
                return
        self.id_spin.setValue(self.free_label())

    def free_label(self) -> int:
        """Smallest label id used neither by the model nor by the class list."""
        used = set(self.entries) | set(self.model_classes)
        label = 1
        while label in used:
            label += 1
        return label

    def _on_add_clicked(self) -> None:
        name = self.name_combo.currentText().strip()
        if not name:
            return
        self.add_class(name, int(self.id_spin.value()) or None, select=True)
        self.name_combo.setEditText("")

    # ------------------------------------------------------------------ classes
    def add_class(self, name: str, label: int | None = None, color: list[float] | None = None,
                  create_points: bool = True, select: bool = False) -> ClassEntry:
        """Add (or return the existing) class; ``label`` defaults to the model's id of ``name``."""
        if label is None:
            label = next((i for i, n in self.model_classes.items() if n == name), None) or self.free_label()
        label = int(label)
        entry = self.entries.get(label)
        if entry is None:
            entry = ClassEntry(label, name, list(color or default_color(label)), label in self.model_classes)
            self.entries[label] = entry
            self._append_row(entry)
            self.colors_changed.emit()
        if create_points:
            self.points_layer(label)
        if select:
            self.select_class(label)
        return entry

    def _append_row(self, entry: ClassEntry) -> None:
        self.table.blockSignals(True)
        r = self.table.rowCount()
        self.table.insertRow(r)
        use = QTableWidgetItem()
        use.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        use.setCheckState(Qt.CheckState.Unchecked)
        use.setData(Qt.ItemDataRole.UserRole, entry.label)
        self.table.setItem(r, COL_USE, use)
        self.table.setItem(r, COL_NAME, QTableWidgetItem(entry.name))
        self.table.setItem(r, COL_ID, QTableWidgetItem(str(entry.label)))
        swatch = QTableWidgetItem("")
        swatch.setIcon(_swatch(entry.color))
        self.table.setItem(r, COL_COLOR, swatch)
        lock = QTableWidgetItem()
        lock.setFlags(use.flags())
        lock.setCheckState(Qt.CheckState.Unchecked)
        self.table.setItem(r, COL_LOCK, lock)
        self.table.blockSignals(False)

    def _row_of(self, label: int) -> int:
        for r in range(self.table.rowCount()):
            if self.table.item(r, COL_USE).data(Qt.ItemDataRole.UserRole) == label:
                return r
        return -1

    def remove_class(self, label: int) -> None:
        """Drop a class row and its Points layer."""
        r = self._row_of(label)
        if r >= 0:
            self.table.removeRow(r)
        self.entries.pop(label, None)
        layer = self._points.pop(label, None)
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        self.colors_changed.emit()

    def clear(self) -> None:
        """Remove every class (new image)."""
        for label in list(self.entries):
            self.remove_class(label)

    def checked_labels(self) -> list[int]:
        out = []
        for r in range(self.table.rowCount()):
            item = self.table.item(r, COL_USE)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(int(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def set_checked(self, label: int, checked: bool = True, column: int = COL_USE) -> None:
        r = self._row_of(label)
        if r >= 0:
            self.table.item(r, column).setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def locked_labels(self) -> set[int]:
        out = set()
        for r in range(self.table.rowCount()):
            if self.table.item(r, COL_LOCK).checkState() == Qt.CheckState.Checked:
                out.add(int(self.table.item(r, COL_USE).data(Qt.ItemDataRole.UserRole)))
        return out

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == COL_LOCK:
            self.lock_changed.emit()

    def selected_label(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return int(self.table.item(rows[0].row(), COL_USE).data(Qt.ItemDataRole.UserRole))

    def select_class(self, label: int) -> None:
        r = self._row_of(label)
        if r >= 0:
            self.table.selectRow(r)
        self._activate_points(label)

    def _on_row_selected(self) -> None:
        label = self.selected_label()
        if label is not None:
            self._activate_points(label)
            self.class_selected.emit(label)

    def _activate_points(self, label: int) -> None:
        layer = self.points_layer(label)
        if layer is None:
            return
        self.viewer.layers.selection.active = layer
        layer.mode = "add"

    def _on_cell_double_clicked(self, row: int, col: int) -> None:
        if col != COL_COLOR:
            return
        label = int(self.table.item(row, COL_USE).data(Qt.ItemDataRole.UserRole))
        entry = self.entries[label]
        chosen = QColorDialog.getColor(QColor.fromRgbF(*entry.color[:3]), self, f"Colour of {entry.name}")
        if chosen.isValid():
            self.set_color(label, [chosen.redF(), chosen.greenF(), chosen.blueF(), 1.0])

    def set_color(self, label: int, color: list[float]) -> None:
        entry = self.entries[label]
        entry.color = list(color)
        r = self._row_of(label)
        if r >= 0:
            self.table.item(r, COL_COLOR).setIcon(_swatch(entry.color))
        layer = self._points.get(label)
        if layer is not None:
            layer.face_color = entry.color
            layer.current_face_color = entry.color
        self.colors_changed.emit()

    def colormap(self) -> Any:
        """``DirectLabelColormap`` of the dock's Labels layer: class colours, others grey."""
        return label_colormap({label: entry.color for label, entry in self.entries.items()})

    # ------------------------------------------------------------------ Points layers
    def set_grid(self, shape: tuple[int, ...], scale: tuple[float, ...]) -> None:
        """Image grid (internal shape and scale) the Points layers live on."""
        self.shape, self.scale = tuple(shape), tuple(scale)
        self.point_size = float(max(3.0, min(shape[1:]) / 40.0))

    def points_layer(self, label: int, create: bool = True) -> Any:
        """The Points layer of a class (created on demand)."""
        layer = self._points.get(label)
        if layer is not None and layer in self.viewer.layers:
            return layer
        if not create or label not in self.entries:
            return None
        entry = self.entries[label]
        layer = self.viewer.add_points(
            np.zeros((0, 3)),
            ndim=3,
            name=f"{POINTS_PREFIX}{entry.name}",
            scale=self.scale,
            size=self.point_size,
            face_color=entry.color,
            border_color="white",
            border_width=0.15,
            symbol="disc",
            features={"positive": np.zeros(0, dtype=bool)},
            metadata={POINTS_META: label},
            out_of_slice_display=False,
        )
        layer.current_face_color = entry.color
        layer.mouse_drag_callbacks.insert(0, self._make_press_callback(label))
        layer.events.data.connect(lambda event, lab=label: self._on_points_data(lab, event))
        self._points[label] = layer
        return layer

    def _make_press_callback(self, label: int):
        def on_press(layer: Any, event: Any) -> None:
            self._shift_down[label] = "Shift" in {str(getattr(m, "name", m)) for m in event.modifiers}

        return on_press

    def _on_points_data(self, label: int, event: Any) -> None:
        if self._syncing:
            return
        action = str(getattr(event, "action", ""))
        layer = self._points.get(label)
        if layer is None:
            return
        if action.endswith("added"):
            negative = self.negative_mode or self._shift_down.pop(label, False)
            indices = sorted(int(i) for i in getattr(event, "data_indices", ()) if int(i) >= 0) or [len(layer.data) - 1]
            self._style_points(layer, {i: not negative for i in indices})
            for i in indices:
                z, y, x = (int(round(v)) for v in layer.data[i][-3:])
                if self.shape is not None and not all(0 <= c < s for c, s in zip((z, y, x), self.shape)):
                    continue
                self.click_added.emit(label, z, y, x, not negative)
        elif action.endswith("removed") or action.endswith("changed"):
            self.points_edited.emit(label)

    def shown_clicks(self, label: int) -> list[Click]:
        """The clicks the class's Points layer shows now (rounded to voxels, inside the grid)."""
        layer = self._points.get(label)
        if layer is None or layer not in self.viewer.layers:
            return []
        positive = layer.features["positive"].to_numpy(dtype=bool) if "positive" in layer.features else None
        out = []
        for i, point in enumerate(np.asarray(layer.data)):
            z, y, x = (int(round(v)) for v in point[-3:])
            if self.shape is None or all(0 <= c < n for c, n in zip((z, y, x), self.shape)):
                out.append(Click(z, y, x, label, True if positive is None else bool(positive[i])))
        return out

    def _style_points(self, layer: Any, positive: dict[int, bool]) -> None:
        features = layer.features.copy()
        if "positive" not in features:
            features["positive"] = True
        for i, pos in positive.items():
            features.loc[i, "positive"] = bool(pos)
        with own_edits(self):
            layer.features = features
            layer.symbol = np.where(features["positive"].to_numpy(dtype=bool), "disc", "x")
            layer.face_color = self.entries[layer.metadata[POINTS_META]].color
            layer.selected_data = set()

    def add_click_point(self, label: int, z: float, y: float, x: float, positive: bool = True) -> None:
        """Add a click as if the user clicked (used by tests and scripting)."""
        layer = self.points_layer(label)
        if layer is None:
            known = ", ".join(f"{e.name} {k}" for k, e in sorted(self.entries.items())) or "none"
            raise KeyError(f"no class with label {label} (classes: {known}): add_class it first")
        self._shift_down[label] = not positive
        layer.add(np.array([[z, y, x]], dtype=float))

    def set_clicks(self, clicks: list[Click]) -> None:
        """Show exactly these clicks in the Points layers."""
        by_label: dict[int, list[Click]] = {}
        for c in clicks:
            by_label.setdefault(int(c.label), []).append(c)
        for label in set(by_label) - set(self.entries):
            self.add_class(self.model_classes.get(label, f"class {label}"), label, create_points=False)
        for label in list(self.entries):
            items = by_label.get(label, [])
            layer = self.points_layer(label, create=bool(items))
            if layer is None:
                continue
            data = np.array([[c.z, c.y, c.x] for c in items], dtype=float).reshape(-1, 3)
            positive = np.array([bool(c.positive) for c in items], dtype=bool)
            with own_edits(self):
                layer.data = data
                layer.features = {"positive": positive}
                if len(data):
                    layer.symbol = np.where(positive, "disc", "x")
                    layer.face_color = self.entries[label].color
                layer.selected_data = set()

    def all_points(self) -> dict[int, Any]:
        return {k: v for k, v in self._points.items() if v in self.viewer.layers}
