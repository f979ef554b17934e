"""Accuracy side by side, and the equal-budget trainings (3D U-Net, ablations of our model).

Evaluation cases (internal order, Dice per class of the classes present in the reference that the
model knows):

* ``phantom<seed>``: procedural phantoms with seeds from :data:`HELDOUT_SEED0` on. Training uses
  seeds ``1000 * seed + i`` for ``i < --phantoms`` (0..15 for the bundled model), so these were
  seen by no model.
* ``ct_bundled``: the one real CT bundled with the package. Every model here was trained on it
  (it is the only real labelled CT we ship): its Dice is a *training-set* Dice.
* ``mr_bundled`` (interactive curves only): the real MR; our model saw it in interactive
  episodes, the 3D U-Net never did.

Trainings with the same wall-clock budget (``--train-budget-min``), each in its own process
where possible, one after the other so they do not share the CPU:

* ``s2vnet_full`` and the ablations ``s2vnet_no_propagation``, ``s2vnet_no_aggregation``,
  ``s2vnet_no_adaptive`` through ``napari-s2vnet train --ablation ...``; the wall-clock budget is
  turned into a step count from a short calibration run (steps/s on this machine), so the cosine
  schedule still ends; the real training time is reported;
* ``dynunet``: :func:`train3d.train_dynunet`, time-driven.

"One vs several centres per class" needs a model option (several learned/click centres per
class) that :class:`model.config.ModelConfig` does not have yet; :func:`centres_ablation_status`
reports that instead of inventing a number.
"""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from napari_s2vnet.evaluation.metrics import dice_per_class

HELDOUT_SEED0 = 100_000
VARIANTS = {"s2vnet_full": "none", "s2vnet_no_propagation": "no-propagation",
            "s2vnet_no_aggregation": "no-aggregation", "s2vnet_no_adaptive": "no-adaptive"}


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


# ---------------------------------------------------------------------------------------- trainings
def _train_cmd(out: Path, steps: int, ablation: str, phantoms: int, threads: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "napari_s2vnet", "train", "--out", str(out), "--steps", str(steps),
            "--ablation", ablation, "--val-every", str(max(steps, 1)), "--phantoms", str(phantoms),
            "--threads", str(threads), "--device", "cpu", "--seed", str(seed)]


def _last_seconds(log_csv: Path) -> tuple[int, float]:
    rows = list(csv.DictReader(open(log_csv)))
    return int(rows[-1]["step"]), float(rows[-1]["seconds"])


def calibrate_rate(out: Path, phantoms: int, threads: int, seed: int = 0, steps: int = 30, log=print) -> float:
    """Training steps per second of our model on this machine (a short real training run)."""
    out = Path(out)
    subprocess.run(_train_cmd(out, steps, "none", phantoms, threads, seed), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    first = min(5, len(rows) - 1)
    rate = (len(rows) - 1 - first) / max(1e-6, float(rows[-1]["seconds"]) - float(rows[first]["seconds"]))
    log(f"  calibration: {rate:.2f} training steps/s")
    return rate


def train_ours(name: str, out: Path, steps: int, phantoms: int, threads: int, seed: int = 0, log=print) -> dict[str, Any]:
    out = Path(out)
    t0 = time.perf_counter()
    proc = subprocess.run(_train_cmd(out, steps, VARIANTS[name], phantoms, threads, seed),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"training {name} failed:\n{proc.stdout[-2000:]}")
    done, seconds = _last_seconds(out / "train_log.csv")
    log(f"  {name}: {done} steps, {seconds:.0f} s training, {wall:.0f} s process")
    return {"weights": str(out / "weights.safetensors"), "steps": done, "train_seconds": seconds, "process_seconds": wall,
            "ablation": VARIANTS[name]}


def train_all(out: Path, budget_s: float, phantoms: int, threads: int, variants=tuple(VARIANTS), dynunet: bool = True,
              roi=(96, 96, 96), seed: int = 0, log=print) -> dict[str, Any]:
    import torch

    out = Path(out)
    result: dict[str, Any] = {"budget_s": budget_s, "threads": threads, "phantoms": phantoms, "models": {}}
    if variants:  # calibrate first, on an idle machine
        rate = calibrate_rate(out / "calibration", phantoms, threads, seed, log=log)
        result.update(steps_per_s=rate, steps=max(10, int(rate * budget_s)))
    if dynunet:
        from napari_s2vnet.benchmark.train3d import train_dynunet, training_volumes

        if threads:
            torch.set_num_threads(threads)
        volumes, class_names = training_volumes(phantoms, seed)
        t0 = time.perf_counter()
        path = train_dynunet(volumes, sorted(class_names), budget_s, out / "dynunet", roi=roi, seed=seed, log=log)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        result["models"]["dynunet"] = {"weights": str(path), "iterations": ckpt["iterations"],
                                       "train_seconds": ckpt["seconds"], "process_seconds": time.perf_counter() - t0,
                                       "volumes": ckpt["volumes"]}
    for name in variants:
        result["models"][name] = train_ours(name, out / name, result["steps"], phantoms, threads, seed, log)
    return result


def centres_ablation_status() -> dict[str, Any]:
    from napari_s2vnet.model.config import ModelConfig

    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    if "centres_per_class" in fields:
        return {"available": True}
    return {"available": False,
            "reason": "ModelConfig has no 'centres_per_class' option: the model keeps exactly one centre per class "
                      "(clicks are pooled into one centre, one learned embedding per class), so 'several centres "
                      "per class' cannot be trained or evaluated yet."}
