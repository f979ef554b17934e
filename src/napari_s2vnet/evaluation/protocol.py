"""Scores of click curves: the CVPR 2025 interactive 3D segmentation protocol, NoC, and drops.

A *click curve* is the Dice of one structure after click 1, 2, ... (:func:`evaluation.interactive.run_clicks`,
the simulated user of :mod:`evaluation.clicks`).

* CVPR 2025 "Foundation Models for Interactive 3D Biomedical Image Segmentation" challenge, clicks
  track: 5 clicks per structure; Dice after each step, ``DSC_AUC`` (area under the Dice-vs-click
  curve over the 5 steps, trapezoid rule; the challenge reports the raw area, at most 4 for 5 steps:
  :func:`dsc_auc` gives it divided by 4, so 1.0 is a perfect curve) and the final Dice (after click 5).
* ``NoC@85`` / ``NoC@90``: clicks needed to reach that Dice, ``max_clicks + 1`` when never reached.
* *No-drop fraction*: of all click steps (click k -> k+1), the share in which Dice did not fall by
  more than ``tol`` (0.01): "refinement that cannot get worse".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

CHALLENGE_CLICKS = 5


def dsc_auc(dice: Sequence[float], steps: int = CHALLENGE_CLICKS) -> float:
    """Trapezoid area under Dice over clicks 1..``steps``, divided by ``steps - 1`` (in [0, 1])."""
    d = np.asarray(list(dice)[:steps], float)
    if len(d) < 2:
        return float(d[0]) if len(d) else 0.0
    return float(np.trapezoid(d) / (len(d) - 1)) if hasattr(np, "trapezoid") else float(np.trapz(d) / (len(d) - 1))


def noc(dice: Sequence[float], threshold: float, max_clicks: int | None = None) -> int:
    """Clicks needed to reach ``threshold`` (``max_clicks + 1`` = never within the curve)."""
    limit = len(dice) if max_clicks is None else min(max_clicks, len(dice))
    for k, d in enumerate(list(dice)[:limit], start=1):
        if d >= threshold:
            return k
    return limit + 1


def steps_without_drop(dice: Sequence[float], tol: float = 0.01) -> tuple[int, int]:
    """``(steps where Dice fell by at most tol, all steps)`` along one curve."""
    d = np.asarray(dice, float)
    if len(d) < 2:
        return 0, 0
    diffs = np.diff(d)
    return int((diffs >= -tol).sum()), int(len(diffs))


def summarize(curves: Mapping[object, Sequence[float]], max_clicks: int | None = None, tol: float = 0.01) -> dict:
    """Pooled scores of several structures' curves (each at least ``CHALLENGE_CLICKS`` long)."""
    if not curves:
        return {}
    values = [list(c) for c in curves.values()]
    n = min(len(c) for c in values)
    limit = n if max_clicks is None else min(n, max_clicks)
    arr = np.array([c[:n] for c in values])
    kept, steps = map(sum, zip(*(steps_without_drop(c[:limit], tol) for c in values)))
    five = min(CHALLENGE_CLICKS, n)
    out = {
        "n_structures": len(values),
        "mean_dice_by_clicks": {str(k + 1): float(arr[:, k].mean()) for k in range(n)},
        "dice_1": float(arr[:, 0].mean()),
        f"dice_{five}": float(arr[:, five - 1].mean()),
        "dsc_auc": float(np.mean([dsc_auc(c, five) for c in values])),
        "dsc_final": float(arr[:, five - 1].mean()),
        "no_drop_fraction": kept / steps if steps else None,
        "no_drop_steps": [int(kept), int(steps)],
        "max_clicks": limit,
    }
    for thr in (0.85, 0.90):
        counts = [noc(c, thr, limit) for c in values]
        out[f"noc{int(thr * 100)}"] = float(np.mean(counts))
        out[f"noc{int(thr * 100)}_failures"] = int(sum(k > limit for k in counts))
    return out
