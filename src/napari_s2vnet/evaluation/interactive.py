"""Simulated interactive segmentation of a whole volume, for tests, validation and benchmarks.

Protocol (per class, in one :class:`~napari_s2vnet.inference.Session`): the first click goes to the
deepest voxel of the reference object (3D distance with the voxel spacing); the session decodes that
slice and propagates; each further click goes to the deepest voxel of the largest 3D error region
(positive for a miss, negative for leakage), again followed by propagation. Dice of the class is
recorded after every click.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_s2vnet.evaluation.clicks import correction_click, first_click
from napari_s2vnet.evaluation.metrics import binary_dice
from napari_s2vnet.inference.state import Click


@dataclass
class ClickCurve:
    label: int
    dice: list[float]  # Dice after click 1, 2, ...

    def noc(self, threshold: float, max_clicks: int) -> int:
        """Number of clicks to reach ``threshold`` (``max_clicks`` + 1 when never reached)."""
        for i, d in enumerate(self.dice, start=1):
            if d >= threshold:
                return i
        return max_clicks + 1


def run_clicks(session, gt_zyx: np.ndarray, labels: Iterable[int], clicks: int, spacing_zyx=None,
               propagate: bool = True) -> list[ClickCurve]:
    """Click ``clicks`` times per class; ``gt_zyx`` in the session's internal order."""
    curves = []
    for label in labels:
        target = gt_zyx == label
        if not target.any():
            continue
        dice: list[float] = []
        sim = first_click(target, spacing_zyx)
        for _ in range(clicks):
            if sim is None:  # perfect already
                dice.append(dice[-1] if dice else 1.0)
                continue
            z, y, x = sim.point
            session.add_clicks([Click(z, y, x, int(label), sim.positive)])
            if propagate:
                for _ in session.propagate():
                    pass
            pred = np.asarray(session.labels()) == label
            dice.append(binary_dice(pred, target))
            sim = correction_click(pred, target, spacing_zyx)
        curves.append(ClickCurve(int(label), dice))
    return curves
