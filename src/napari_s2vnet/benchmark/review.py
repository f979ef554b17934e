"""Review guidance: do the slices the session ranks as most doubtful hold more of the error?

For each case, through the public :class:`inference.session.Session` (one thread, features cached):

* ``auto``: Auto-segment (all model classes); a wrong voxel is one whose label differs from the
  reference, with reference classes the model does not know counted as background;
* ``clicks``: ``classes_per_case`` classes (:func:`pick_classes`), each one click at the deepest point
  of its largest slice, then propagation through the volume; a wrong voxel is a miss or a leak of
  one of those classes.

Then the slices are ranked by ``session.slice_doubt()`` and the share of all wrong voxels on the top
``top`` fraction of the slices (at least one) is reported, beside what random order finds on
average (that fraction of the slices: ``n / Z``), the share on the same number of slices ranked by
labelled area (a naive alternative: big slices have long borders) and the best possible share
(slices ranked by their own error, the oracle).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from napari_s2vnet.benchmark.interactive import pick_classes
from napari_s2vnet.evaluation.clicks import deepest_point


def top_share(per_slice_errors: np.ndarray, score: np.ndarray, n: int) -> float:
    """Share of the errors on the ``n`` slices of highest ``score`` (ties: lower slice first)."""
    total = float(per_slice_errors.sum())
    if total == 0:
        return float("nan")
    top = np.argsort(-np.asarray(score, np.float64), kind="stable")[:n]
    return float(per_slice_errors[top].sum()) / total


def _shares(errors: np.ndarray, doubt: np.ndarray, area: np.ndarray, top: float) -> dict[str, Any]:
    z_count = len(errors)
    n = max(1, math.ceil(top * z_count))
    return {"slices": z_count, "top_slices": n, "wrong_voxels": int(errors.sum()),
            "doubt": top_share(errors, doubt, n), "random": n / z_count, "area": top_share(errors, area, n),
            "oracle": top_share(errors, errors, n), "scored_slices": int((doubt > 0).sum())}


def review_case(predictor, case: dict[str, Any], classes_per_case: int, top: float = 0.1,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    image, gt, spacing, modality = case["image"], case["labels"], case["spacing"], case["modality"]
    known = set(int(c) for c in predictor.model.config.class_ids)
    out: dict[str, Any] = {}
    base = predictor.session(image, spacing, modality)
    base.prepare_features()

    def session():
        s = predictor.session(image, spacing, modality)
        s.cache = base.cache  # read-only features shared by both scenarios
        return s

    t0 = time.perf_counter()
    s = session()
    labels = s.auto()
    truth = np.where(np.isin(gt, list(known)), gt, 0)
    wrong = (labels.astype(np.int64) != truth).reshape(len(gt), -1).sum(1)
    area = (labels > 0).reshape(len(gt), -1).sum(1)
    out["auto"] = {**_shares(wrong, s.slice_doubt(), area, top), "seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    s = session()
    classes = pick_classes(gt, classes_per_case)
    for c in classes:
        per_slice = (gt == c).reshape(len(gt), -1).sum(1)
        z = int(np.argmax(per_slice))
        y, x = deepest_point(gt[z] == c)
        s.add_click(z, int(y), int(x), c)
        for _ in s.propagate():
            pass
    labels = s.labels()
    wrong_mask = np.zeros(gt.shape, bool)
    for c in classes:
        wrong_mask |= (labels == c) != (gt == c)
    wrong = wrong_mask.reshape(len(gt), -1).sum(1)
    area = np.isin(labels, classes).reshape(len(gt), -1).sum(1)
    out["clicks"] = {**_shares(wrong, s.slice_doubt(), area, top), "classes": classes,
                     "seconds": time.perf_counter() - t0}
    for scenario, r in out.items():
        log(f"  {case['name']} {scenario}: top {r['top_slices']}/{r['slices']} slices by doubt hold "
            f"{r['doubt']:.1%} of {r['wrong_voxels']} wrong voxels (random {r['random']:.1%}, "
            f"area {r['area']:.1%}, oracle {r['oracle']:.1%})")
    return out


def review_guidance(cases: list[dict[str, Any]], predictor, classes_per_case: int, top: float = 0.1,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    result: dict[str, Any] = {"top_fraction": top, "cases": {}}
    for case in cases:
        log(f"review: {case['name']} {case['image'].shape}")
        result["cases"][case["name"]] = review_case(predictor, case, classes_per_case, top, log)
    pooled = {}
    for scenario in ("auto", "clicks"):
        rows = [r[scenario] for r in result["cases"].values() if not math.isnan(r[scenario]["doubt"])]
        if rows:
            pooled[scenario] = {k: float(np.mean([r[k] for r in rows])) for k in ("doubt", "random", "area", "oracle")}
    result["mean_over_cases"] = pooled
    return result
