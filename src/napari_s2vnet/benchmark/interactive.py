"""Interactive latency and click curves, through the public :class:`inference.session.Session`.

Latency (features cached, as in the plugin after "prepare"):

* feature-cache build: ``session.prepare_features()`` time ÷ slices;
* click -> updated current slice: ``session.add_click`` (returns the new labels of the clicked
  slice); clicks at the deepest point of a random class on a random slice, cycling through 8
  classes (so later clicks refine classes that already have clicks);
* click -> whole volume: the same ``add_click`` + exhausting ``session.propagate()`` (every click is
  propagated before the next one, as in the plugin);
* a ``cProfile`` of the clicks says where the time goes.

Click curves (the usual simulated user, :mod:`evaluation.clicks`, in 3D with the voxel spacing):
for each class separately, click 1 at the deepest point of the class, then each click at the
deepest point of the largest 3D error region (positive on a miss, negative on leakage); after each
click the round is propagated through the volume and the class's 3D Dice is recorded. Methods:

* ``s2vnet``: our model;
* ``s2vnet_no_propagation``: the same weights with ``use_propagation=False`` (every slice starts
  again from the click centres instead of the centres refined on the previous slice);
* ``s2vnet_box``: the challenge's "box + clicks" protocol: first a box (:func:`first_box`: the
  class's bounding box on the slice where it is largest; the challenge's box is 3-D, ours is the 2-D
  box of ``Session.add_box``), propagated, then the same correction clicks; its step k is "box + k
  clicks" (so Dice@5 is the challenge's box + 5 clicks) and ``dice_box`` the Dice after the box alone;
* ``region_growing``: what a user without AI would use, SimpleITK ``ConfidenceConnected`` 3D region
  growing on a curvature-flow smoothed image, seeded by the positive clicks; a negative click
  (leakage) makes the intensity interval narrower (multiplier x 0.75 per negative click).

Scores (:mod:`evaluation.protocol`): the CVPR 2025 interactive challenge's 5-click protocol (Dice per
step, DSC_AUC, final Dice), NoC@85 / NoC@90 within ``max_clicks`` (``max_clicks + 1`` when never
reached, with the number of such failures) and the fraction of click steps in which Dice did not drop
by more than 0.01.
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from napari_s2vnet.evaluation.clicks import correction_click, deepest_point, first_click
from napari_s2vnet.evaluation.metrics import binary_dice
from napari_s2vnet.evaluation.protocol import summarize


def pick_classes(gt: np.ndarray, count: int, min_voxels: int = 50) -> list[int]:
    """``count`` classes spread evenly over the size ranking (large and small organs alike)."""
    ids, sizes = np.unique(gt[gt > 0], return_counts=True)
    keep = [(int(s), int(i)) for i, s in zip(ids, sizes) if s >= min_voxels]
    keep.sort(reverse=True)
    if len(keep) <= count:
        return [i for _, i in keep]
    picks = np.unique(np.linspace(0, len(keep) - 1, count).round().astype(int))
    return [keep[k][1] for k in picks]


# ---------------------------------------------------------------------------------------- latency
def latency(predictor, image: np.ndarray, spacing, modality: str, gt: np.ndarray, n_clicks: int = 40,
            seed: int = 0, profile: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {"shape": list(image.shape), "n_clicks": n_clicks}
    # a click before any feature is cached (cold): encodes the clicked slice and a few neighbours
    classes = pick_classes(gt, 8)
    slices = {c: np.flatnonzero((gt == c).reshape(gt.shape[0], -1).any(1)) for c in classes}
    clicks = []
    for i in range(n_clicks):
        c = classes[i % len(classes)]
        z = int(rng.choice(slices[c]))
        y, x = deepest_point(gt[z] == c)
        clicks.append((z, y, x, c))
    t0 = time.perf_counter()
    session = predictor.session(image, spacing, modality)
    result["session_create_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.add_click(*clicks[0])
    result["cold_click_ms"] = (time.perf_counter() - t0) * 1000
    session = predictor.session(image, spacing, modality)
    t0 = time.perf_counter()
    session.prepare_features()
    build = time.perf_counter() - t0
    result.update(feature_cache_s=build, feature_cache_ms_per_slice=build * 1000 / image.shape[0],
                  feature_cache_mb=session.state.cache_bytes / 2**20)
    # as in the plugin: every click is followed by the propagation of its round (a click while a
    # propagation is unfinished makes the Session finish that pass too, which is not what we time)
    times, prop = [], []
    prof = cProfile.Profile() if profile else None
    for i, (z, y, x, c) in enumerate(clicks[:n_clicks]):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        session.add_click(z, y, x, c)
        if prof:
            prof.disable()
        t1 = time.perf_counter()
        n = sum(1 for _ in session.propagate())
        t2 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        prop.append({"seconds": t2 - t0, "propagate_s": t2 - t1, "slices_written": n, "label": c,
                     "new_class": i < len(classes)})
    arr = np.asarray(times)
    result.update(click_ms=times, click_ms_p50=float(np.percentile(arr, 50)), click_ms_p95=float(np.percentile(arr, 95)),
                  click_ms_min=float(arr.min()), click_ms_max=float(arr.max()))
    if prof:
        result["click_profile"] = _top(prof, 12)
    secs = [p["seconds"] for p in prop]
    result.update(propagate=prop, propagate_volume_s=float(np.median(secs)), propagate_volume_s_min=min(secs),
                  propagate_volume_s_max=max(secs), propagate_volume_s_p95=float(np.percentile(secs, 95)),
                  propagate_slices_median=float(np.median([p["slices_written"] for p in prop])),
                  propagate_ms_per_slice=float(np.median([p["propagate_s"] * 1000 / max(1, p["slices_written"]) for p in prop])))
    return result


def _top(prof: cProfile.Profile, top: int) -> list[dict[str, Any]]:
    st = pstats.Stats(prof)
    calls = max(1, sum(nc for (f, _l, fn), (_cc, nc, *_r) in st.stats.items() if fn == "add_click"))  # type: ignore[attr-defined]
    rows = sorted(((tt, ct, f"{Path(f).name}:{fn}") for (f, _l, fn), (_cc, _nc, tt, ct, _c) in st.stats.items()),  # type: ignore[attr-defined]
                  reverse=True)[:top]
    return [{"function": name, "self_ms_per_click": tt * 1000 / calls, "cum_ms_per_click": ct * 1000 / calls}
            for tt, ct, name in rows]


# ---------------------------------------------------------------------------------------- curves
def first_box(mask: np.ndarray) -> tuple[int, int, int, int, int]:
    """A box prompt ``(z, y0, x0, y1, x1)``: the bounding box of ``mask`` on the slice where it is largest."""
    z = int(mask.reshape(mask.shape[0], -1).sum(1).argmax())
    ys, xs = np.nonzero(mask[z])
    return z, int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def _curve_model(predictor, image, spacing, modality, gt, classes, max_clicks,
                 box_first: bool = False) -> dict[int, dict[str, Any]]:
    from napari_s2vnet.inference.state import Click

    session = predictor.session(image, spacing, modality)
    session.prepare_features()
    out: dict[int, dict[str, Any]] = {}
    for c in classes:
        mask = gt == c
        click = first_click(mask, spacing)
        dices: list[float] = []
        seconds: list[float] = []
        extra: dict[str, Any] = {}
        if box_first:  # the box, propagated, then correction clicks from what it gave
            t0 = time.perf_counter()
            session.add_box(*first_box(mask), c)
            for _z in session.propagate():
                pass
            seconds.append(time.perf_counter() - t0)
            pred = session.labels() == c
            extra["dice_box"] = binary_dice(pred, mask)
            click = correction_click(pred, mask, spacing)
        for _ in range(max_clicks):
            if click is None:  # perfect already: the score stays
                dices.append(dices[-1] if dices else extra["dice_box"])
                continue
            t0 = time.perf_counter()
            session.add_clicks([Click(*click.point, c, click.positive)])
            for _z in session.propagate():
                pass
            seconds.append(time.perf_counter() - t0)
            pred = session.labels() == c
            dices.append(binary_dice(pred, mask))
            click = correction_click(pred, mask, spacing)
        session.remove_class(c)
        out[c] = {"dice": dices, "round_s": seconds, **extra}
    return out


def _curve_region_growing(image, spacing, gt, classes, max_clicks, multiplier: float = 2.5) -> dict[int, dict[str, Any]]:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    smooth = sitk.CurvatureFlow(img, timeStep=0.0625, numberOfIterations=3)
    out: dict[int, dict[str, Any]] = {}
    for c in classes:
        mask = gt == c
        click = first_click(mask, spacing)
        seeds: list[tuple[int, int, int]] = []
        negatives = 0
        dices: list[float] = []
        seconds: list[float] = []
        for _ in range(max_clicks):
            if click is None:
                dices.append(dices[-1])
                continue
            t0 = time.perf_counter()
            if click.positive:
                seeds.append(tuple(int(v) for v in click.point[::-1]))  # (x, y, z) for SimpleITK
            else:
                negatives += 1
            seg = sitk.ConfidenceConnected(smooth, seedList=seeds, numberOfIterations=3,
                                           multiplier=multiplier * 0.75**negatives, initialNeighborhoodRadius=1,
                                           replaceValue=1)
            pred = sitk.GetArrayViewFromImage(seg).astype(bool)
            seconds.append(time.perf_counter() - t0)
            dices.append(binary_dice(pred, mask))
            click = correction_click(pred, mask, spacing)
        out[c] = {"dice": dices, "round_s": seconds}
    return out


def no_propagation(predictor):
    """The same weights with propagation disabled (centres re-initialised from the clicks on every slice)."""
    from napari_s2vnet.inference.predictor import Predictor
    from napari_s2vnet.model.s2vnet import S2VNet

    model = S2VNet(dataclasses.replace(predictor.model.config, use_propagation=False))
    model.load_state_dict(predictor.model.state_dict())
    return Predictor(model, predictor.device, predictor.model_id + " (no propagation)")


def summarize_curves(per_class: dict[int, dict[str, Any]], max_clicks: int) -> dict[str, Any]:
    """The protocol's scores (:func:`evaluation.protocol.summarize`) plus the median round time."""
    if not per_class:
        return {}
    summary = summarize({k: v["dice"] for k, v in per_class.items()}, max_clicks)
    summary["n_classes"] = summary["n_structures"]
    rounds = [s for v in per_class.values() for s in v["round_s"]]
    summary["round_s_median"] = float(np.median(rounds)) if rounds else None
    boxes = [v["dice_box"] for v in per_class.values() if "dice_box" in v]
    if boxes:
        summary["dice_box"] = float(np.mean(boxes))
    return summary


