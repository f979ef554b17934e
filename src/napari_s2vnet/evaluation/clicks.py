"""Simulated user clicks, shared by training episodes, tests and benchmarks.

The protocol is the usual one for interactive segmentation: the first click goes deep inside the
object (the pixel farthest from its border); each later click goes to the deepest point of the
largest error region, positive when that region is missed object (false negative), negative when
it is leakage (false positive). Works in 2D (one slice) and 3D (a volume, with voxel spacing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SimClick:
    point: tuple[int, ...]  # index into the array ((y, x) or (z, y, x))
    positive: bool


def deepest_point(
    mask: np.ndarray, spacing: tuple[float, ...] | None = None, rng: np.random.Generator | None = None, jitter: float = 0.0
) -> tuple[int, ...] | None:
    """Index of the pixel farthest from the border of ``mask`` (None if empty).

    With ``rng`` and ``jitter`` in (0, 1), one of the pixels whose depth is at least
    ``(1 - jitter)`` times the maximum is drawn instead (training diversity).
    """
    if not mask.any():
        return None
    sl = ndimage.find_objects(mask.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    crop = np.pad(mask[sl], 1)  # pad so the crop border counts as outside
    depth = ndimage.distance_transform_edt(crop, sampling=spacing)[(slice(1, -1),) * mask.ndim]
    if rng is not None and jitter > 0:
        candidates = np.argwhere(depth >= (1 - jitter) * depth.max())
        local = candidates[rng.integers(len(candidates))]
    else:
        local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return tuple(int(i) + s.start for i, s in zip(local, sl))


def first_click(mask: np.ndarray, spacing=None, rng=None, jitter: float = 0.0) -> SimClick | None:
    point = deepest_point(mask, spacing, rng, jitter)
    return None if point is None else SimClick(point, True)


def largest_error(pred: np.ndarray, gt: np.ndarray) -> tuple[int, np.ndarray, bool] | None:
    """Largest connected error region of binary ``pred`` vs ``gt``: ``(size, mask, positive)``,
    ``positive`` True for missed object (false negative); None when ``pred == gt``. The search is
    confined to the bounding box of ``pred | gt`` (errors cannot lie outside it): large volumes stay fast."""
    box = ndimage.find_objects((pred | gt).astype(np.uint8))
    if not box:
        return None
    pred_c, gt_c = pred[box[0]], gt[box[0]]
    false_neg = gt_c & ~pred_c
    false_pos = pred_c & ~gt_c
    best: tuple[int, np.ndarray, bool] | None = None
    for error, positive in ((false_neg, True), (false_pos, False)):
        if not error.any():
            continue
        comps, n = ndimage.label(error)
        sizes = np.bincount(comps.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), comps == k + 1, positive)
    if best is None:
        return None
    full = np.zeros(pred.shape, bool)
    full[box[0]] = best[1]
    return best[0], full, best[2]


def correction_click(pred: np.ndarray, gt: np.ndarray, spacing=None) -> SimClick | None:
    """Click in the largest error component of binary ``pred`` vs ``gt`` (None when perfect)."""
    best = largest_error(pred, gt)
    if best is None:
        return None
    point = deepest_point(best[1], spacing)
    assert point is not None
    return SimClick(point, best[2])
