"""Review guidance: how unsure the model was about the labels it wrote on each slice.

Measure (``docs/method.md``, "Where to look next"): on the decoder's score grid (stride 2, or 4
with ``embed_stride=4``), the group scores of a decode (class probabilities damped by their centres' objectness, :func:`slice_scores`) are
renormalised per pixel; the pixel's *doubt* is ``1 - (p1 - p2)``, one minus the margin between its
two best groups (0 = sure, 1 = a tie). It is high along unsure borders and wherever a class's
objectness is near 0.5 (a damped class ties with background). A slice's score for a class is the
sum of the doubt of the pixels whose best non-background group is that class, in mm² (so a large
unsure border weighs more than a small one, and the zoomed view counts like the coarse one).

:class:`SliceDoubt` keeps those scores, one ``(Z,)`` float32 row per class (bounded: labels x
slices), with snapshots for undo and redo.
"""

from __future__ import annotations

import numpy as np
import torch


def doubt_by_label(scores: torch.Tensor, labels: list[int], pixel_mm2: float) -> dict[int, float]:
    """``scores (1, G, h, w)`` of groups ``[background, *labels]`` -> ``{label: doubt in mm²}``."""
    s = scores[0].float()
    p = s / s.sum(0, keepdim=True).clamp_min(1e-8)
    top2 = p.topk(min(2, p.shape[0]), dim=0).values
    doubt = 1.0 - (top2[0] - top2[1]) if p.shape[0] > 1 else torch.zeros_like(p[0])
    owner = p[1:].argmax(0)  # the class each pixel is (or would be) about
    sums = torch.bincount(owner.flatten(), weights=doubt.flatten(), minlength=len(labels))
    return {int(label): float(v) * pixel_mm2 for label, v in zip(labels, sums.cpu().tolist())}


class SliceDoubt:
    """Per-class, per-slice doubt of a session's labels (what ``Session.uncertain_slices`` ranks)."""

    def __init__(self, z_count: int) -> None:
        self.z_count = z_count
        self._rows: dict[int, np.ndarray] = {}

    def set(self, z: int, values: dict[int, float]) -> None:
        for label, v in values.items():
            self._rows.setdefault(int(label), np.zeros(self.z_count, np.float32))[z] = v

    def clear(self, z: int, labels) -> None:
        for label in labels:
            row = self._rows.get(int(label))
            if row is not None:
                row[z] = 0.0

    def drop(self, label: int) -> None:
        self._rows.pop(int(label), None)

    def clear_slices(self, zs) -> None:
        zs = list(zs)
        for row in self._rows.values():
            row[zs] = 0.0

    def per_slice(self) -> np.ndarray:
        """``(Z,)`` float32: the sum over classes."""
        out = np.zeros(self.z_count, np.float32)
        for row in self._rows.values():
            out += row
        return out

    def ranked(self, k: int | None = None, skip=()) -> list[int]:
        """Slices by decreasing doubt (only slices with some doubt), without those in ``skip``."""
        score = self.per_slice()
        skip = set(int(z) for z in skip)
        order = [int(z) for z in np.argsort(-score, kind="stable") if score[z] > 0 and int(z) not in skip]
        return order if k is None else order[: max(0, int(k))]

    def snapshot(self) -> dict[int, np.ndarray]:
        return {k: v.copy() for k, v in self._rows.items()}

    def restore(self, snap: dict[int, np.ndarray]) -> None:
        self._rows = {k: v.copy() for k, v in snap.items()}
