"""Prompt tools, prompt edits and propagation limits of the S2VNet dock (:class:`DockPrompts`, a
mixin of ``S2VNetDock``).

* **Tools** (the *Prompt* box): *Click* selects the class's Points layer (as before), *Box* and
  *Scribble* select its Shapes layer with the rectangle or path tool (``widget/prompt_shapes.py``).
  A finished shape joins the pending prompts like a click, and runs as a round through the worker.
* **Edits**: deleting or moving points or shapes of a class (napari's own select tool and Delete key)
  compares what the class's layers show with the prompts in effect and sends the difference as one
  ``worker.edit_prompts`` round: the class is recomputed from its remaining prompts
  (``inference/edits.py``). A pending prompt (not sent yet) that is deleted is simply dropped.
* **Limits**: *this slice only* refines the clicked slice without propagating; *slices a–b* keeps
  propagation inside a slice range ("here" buttons take the slice on screen). Both go to the session
  (``Session.slice_only``, ``Session.z_range``) and apply to the rounds made after they are set.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout

from napari_s2vnet.inference.prompts import Prompt
from napari_s2vnet.inference.state import Click
from napari_s2vnet.widget.prompt_shapes import PromptShapes

PROMPT_TOOLS = ("click", "box", "scribble")


class DockPrompts:
    """Prompt layers and controls of the dock; the dock provides ``worker``, ``classes``, ``pending``,
    ``prompts`` (in effect), ``_in_flight`` (sent, not done: ``(added, removed)``), ``live_check``."""

    def _build_prompt_controls(self: Any, layout: QVBoxLayout) -> None:
        self.shapes = PromptShapes(self.viewer, self.classes, self)
        self.shapes.shape_added.connect(self._queue_prompt)
        self.shapes.shapes_edited.connect(self._on_prompts_edited)
        self.shapes.refused.connect(self._set_status)
        self.classes.points_edited.connect(self._on_prompts_edited)
        self.classes.class_selected.connect(self._on_class_selected)
        self.classes.colors_changed.connect(self.shapes.sync_classes)
        row = QHBoxLayout()
        row.addWidget(QLabel("Prompt"))
        self.tool_combo = QComboBox()
        self.tool_combo.addItems([t.capitalize() for t in PROMPT_TOOLS])
        self.tool_combo.setToolTip("Click: points; Box: draw a rectangle around the organ; Scribble: draw a path "
                                   "(negative with the Negative toggle). Select and Delete, or drag, to edit.")
        self.tool_combo.currentIndexChanged.connect(lambda i: self.set_prompt_tool(PROMPT_TOOLS[i]))
        row.addWidget(self.tool_combo, 1)
        self.slice_only_check = QCheckBox("this slice only")
        self.slice_only_check.setToolTip("refine the clicked slice without propagating")
        self.slice_only_check.toggled.connect(lambda *_: self._apply_limits())
        row.addWidget(self.slice_only_check)
        layout.addLayout(row)
        limits = QHBoxLayout()
        self.range_check = QCheckBox("slices")
        self.range_check.setToolTip("propagate only inside these slices (e.g. where the organ ends)")
        self.range_check.toggled.connect(lambda *_: self._apply_limits())
        limits.addWidget(self.range_check)
        self.range_spins: list[QSpinBox] = []
        self.range_here: list[QPushButton] = []
        for end in ("first", "last"):
            spin = QSpinBox()
            spin.setToolTip(f"the {end} slice propagation may write")
            spin.valueChanged.connect(lambda *_: self._apply_limits() if self.range_check.isChecked() else None)
            here = QPushButton("here")
            here.setToolTip(f"the slice on screen as the {end} slice")
            here.clicked.connect(lambda *_, s=spin: s.setValue(self.current_slice() or 0))
            limits.addWidget(spin, 1)
            limits.addWidget(here)
            self.range_spins.append(spin)
            self.range_here.append(here)
        layout.addLayout(limits)

    # ------------------------------------------------------------------ tools
    def prompt_tool(self: Any) -> str:
        return PROMPT_TOOLS[self.tool_combo.currentIndex()]

    def set_prompt_tool(self: Any, tool: str) -> None:
        """``"click"``, ``"box"`` or ``"scribble"``: the selected class's layer and tool for new prompts."""
        if self.tool_combo.currentIndex() != PROMPT_TOOLS.index(tool):
            self.tool_combo.setCurrentIndex(PROMPT_TOOLS.index(tool))  # comes back here
            return
        label = self.classes.selected_label()
        if label is not None and tool == "click":
            self.classes.select_class(label)  # its Points layer, in add mode
        elif label is not None:
            self.shapes.activate(label, tool)

    def _on_class_selected(self: Any, label: int) -> None:
        if self.prompt_tool() != "click":  # (the Points layer is already selected for clicks)
            self.shapes.activate(label, self.prompt_tool())

    # ------------------------------------------------------------------ new prompts
    def _queue_prompt(self: Any, prompt: Prompt) -> None:
        """A new click, box or scribble: pending, sent as a round after a short pause when *live*."""
        self.pending.append(prompt)
        self.visited.add(int(prompt.z))
        if self.live_check.isChecked():
            self._round_timer.start()  # short debounce: prompts made together form one round
        else:
            self._set_status(f"{len(self.pending)} prompt(s) pending: press Propagate")

    def _known_prompts(self: Any) -> list[Prompt]:
        """The prompts in effect once every task sent so far is done."""
        known = list(self.prompts)
        for added, removed in self._in_flight:
            known = [p for p in known if p not in removed] + [p for p in added if p not in known]
        return known

    # ------------------------------------------------------------------ edits
    def _on_prompts_edited(self: Any, label: int) -> None:
        """Points or shapes of ``label`` were deleted or moved: send what changed as one edit round."""
        shown = self.classes.shown_clicks(label) + self.shapes.shown(label)
        self.pending = [p for p in self.pending if p.label != label or p in shown]
        self.restored_clicks = [c for c in self.restored_clicks if c.label != label or c in shown]
        known = [p for p in self._known_prompts() if p.label == label]
        removed = [p for p in known if p not in shown]
        added = [p for p in shown if p not in known and p not in self.pending and p not in self.restored_clicks]
        if not removed and not added or not self._ready():
            return
        self._round_timer.stop()
        self.submit_round()  # pending prompts of other classes go first, in their own round
        self._flush_hand_edits()
        self._in_flight.append((added, removed))
        propagate = self.live_check.isChecked()
        self._set_status(f"recomputing the class from its remaining prompts ({len(removed)} removed, {len(added)} added)…")
        self.worker.edit_prompts(removed, added, propagate=propagate)
        if propagate:
            self._open_progress("propagate", self.image_layer.data.shape[0], "S2VNet: propagating")

    def _task_prompts_done(self: Any, kind: str) -> None:
        """A round or an edit is done: it is no longer in flight (tasks finish in the order they were sent)."""
        if kind in ("round", "prompts") and self._in_flight:
            self._in_flight.pop(0)

    def _show_prompts(self: Any) -> None:
        """Show the prompts in effect, in flight and pending (and autosaved clicks not yet restored)."""
        prompts = self._known_prompts() + list(self.pending)
        prompts += list(self.restored_clicks)
        self.classes.set_clicks([p for p in prompts if isinstance(p, Click)])
        self.shapes.set_prompts(prompts)

    # ------------------------------------------------------------------ limits
    def _apply_limits(self: Any) -> None:
        """Send *this slice only* and the slice range to the session (new rounds use them)."""
        if self.image_layer is None:
            return
        top = int(self.image_layer.data.shape[0]) - 1
        for spin in self.range_spins:
            if spin.maximum() != top:
                spin.blockSignals(True)
                spin.setRange(0, top)
                spin.setValue(top if spin is self.range_spins[1] else 0)
                spin.blockSignals(False)
        lo, hi = sorted(spin.value() for spin in self.range_spins)
        z_range = (lo, hi) if self.range_check.isChecked() else None
        if self.token >= 0:
            self.worker.set_limits(self.slice_only_check.isChecked(), z_range)