def click_curves(cases: list[dict[str, Any]], predictor, max_clicks: int, classes_per_case: int,
                 methods=("s2vnet", "s2vnet_box", "s2vnet_no_propagation", "region_growing"),
                 log: Callable = print) -> dict[str, Any]:
    """``cases``: dicts with name, image, labels, spacing, modality. -> per method: per case and pooled."""
    runners = {}
    if "s2vnet" in methods:
        runners["s2vnet"] = lambda c, k: _curve_model(predictor, c["image"], c["spacing"], c["modality"], c["labels"], k, max_clicks)
    if "s2vnet_box" in methods:
        runners["s2vnet_box"] = lambda c, k: _curve_model(predictor, c["image"], c["spacing"], c["modality"], c["labels"],
                                                          k, max_clicks, box_first=True)
    if "s2vnet_no_propagation" in methods:
        np_pred = no_propagation(predictor)
        runners["s2vnet_no_propagation"] = lambda c, k: _curve_model(np_pred, c["image"], c["spacing"], c["modality"], c["labels"], k, max_clicks)
    if "region_growing" in methods:
        runners["region_growing"] = lambda c, k: _curve_region_growing(c["image"], c["spacing"], c["labels"], k, max_clicks)
    result: dict[str, Any] = {"max_clicks": max_clicks, "methods": {}}
    for name, runner in runners.items():
        by_case, pooled = {}, {}
        for case in cases:
            classes = pick_classes(case["labels"], classes_per_case)
            t0 = time.perf_counter()
            per_class = runner(case, classes)
            log(f"  {name} on {case['name']}: {len(classes)} classes, {time.perf_counter() - t0:.0f} s")
            by_case[case["name"]] = {"per_class": {str(k): v for k, v in per_class.items()},
                                     **summarize_curves(per_class, max_clicks)}
            pooled.update({(case["name"], k): v for k, v in per_class.items()})
        result["methods"][name] = {"cases": by_case, "pooled": summarize_curves(pooled, max_clicks)}
    return result
