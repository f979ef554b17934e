"""Accuracy side by side: evaluation cases and automatic Dice of any segmenter (ours, the 3D U-Net).

Evaluation cases (internal order, Dice per class of the classes present in the reference that the
model knows):

* ``phantom<seed>``: procedural phantoms with seeds from :data:`HELDOUT_SEED0` on. Training uses
  seeds ``1000 * seed + i`` for ``i < --phantoms`` (0..15 for the bundled model), so these were
  seen by no model.
* ``ct_bundled``: the one real CT bundled with the package. Every model here was trained on it
  (it is the only real labelled CT we ship): its Dice is a *training-set* Dice.
* ``mr_bundled`` (interactive curves only): the real MR; our model saw it in interactive
  episodes, the 3D U-Net never did.

The models trained for the equal-budget comparison come from :mod:`trainings`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from napari_s2vnet.evaluation.metrics import dice_per_class

HELDOUT_SEED0 = 100_000


# ---------------------------------------------------------------------------------------- cases
def phantom_cases(count: int, shape=(48, 128, 128), spacing=(3.0, 2.0, 2.0)) -> list[dict[str, Any]]:
    from napari_s2vnet.data.phantom import make_phantom

    cases = []
    for i in range(count):
        ph = make_phantom(HELDOUT_SEED0 + i, shape=tuple(shape), spacing=tuple(spacing))
        cases.append({"name": f"phantom{HELDOUT_SEED0 + i}", "image": ph.image, "labels": ph.labels.astype(np.int32),
                      "spacing": tuple(ph.spacing), "modality": "CT", "heldout": True})
    return cases


def real_case(kind: str) -> dict[str, Any]:
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    vol = read_volume(sample_path(kind))
    lab = read_volume(sample_path(f"{kind}_labels"))
    g = vol.geometry
    return {"name": f"{kind}_bundled", "image": g.to_internal(vol.array),
            "labels": np.rint(g.to_internal(lab.array)).astype(np.int32), "spacing": tuple(g.internal_spacing),
            "modality": vol.modality or ("MR" if kind == "mr" else "CT"), "heldout": False}


# ---------------------------------------------------------------------------------------- auto Dice
def evaluate_auto(segment: Callable[[np.ndarray, tuple, str], np.ndarray], class_ids: list[int],
                  cases: list[dict[str, Any]]) -> dict[str, Any]:
    known = set(int(c) for c in class_ids)
    out: dict[str, Any] = {}
    for case in cases:
        t0 = time.perf_counter()
        pred = segment(case["image"], case["spacing"], case["modality"])
        seconds = time.perf_counter() - t0
        wanted = [int(c) for c in np.unique(case["labels"]) if c and int(c) in known]
        dice = dice_per_class(pred, case["labels"], labels=wanted)
        dice.update({c: 0.0 for c in wanted if c not in dice})
        out[case["name"]] = {"mean": float(np.mean(list(dice.values()))) if dice else None,
                             "per_class": {str(k): v for k, v in sorted(dice.items())}, "seconds": seconds,
                             "heldout": case["heldout"]}
    phantoms = [v["mean"] for k, v in out.items() if k.startswith("phantom") and v["mean"] is not None]
    if phantoms:
        out["phantoms_heldout_mean"] = float(np.mean(phantoms))
    return out


def ours_segmenter(predictor):
    return lambda img, sp, mod: predictor.segment_internal(img, sp, mod)


def dynunet_segmenter(path: Path, roi, overlap: float, device: str = "cpu"):
    from napari_s2vnet.benchmark import baselines3d

    spec = {"method": "dynunet", "baseline": {"weights": str(path)}}
    net, info = baselines3d.load_or_build(spec)
    net = net.to(device).eval()
    ids = np.asarray([0] + list(info["class_ids"]), np.uint16)

    def run(img, sp, mod):
        return baselines3d.segment(net, img, sp, mod, ids, roi=roi, overlap=overlap, sw_batch=1,
                                   target_spacing=baselines3d_target(), device=device)

    return run, info


def baselines3d_target() -> tuple[float, float, float]:
    from napari_s2vnet.benchmark.train3d import TARGET_SPACING

    return TARGET_SPACING
