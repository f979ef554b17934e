"""MR interactive Dice (simulated clicks) for weights files or training-run checkpoints.

    python scripts/mr_interactive.py runs/no_mr_tiny runs/bundled_tiny src/napari_s2vnet/_resources/weights/s2vnet_tiny_ct.safetensors

A run folder is read through its ``config.json`` + ``checkpoint.pt`` (the step is printed). Used for
the "MR never seen" generalisation check in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from napari_s2vnet.data.io import read_volume
from napari_s2vnet.data.samples import sample_path
from napari_s2vnet.evaluation.interactive import run_clicks
from napari_s2vnet.inference import Predictor
from napari_s2vnet.model.config import ModelConfig
from napari_s2vnet.model.s2vnet import S2VNet

CLASSES = {5: "liver", 1: "spleen", 2: "kidney_right", 3: "kidney_left"}


def load(source: str) -> tuple[Predictor, str]:
    path = Path(source)
    if path.is_dir():
        config = ModelConfig.from_json(json.dumps(json.loads((path / "config.json").read_text())["model"]))
        ckpt = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
        model = S2VNet(config)
        model.load_state_dict(ckpt["model"], strict=True)
        return Predictor(model, "cpu", f"{path.name}@{ckpt['step']}"), f"{path} (checkpoint step {ckpt['step']})"
    return Predictor.from_file(path, "cpu"), str(path)


def main(sources: list[str], clicks: int = 3) -> None:
    image, labels = read_volume(sample_path("mr")), read_volume(sample_path("mr_labels"))
    g = image.geometry
    gt = np.rint(g.to_internal(labels.array)).astype(np.int32)
    for source in sources:
        predictor, name = load(source)
        session = predictor.session(g.to_internal(image.array), g.internal_spacing, "MR")
        curves = run_clicks(session, gt, CLASSES, clicks=clicks, spacing_zyx=g.internal_spacing)
        per_class = {CLASSES[c.label]: [round(d, 3) for d in c.dice] for c in curves}
        mean = [round(float(np.mean([c.dice[i] for c in curves])), 3) for i in range(clicks)]
        print(json.dumps({"model": name, "dice_by_click": per_class, "mean_by_click": mean}))


if __name__ == "__main__":
    main(sys.argv[1:])
