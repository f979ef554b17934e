"""The unseen-volume evaluation: case loading, synthetic test lesions, per-kind protocol scores."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from napari_s2vnet.benchmark.unseen import SYNTHETIC_BASE, evaluate_case, insert_lesions, load_case, markdown
from napari_s2vnet.data.phantom import PHANTOM_CLASSES, make_phantom


def _phantom_case():
    ph = make_phantom(21, shape=(20, 80, 80))
    return {"name": "ph", "image": ph.image, "labels": ph.labels.astype(np.int32), "spacing": ph.spacing,
            "modality": "CT", "names": dict(PHANTOM_CLASSES)}


def test_synthetic_lesions_sit_inside_organs_and_change_the_image():
    case = _phantom_case()
    image, lesions = insert_lesions(case, 2, np.random.default_rng(0))
    ids = [int(i) for i in np.unique(lesions) if i]
    assert ids and all(i >= SYNTHETIC_BASE for i in ids)
    organs = case["labels"][lesions > 0]
    assert (organs > 0).all()  # every lesion voxel lies in a labelled organ
    assert np.abs(image - case["image"])[lesions > 0].mean() > 10  # HU changed inside
    again, _ = insert_lesions(case, 2, np.random.default_rng(0))
    assert np.array_equal(image, again)


def test_evaluate_case_scores_every_kind(predictor):
    case = _phantom_case()
    names = set(PHANTOM_CLASSES.values())
    seen = set(list(names)[: len(names) // 2])
    out = evaluate_case(predictor, case, seen, structures=3, lesions=1, clicks=2, seed=0, log=lambda *_: None)
    kinds = {r["kind"] for r in out["interactive"].values()}
    assert "synthetic lesion" in kinds and kinds <= {"seen", "never labelled", "synthetic lesion"}
    assert all(len(r["dice"]) == 2 for r in out["interactive"].values())
    assert out["interactive_all"]["n_structures"] == len(out["interactive"])
    assert out["automatic"] and 0 <= out["automatic_organs_mean"] <= 1
    text = markdown({"model": "m", "command": "c", "clicks": 2, "cases": [out]})
    assert "synthetic_lesion_0" in text


def test_load_case_from_any_image_label_pair(tmp_path):
    ph = make_phantom(2, shape=(8, 32, 32))
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(ph.image.transpose(2, 1, 0), affine), tmp_path / "i.nii.gz")
    nib.save(nib.Nifti1Image(ph.labels.transpose(2, 1, 0).astype(np.uint16), affine), tmp_path / "l.nii.gz")
    case = load_case(f"lump_tumor={tmp_path / 'i.nii.gz'}::{tmp_path / 'l.nii.gz'}::CT", None)
    assert case["name"] == "lump_tumor" and case["labels"].shape == ph.labels.shape
    assert all(n.startswith("lump_tumor_") for n in case["names"].values())


def test_pool_gives_the_goal_figures_of_several_runs_cut_at_five_clicks(tmp_path):
    """``--pool``: organs, lesions and no-drop steps pooled over runs of 5 and 20 clicks (cut at 5)."""
    import json

    from napari_s2vnet.benchmark.unseen import main

    def run(name, cases):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "unseen.json").write_text(json.dumps({"cases": cases}))
        return folder

    five = run("sel", [{"name": "a", "automatic": {"liver": 0.5, "rib_left_1": 0.1},
                        "interactive": {"liver": {"kind": "seen", "dice": [0.6, 0.7, 0.7, 0.8, 0.8]},
                                        "rib_left_1": {"kind": "never labelled", "dice": [0.1, 0.2, 0.1, 0.3, 0.4]}}}])
    twenty = run("test", [{"name": "b", "automatic": {},
                           "interactive": {"b_tumor_1": {"kind": "real lesion", "dice": [0.2] * 4 + [0.5] + [0.9] * 15}}}])
    assert main(["--pool", str(five), str(twenty), "--out", str(tmp_path / "pooled")]) == 0
    goals = json.loads((tmp_path / "pooled" / "goals.json").read_text())
    assert goals["organs_interactive"]["n_structures"] == 1  # the liver; a rib is no organ
    assert goals["organs_interactive"]["dice_1"] == 0.6 and goals["organs_interactive"]["dsc_final"] == 0.8
    assert goals["lesions_interactive"]["dsc_final"] == 0.5  # Dice after 5 of the 20 clicks
    assert goals["automatic_organs_mean"] == 0.5
    assert goals["all_interactive"]["no_drop_steps"] == [11, 12]  # the rib's 0.2 -> 0.1 is the one drop
    assert "≥ 0.75" in (tmp_path / "pooled" / "goals.md").read_text()
    per_case = goals["per_case"]
    a, b = per_case["cases"]  # case a: the mean over its two structures of their means over clicks 1-5
    assert a["structures"] == 2 and np.isclose(a["mean_clicks"], (0.72 + 0.22) / 2)
    assert np.isclose(b["mean_clicks"], 0.26) and b["dice_1"] == 0.2 and b["dice_last"] == 0.5  # cut at 5 clicks
    # every case counts once: the mean of the two cases, not of the three structures
    assert np.isclose(per_case["mean_of_cases"]["mean_clicks"], (0.47 + 0.26) / 2)
    assert "**mean of the 2 cases**" in (tmp_path / "pooled" / "goals.md").read_text()


def test_rule_figures_reads_every_scored_part_and_marks_the_missing(tmp_path):
    """``scripts/rule_figures.py``: one row of the figures the weights rules decide on, from a
    ``score_weights.sh`` folder; a part not scored (here the tumours) shows "–"."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from rule_figures import COLUMNS, figures

    out = tmp_path / "W"
    (out / "bundled").mkdir(parents=True)
    (out / "pooled_selection").mkdir()
    write = lambda path, data: path.write_text(json.dumps(data))  # noqa: E731
    write(out / "bundled" / "unseen.json", {"cases": [
        {"name": "bundled:ct", "automatic_organs_mean": 0.8, "interactive": {"liver": {"dice": [0.5, 0.6, 0.6, 0.7, 0.7]}}},
        {"name": "bundled:mr", "automatic_organs_mean": 0.6, "interactive": {"liver": {"dice": [0.7, 0.8, 0.8, 0.9, 0.9]}}}]})
    write(out / "untouched.json", {"a": [0.2, 0.4, 0.3, 0.5, 0.6], "b": [0.1, 0.1, 0.1, 0.1, 0.1]})
    write(out / "goals.json", {"organs_interactive": {"dice_1": 0.4, "dice_5": 0.5},
                               "lesions_interactive": {"dice_5": 0.35}, "automatic_organs_mean": 0.2,
                               "all_interactive": {"no_drop_fraction": 0.95}})
    write(out / "pooled_selection" / "goals.json", {"per_case": {"cases": [{"mean_clicks": 0.2}, {"mean_clicks": 0.4}],
                                                                     "mean_of_cases": {"mean_clicks": 0.3}}})
    write(out / "box.json", {"ct": {"kind": "bundled", "structures": {"1": {"box": 0.6, "dice": [0.6, 0.7, 0.7, 0.8, 0.8]}}},
                             "x": {"kind": "unseen", "structures": {"1": {"box": 0.2, "dice": [0.2, 0.3, 0.3, 0.4, 0.4]},
                                                                    "2": {"box": 0.4, "dice": [0.4, 0.5, 0.5, 0.6, 0.6]}}}})
    row = figures(out)
    assert list(row) == list(COLUMNS) and row["weights"] == "W"
    assert row["bundled @1 / @5"] == "0.600 / 0.800" and row["automatic CT / MR"] == "0.800 / 0.600"
    assert row["untouched 1-5 / @1 / @5"] == "0.250 / 0.150 / 0.350"
    assert row["no-drop untouched"] == "0.875"  # 0.4 -> 0.3 is the one drop in 8 steps
    assert row["organs @1 / @5"] == "0.400 / 0.500" and row["lesions @5"] == "0.350"
    assert row["selection"] == "0.300" and row["box / box + 5 never seen"] == "0.300 / 0.500"
    assert row["tumours @1 / @5"] == "–" and row["pycerr @1 / @5 / @20"] == "–"
