"""Box and scribble prompts in napari: one Shapes layer per class (``S2VNet: <name> shapes``).

A **rectangle** drawn in a class's Shapes layer is a :class:`~napari_s2vnet.inference.prompts.Box` of
that class on the slice it was drawn on (always positive); a **path** is a
:class:`~napari_s2vnet.inference.prompts.Scribble`, positive unless the dock's *Negative* toggle
(Shift+N, the same toggle as for clicks) is on when it is finished. Positive shapes are drawn in the
class colour, negative strokes in the class colour darkened to 45 % and thinner, so the two read apart
at a glance. Other shape kinds (ellipse, polygon, line) are not prompts: they are taken out of the
layer again and reported.

New shapes are reported through :attr:`PromptShapes.shape_added`; deleting or moving shapes through
:attr:`PromptShapes.shapes_edited` (the dock then recomputes the class from what is left). The
layers use the image's scale, so their data coordinates are internal voxel indices ``(z, y, x)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from napari_s2vnet.inference.prompts import Box, Scribble
from napari_s2vnet.widget.classes_panel import POINTS_PREFIX, ClassesPanel, own_edits

SHAPES_META = "s2vnet_shapes"
NEGATIVE_SHADE = 0.45  # a negative stroke's colour: the class colour times this
TOOLS = {"box": "add_rectangle", "scribble": "add_path"}


class PromptShapes(QObject):
    """The per-class Shapes layers of the current image; signals ``shape_added(Box | Scribble)``,
    ``shapes_edited(label)`` and ``refused(str)`` (a shape that is not a prompt, taken out)."""

    shape_added = Signal(object)
    shapes_edited = Signal(int)
    refused = Signal(str)

    def __init__(self, viewer: Any, classes: ClassesPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.classes = classes
        self.negative_mode = False
        self._layers: dict[int, Any] = {}
        self._counts: dict[int, int] = {}  # shapes in each layer after the last event handled
        self._syncing = False

    # ------------------------------------------------------------------ layers
    def layer(self, label: int, create: bool = True) -> Any:
        """The Shapes layer of a class (created on demand)."""
        layer = self._layers.get(label)
        if layer is not None and layer in self.viewer.layers:
            return layer
        if not create or label not in self.classes.entries:
            return None
        entry = self.classes.entries[label]
        layer = self.viewer.add_shapes(
            ndim=3, name=f"{POINTS_PREFIX}{entry.name} shapes", scale=self.classes.scale,
            edge_color=entry.color, face_color=[0.0, 0.0, 0.0, 0.0], edge_width=self._width(True),
            features={"positive": np.zeros(0, dtype=bool)}, metadata={SHAPES_META: label},
        )
        layer.current_edge_color = entry.color
        layer.events.data.connect(lambda event, lab=label: self._on_data(lab, event))
        self._layers[label] = layer
        return layer

    def activate(self, label: int, tool: str) -> None:
        """Select the class's Shapes layer with the drawing tool of ``tool`` (``"box"`` or ``"scribble"``)."""
        layer = self.layer(label)
        if layer is not None:
            self.viewer.layers.selection.active = layer
            layer.mode = TOOLS[tool]

    def sync_classes(self) -> None:
        """Drop the layers of classes that are gone; recolour the others (class colour changed)."""
        for label in list(self._layers):
            layer = self._layers[label]
            if label not in self.classes.entries:
                self._layers.pop(label)
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
            elif layer in self.viewer.layers:
                self._style(layer)

    def _width(self, positive: bool) -> float:
        return max(1.0, self.classes.point_size / (2.0 if positive else 4.0))

    def _style(self, layer: Any) -> None:
        """Edge colour and width of every shape from its sign (positive: the class colour)."""
        n = len(layer.data)
        if not n:
            return
        color = np.asarray(self.classes.entries[layer.metadata[SHAPES_META]].color, dtype=float)
        positive = layer.features["positive"].to_numpy(dtype=bool)
        dark = np.concatenate([color[:3] * NEGATIVE_SHADE, color[3:]])
        with own_edits(self):
            layer.edge_color = np.where(positive[:, None], color[None], dark[None])
            layer.edge_width = [self._width(bool(p)) for p in positive]

    # ------------------------------------------------------------------ shapes <-> prompts
    def _on_data(self, label: int, event: Any) -> None:
        if self._syncing:
            return
        action = str(getattr(event, "action", ""))
        layer = self._layers.get(label)
        if layer is None:
            return
        n, before = len(layer.data), self._counts.get(label, 0)
        self._counts[label] = n
        if action.endswith("added"):
            if n <= before:  # napari reports a path given up on (too few vertices) as added too
                return
            i = n - 1
            kind = layer.shape_type[i]
            positive = kind == "rectangle" or not self.negative_mode
            features = layer.features.copy()
            features.loc[i, "positive"] = positive
            with own_edits(self):
                layer.features = features
            prompt = self._prompt(label, np.asarray(layer.data[i]), kind, positive)
            if prompt is None:
                with own_edits(self):
                    layer.selected_data = {i}
                    layer.remove_selected()
                self._counts[label] = len(layer.data)
                self.refused.emit(f"a {kind} is not a prompt: draw a rectangle (box) or a path (scribble)"
                                  if kind not in ("rectangle", "path") else
                                  f"that {kind} is outside the image or has no area inside it: draw it again")
                return
            self._style(layer)
            self.shape_added.emit(prompt)
        elif action.endswith("removed") or action.endswith("changed"):
            self.shapes_edited.emit(label)

    def _prompt(self, label: int, data: np.ndarray, kind: str, positive: bool) -> Box | Scribble | None:
        """The prompt of one shape (vertices ``(N, 3)`` in voxels), clipped to the image; None if it is not one."""
        shape = self.classes.shape
        z = int(round(float(np.median(data[:, -3]))))
        yx = np.rint(data[:, -2:]).astype(int)
        if shape is not None:
            if not 0 <= z < shape[0]:
                return None
            yx = np.clip(yx, 0, np.array(shape[1:]) - 1)
        if kind == "rectangle":
            (y0, x0), (y1, x1) = yx.min(0), yx.max(0)
            return Box(z, int(y0), int(x0), int(y1), int(x1), label) if y0 < y1 and x0 < x1 else None
        if kind == "path":
            return Scribble(z, tuple((int(y), int(x)) for y, x in yx), label, bool(positive))
        return None

    def shown(self, label: int) -> list[Box | Scribble]:
        """The prompts the class's Shapes layer shows now."""
        layer = self._layers.get(label)
        if layer is None or layer not in self.viewer.layers:
            return []
        positive = layer.features["positive"].to_numpy(dtype=bool) if "positive" in layer.features else []
        out = []
        for i, (data, kind) in enumerate(zip(layer.data, layer.shape_type)):
            prompt = self._prompt(label, np.asarray(data), kind, bool(positive[i]) if len(positive) > i else True)
            if prompt is not None:
                out.append(prompt)
        return out

    def set_prompts(self, prompts: list[Any]) -> None:
        """Show exactly these boxes and scribbles (other prompts are ignored)."""
        by_label: dict[int, list[Box | Scribble]] = {}
        for p in prompts:
            if isinstance(p, (Box, Scribble)):
                by_label.setdefault(int(p.label), []).append(p)
        for label in set(self._layers) | set(by_label):
            items = by_label.get(label, [])
            layer = self.layer(label, create=bool(items))
            if layer is None:
                continue
            data = [_vertices(p) for p in items]
            with own_edits(self):
                layer.selected_data = set(range(len(layer.data)))
                layer.remove_selected()
                if data:
                    layer.add(data, shape_type=["rectangle" if isinstance(p, Box) else "path" for p in items])
                layer.features = {"positive": np.array([getattr(p, "positive", True) for p in items], dtype=bool)}
            self._counts[label] = len(layer.data)
            self._style(layer)

    def all_layers(self) -> dict[int, Any]:
        return {k: v for k, v in self._layers.items() if v in self.viewer.layers}


def _vertices(p: Box | Scribble) -> np.ndarray:
    """Shapes-layer vertices ``(N, 3)`` of a prompt."""
    if isinstance(p, Box):
        return np.array([[p.z, p.y0, p.x0], [p.z, p.y0, p.x1], [p.z, p.y1, p.x1], [p.z, p.y1, p.x0]], dtype=float)
    return np.array([[p.z, y, x] for y, x in p.points], dtype=float).reshape(-1, 3)
