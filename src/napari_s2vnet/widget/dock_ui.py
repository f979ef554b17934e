"""Layout and shortcut keys of the S2VNet dock (:class:`DockUI`, a mixin of ``S2VNetDock``).

Shortcut keys are bound on the viewer (they work while the canvas has focus) and shown on the
buttons. None of them is bound by napari 0.9 by default (napari uses plain letters, Ctrl+…, and
Shift+A/L/P/V), and an existing binding is never overwritten.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_s2vnet.widget.classes_panel import ClassesPanel
from napari_s2vnet.widget.review_strip import ReviewStrip

BUNDLED = "Bundled (s2vnet_tiny_ct)"
FROM_FILE = "Weights file…"
#: napari-style key of each dock action
SHORTCUTS = {
    "auto": "Shift-G",
    "propagate": "Shift-R",
    "undo": "Shift-Z",
    "redo": "Shift-Y",
    "reset": "Shift-X",
    "save": "Shift-S",
    "negative": "Shift-N",
    "next": "Shift-C",
}


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """``count_text(1, "class", "classes")`` -> ``"1 class"``; ``count_text(3, "click")`` -> ``"3 clicks"``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def key_text(key: str) -> str:
    """``"Shift-G"`` -> ``"Shift+G"`` (as shown on buttons)."""
    return key.replace("-", "+")


