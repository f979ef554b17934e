"""Mask rules of the interactive session, on one slice: stay connected, keep the clicked parts,
obey every click. Pure numpy/scipy on ``(Y, X)`` boolean masks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def connected_to(mask: np.ndarray, previous: np.ndarray, reach: int = 2) -> np.ndarray:
    """Connected components of ``mask`` that touch ``previous`` dilated by ``reach`` pixels.

    With an empty ``previous`` (the class is not seen yet in this direction) ``mask`` is kept whole.
    """
    if not previous.any() or not mask.any():
        return mask
    comps, n = ndimage.label(mask)
    if n == 0:
        return mask
    near = ndimage.binary_dilation(previous, iterations=reach)
    keep = np.unique(comps[near & mask])
    return np.isin(comps, keep[keep > 0])


def keep_clicked(mask: np.ndarray, points: list[tuple[int, int]]) -> np.ndarray:
    """Connected components of ``mask`` holding one of ``points`` (the nearest one if none does)."""
    if not points or not mask.any():
        return mask
    comps, n = ndimage.label(mask)
    hits = {int(comps[y, x]) for y, x in points if comps[y, x] > 0}
    if not hits:
        dist, (iy, ix) = ndimage.distance_transform_edt(comps == 0, return_indices=True)
        y, x = min(points, key=lambda pt: dist[pt])
        hits = {int(comps[iy[y, x], ix[y, x]])}
    return np.isin(comps, list(hits))


def honour_clicks(mask: np.ndarray, prob: np.ndarray, positives: list[tuple[int, int]],
                  negatives: list[tuple[int, int]], radius_px: tuple[float, float]) -> np.ndarray:
    """Make ``mask`` agree with the clicks of its class on this slice.

    A positive click outside ``mask`` adds the pixels connected to it whose class probability
    ``prob`` is at least half the probability at the click, inside an ellipse of ``radius_px``
    (``(ry, rx)`` pixels) around it (at least the clicked pixel). A negative click inside ``mask``
    removes the part of the mask inside that ellipse at half the radius.
    """
    mask = mask.copy()
    h, w = mask.shape
    yy, xx = np.ogrid[:h, :w]

    def ellipse(y: int, x: int, scale: float) -> np.ndarray:
        ry, rx = (max(1.0, r * scale) for r in radius_px)
        return ((yy - y) / ry) ** 2 + ((xx - x) / rx) ** 2 <= 1.0

    for y, x in positives:
        if mask[y, x]:
            continue
        grow = (prob >= 0.5 * prob[y, x]) & ellipse(y, x, 1.0)
        comps, _ = ndimage.label(grow)
        mask |= comps == comps[y, x] if comps[y, x] else False
        mask[y, x] = True
    for y, x in negatives:
        if mask[y, x]:
            mask &= ~ellipse(y, x, 0.5)
            mask[y, x] = False
    return mask


def grown(mask: np.ndarray, radius_px: tuple[float, float]) -> np.ndarray:
    """``mask`` dilated by an ellipse of ``radius_px`` (``(ry, rx)`` pixels; at least 1 each)."""
    ry, rx = (max(1, int(np.ceil(r))) for r in radius_px)
    yy, xx = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    return ndimage.binary_dilation(mask, structure=(yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)


def local_change(mask: np.ndarray, old: np.ndarray, effect: str, seed: np.ndarray,
                 reach: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A correction's new mask of a class on one slice, and the change it keeps -> ``(new, change)``.

    ``effect`` ``"add"``: the change is the part of ``mask`` not in ``old``; ``"remove"``: the part of
    ``old`` not in ``mask``. Only the connected components of the change that touch ``seed`` (dilated
    by ``reach`` pixels: the clicks on the clicked slice, the change kept on the previous slice when
    propagating) are kept, so a correction reaches only the error it was made in. ``"replace"``:
    ``mask`` as it is (the change is then every pixel that differs).
    """
    if effect == "replace":
        return mask, mask ^ old
    diff = mask & ~old if effect == "add" else old & ~mask
    change = connected_to(diff, seed, reach) if seed.any() else np.zeros_like(diff)
    return (old | change if effect == "add" else old & ~change), change
