"""Per-class overlap (Dice) and surface distance (HD95) between two label volumes.

Conventions:

* Background 0 is never scored. By default the scored classes are the non-zero ids present in
  ``gt`` or ``pred`` (a class only predicted scores Dice 0; a class absent from both is skipped,
  never counted as 1.0). An explicit ``labels`` list is filtered the same way.
* HD95 is the 95th percentile of the symmetric surface distances in mm (medpy's ``hd95``: the
  distances from every surface voxel of one mask to the nearest surface voxel of the other,
  both directions pooled). Surface voxels are mask voxels with a 6-neighbour outside the mask
  (the volume border counts as outside). When exactly one of the two masks is empty the HD95
  is ``inf``. Distances are exact: each class is cropped to the bounding box of both masks (plus
  a one-voxel margin), which holds every surface voxel, before the distance transform.
* Arrays may be any integer or float dtype (floats are rounded, e.g. labels from ``read_volume``),
  of any dimensionality, as long as both have the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, find_objects

from napari_s2vnet.errors import InputError


def dice_per_class(
    pred: np.ndarray, gt: np.ndarray, labels: Iterable[int] | None = None
) -> dict[int, float]:
    """``{id: Dice}`` for each class present in ``pred`` or ``gt`` (restricted to ``labels``)."""
    pred, gt = _as_labels(pred, gt)
    n = int(max(pred.max(initial=0), gt.max(initial=0))) + 1
    count_pred = np.bincount(pred.ravel(), minlength=n)
    count_gt = np.bincount(gt.ravel(), minlength=n)
    inter = np.bincount(gt[gt == pred], minlength=n)
    return {
        c: 2.0 * float(inter[c]) / float(count_pred[c] + count_gt[c])
        for c in _classes(count_pred, count_gt, labels)
    }


def binary_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    denom = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    return 1.0 if denom == 0 else 2.0 * int(np.count_nonzero(np.logical_and(pred, gt))) / denom


def hd95_per_class(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    labels: Iterable[int] | None = None,
) -> dict[int, float]:
    """``{id: HD95 in mm}`` for each class present in ``pred`` or ``gt`` (``inf`` if one is empty).

    ``spacing`` is the voxel size in mm along each array axis.
    """
    pred, gt = _as_labels(pred, gt)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != gt.ndim:
        raise InputError(f"spacing {spacing} does not match the {gt.ndim}-D label arrays")
    n = int(max(pred.max(initial=0), gt.max(initial=0))) + 1
    count_pred = np.bincount(pred.ravel(), minlength=n)
    count_gt = np.bincount(gt.ravel(), minlength=n)
    boxes_pred, boxes_gt = find_objects(pred), find_objects(gt)
    result: dict[int, float] = {}
    for c in _classes(count_pred, count_gt, labels):
        if count_pred[c] == 0 or count_gt[c] == 0:
            result[c] = float("inf")
            continue
        box = tuple(
            slice(max(min(a.start, b.start) - 1, 0), min(max(a.stop, b.stop) + 1, size))
            for a, b, size in zip(boxes_pred[c - 1], boxes_gt[c - 1], gt.shape)
        )
        result[c] = _hd95(pred[box] == c, gt[box] == c, spacing)
    return result


def summarize(dice: dict[int, float], hd95: dict[int, float] | None = None) -> dict[str, float]:
    """Means over classes: ``mean_dice``, ``mean_hd95`` (finite values only), ``n_classes`` and
    ``n_hd95_undefined`` (classes with an infinite HD95: present on one side only). Means of an
    empty set are ``nan``."""
    values = np.array(list(dice.values()), dtype=np.float64)
    summary: dict[str, float] = {
        "mean_dice": float(values.mean()) if values.size else float("nan"),
        "n_classes": int(values.size),
    }
    if hd95 is not None:
        distances = np.array(list(hd95.values()), dtype=np.float64)
        finite = distances[np.isfinite(distances)]
        summary["mean_hd95"] = float(finite.mean()) if finite.size else float("nan")
        summary["n_hd95_undefined"] = int(distances.size - finite.size)
    return summary


def _as_labels(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise InputError(f"prediction shape {pred.shape} differs from reference shape {gt.shape}")
    out = []
    for arr in (pred, gt):
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        elif arr.dtype == np.uint64:  # np.bincount cannot cast uint64 safely
            arr = arr.astype(np.int64)
        elif not np.issubdtype(arr.dtype, np.integer):
            arr = np.rint(arr).astype(np.int32)
        if arr.size and arr.min() < 0:
            raise InputError("label volumes must not contain negative ids")
        out.append(arr)
    return out[0], out[1]


def _classes(count_pred: np.ndarray, count_gt: np.ndarray, labels: Iterable[int] | None) -> list[int]:
    present = np.flatnonzero(count_pred + count_gt)
    present = present[present > 0]
    if labels is None:
        return [int(c) for c in present]
    wanted = {int(c) for c in labels}
    return [int(c) for c in present if c in wanted]


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~binary_erosion(mask, border_value=0)


def _hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    surface_a, surface_b = _surface(a), _surface(b)
    to_b = distance_transform_edt(~surface_b, sampling=spacing)[surface_a]
    to_a = distance_transform_edt(~surface_a, sampling=spacing)[surface_b]
    return float(np.percentile(np.concatenate([to_b, to_a]), 95))