class DockUI:
    """Builds the widgets of the dock; the actions are methods of ``S2VNetDock``."""

    viewer: Any
    _bound_keys: list[str]

    def _build_ui(self: Any) -> None:
        layout = QVBoxLayout(self)
        setup = QGroupBox("Image and model")
        form = QFormLayout(setup)
        self.image_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(self._on_image_choice)
        form.addRow("Image", self.image_combo)
        self.model_combo = QComboBox()
        self.model_combo.addItems([BUNDLED, FROM_FILE])
        self.model_combo.activated.connect(self._on_model_choice)
        form.addRow("Model", self.model_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        self.device_combo.activated.connect(lambda *_: self.load_model(self._model_source))
        form.addRow("Device", self.device_combo)
        self.device_note = QLabel("")
        self.device_note.setWordWrap(True)
        self.device_note.setStyleSheet("color: #e0a030")
        self.device_note.setVisible(False)
        form.addRow(self.device_note)
        layout.addWidget(setup)
        self._model_source: str | None = None

        classes = QGroupBox("Classes")
        cl = QVBoxLayout(classes)
        self.classes = ClassesPanel(self.viewer, self)
        self.classes.click_added.connect(self._on_click_added)
        self.classes.colors_changed.connect(self._apply_colormap)
        self.classes.lock_changed.connect(self._on_lock_changed)
        cl.addWidget(self.classes)
        self.negative_toggle = QCheckBox(f"Negative clicks [{key_text(SHORTCUTS['negative'])}]")
        self.negative_toggle.toggled.connect(self._on_negative_toggled)
        cl.addWidget(self.negative_toggle)
        self._build_prompt_controls(cl)  # Prompt tool, this slice only, slice range (dock_prompts.py)
        layout.addWidget(classes)

        actions = QGroupBox("Segment")
        al = QVBoxLayout(actions)
        row1 = QHBoxLayout()
        self.auto_button = QPushButton(f"Auto-segment [{key_text(SHORTCUTS['auto'])}]")
        self.auto_button.setToolTip("all model classes, or only the checked ones")
        self.auto_button.clicked.connect(lambda: self.auto_segment())
        self.propagate_button = QPushButton(f"Propagate [{key_text(SHORTCUTS['propagate'])}]")
        self.propagate_button.setToolTip("run the pending clicks (or the last round) through the volume")
        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.live_check = QCheckBox("live")
        self.live_check.setChecked(True)
        self.live_check.setToolTip("run and propagate after every click")
        row1.addWidget(self.auto_button)
        row1.addWidget(self.propagate_button)
        row1.addWidget(self.live_check)
        al.addLayout(row1)
        row2 = QHBoxLayout()
        self.undo_button = QPushButton(f"Undo [{key_text(SHORTCUTS['undo'])}]")
        self.undo_button.clicked.connect(lambda: self.undo())
        self.redo_button = QPushButton(f"Redo [{key_text(SHORTCUTS['redo'])}]")
        self.redo_button.clicked.connect(lambda: self.redo())
        self.reset_button = QPushButton(f"Reset class [{key_text(SHORTCUTS['reset'])}]")
        self.reset_button.clicked.connect(lambda: self.reset_class())
        row2.addWidget(self.undo_button)
        row2.addWidget(self.redo_button)
        row2.addWidget(self.reset_button)
        al.addLayout(row2)
        row3 = QHBoxLayout()
        self.overwrite_check = QCheckBox("overwrite hand edits")
        self.overwrite_check.setToolTip("let the model overwrite voxels painted by hand or of locked classes")
        self.overwrite_check.toggled.connect(self._on_lock_changed)
        self.save_button = QPushButton(f"Save… [{key_text(SHORTCUTS['save'])}]")
        self.save_button.clicked.connect(lambda: self.save_labels())
        row3.addWidget(self.overwrite_check)
        row3.addWidget(self.save_button)
        al.addLayout(row3)
        layout.addWidget(actions)

        review = QGroupBox("Review")
        rl = QVBoxLayout(review)
        self.next_button = QPushButton(f"Next slice to check [{key_text(SHORTCUTS['next'])}]")
        self.next_button.setToolTip("go to the slice where the model is least sure of its labels, among those "
                                    "not checked since the last round")
        self.next_button.clicked.connect(lambda: self.next_slice_to_check())
        self.review_strip = ReviewStrip()
        self.review_strip.slice_chosen.connect(lambda z: self.go_to_slice(z))
        rl.addWidget(self.next_button)
        rl.addWidget(self.review_strip)
        layout.addWidget(review)

        auto_box = QGroupBox("Autosave")
        ab = QVBoxLayout(auto_box)
        self.autosave_label = QLabel("no image")
        self.autosave_label.setWordWrap(True)
        ab.addWidget(self.autosave_label)
        choose = QPushButton("Autosave folder…")
        choose.clicked.connect(self._choose_autosave_root)
        ab.addWidget(choose)
        self.restore_row = QWidget()
        rr = QHBoxLayout(self.restore_row)
        rr.setContentsMargins(0, 0, 0, 0)
        self.restore_label = QLabel("")
        self.restore_label.setWordWrap(True)
        self.restore_button = QPushButton("Restore")
        self.restore_button.clicked.connect(lambda: self.restore_autosave())
        self.discard_button = QPushButton("Ignore")
        self.discard_button.clicked.connect(lambda: self.restore_row.setVisible(False))
        rr.addWidget(self.restore_label, 1)
        rr.addWidget(self.restore_button)
        rr.addWidget(self.discard_button)
        self.restore_row.setVisible(False)
        ab.addWidget(self.restore_row)
        layout.addWidget(auto_box)

        status_row = QHBoxLayout()
        self.status = QLabel("loading model…")
        self.status.setWordWrap(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("cancel feature caching and running propagation (results so far are kept)")
        self.stop_button.clicked.connect(lambda: self.stop())
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.stop_button)
        layout.addLayout(status_row)
        layout.addStretch(1)

    def _set_status(self: Any, text: str, details: str = "") -> None:
        """One short line beside Stop; longer ``details`` go to its tooltip."""
        self.status.setText(text)
        self.status.setToolTip(details)

    def _bind_keys(self: Any) -> None:
        actions = {
            "auto": lambda v: self.auto_segment(),
            "propagate": lambda v: self.propagate(),
            "undo": lambda v: self.undo(),
            "redo": lambda v: self.redo(),
            "reset": lambda v: self.reset_class(),
            "save": lambda v: self.save_labels(),
            "negative": lambda v: self.negative_toggle.toggle(),
            "next": lambda v: self.next_slice_to_check(),
        }
        for name, key in SHORTCUTS.items():
            try:
                self.viewer.bind_key(key, actions[name], overwrite=False)
                self._bound_keys.append(key)
            except (ValueError, TypeError):
                pass  # already bound (by the user or another plugin): keep theirs

    def _unbind_keys(self: Any) -> None:
        for key in self._bound_keys:
            try:
                self.viewer.bind_key(key, None)
            except Exception:
                pass
        self._bound_keys.clear()
