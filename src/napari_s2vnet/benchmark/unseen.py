"""Accuracy on volumes a model never saw: automatic Dice, and the interactive protocol per structure.

``python -m napari_s2vnet.benchmark.unseen --model W.safetensors --data FETCHED --case NAME [...]``

For each case (a volume written by ``napari-s2vnet data fetch``, or ``bundled:ct`` / ``bundled:mr``):

* **automatic**: ``Predictor.segment_internal``; Dice of every model class present in the reference;
  ``organs`` is the subset named in :data:`ORGANS`;
* **interactive**: a fresh :class:`~napari_s2vnet.inference.Session` per case; up to
  ``--structures`` reference structures spread over the size ranking (:func:`pick_classes`), every
  real lesion class (names with tumor/lesion/cyst/nodule), and ``--lesions`` synthetic lesions painted
  into organs of the raw image (:func:`napari_s2vnet.train.targets.paint_lesion`, the generator of the
  training episodes, at 5-20 mm radius). Each structure gets ``--clicks`` simulated clicks
  (:func:`evaluation.interactive.run_clicks`) and is scored with :mod:`evaluation.protocol`;
* each structure is marked ``seen`` when its class name is labelled in a volume of the model's
  training data (``--train-data`` folders and ``--exclude`` as given to ``napari-s2vnet train``),
  else ``never labelled`` (synthetic lesions: ``synthetic lesion``; real lesions are never labelled in
  any training source).

Writes ``unseen.json`` and ``unseen.md`` to ``--out``. ``--pool DIR [DIR ...] --out OUT`` pools earlier
results (their ``unseen.json``; curves cut at the shortest, 5 clicks when mixed) into ``OUT/goals.json``
and ``OUT/goals.md``: the figures issue 8 sets goals for (:func:`goal_figures`), and per case the mean
Dice over clicks 1-5 with the mean of the cases (:func:`case_figures`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_s2vnet.benchmark.interactive import pick_classes
from napari_s2vnet.evaluation.interactive import run_clicks
from napari_s2vnet.evaluation.metrics import dice_per_class
from napari_s2vnet.evaluation.protocol import CHALLENGE_CLICKS, summarize

ORGANS = frozenset({
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "esophagus", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "heart",
    "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "trachea", "thyroid_gland",
    "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
    "lung_lower_lobe_right", "lung_left", "lung_right", "brain",
})
LESION_WORDS = ("tumor", "tumour", "lesion", "cyst", "nodule")  # in a class name: a real lesion
SYNTHETIC_BASE = 60000  # label ids of synthetic lesions (above any class id)


def load_case(name: str, data: Path | None) -> dict[str, Any]:
    """-> internal-order image, labels, spacing, modality and ``{id: name}`` of a case.

    ``name``: a fetched case, ``bundled:ct`` / ``bundled:mr``, or ``NAME=IMAGE::LABELS::MODALITY``
    (any image + label files ``read_volume`` reads; every label id is called ``NAME_<id>``).
    """
    from napari_s2vnet.data.io import read_volume

    if "::" in name:
        case, rest = name.split("=", 1)
        image, labels, modality = rest.split("::")
        ids = np.unique(np.rint(read_volume(labels).array).astype(np.int32))
        names, name = {int(i): f"{case}_{int(i)}" for i in ids if i}, case
    elif name.startswith("bundled:"):
        from napari_s2vnet.data.samples import sample_class_names, sample_path

        kind = name.split(":", 1)[1]
        image, labels, names, modality = sample_path(kind), sample_path(f"{kind}_labels"), \
            sample_class_names(kind, present_only=True), "CT" if kind == "ct" else "MR"
    else:
        from napari_s2vnet.data.fetch import read_manifest

        if data is None:
            raise SystemExit("--data is needed for fetched cases")
        cases = {c.name: c for c in read_manifest(data)}
        if name not in cases:
            raise SystemExit(f"no case {name!r} in {data}: {sorted(cases)}")
        c = cases[name]
        image, labels, names, modality = c.image, c.labels, c.class_names, c.modality
    vol = read_volume(image, modality)
    g = vol.geometry
    lab = np.rint(read_volume(labels).array).astype(np.int32)
    return {"name": name, "image": g.to_internal(vol.array).astype(np.float32), "labels": g.to_internal(lab),
            "spacing": g.internal_spacing, "modality": modality, "names": dict(names)}


def training_names(train_data: list[str], exclude: set[str]) -> set[str]:
    """Class names labelled in the training volumes of a run with these ``--data`` / ``--exclude``."""
    from napari_s2vnet.data.phantom import PHANTOM_CLASSES
    from napari_s2vnet.data.samples import sample_class_names

    names = set(PHANTOM_CLASSES.values())
    for source in train_data:
        if source == "bundled":
            for kind in ("ct", "mr"):
                if f"{kind}_abdomen" not in exclude:
                    names |= set(sample_class_names(kind, present_only=True).values())
        elif (Path(source) / "manifest.json").is_file():
            from napari_s2vnet.data.fetch import read_manifest

            for c in read_manifest(Path(source)):
                if c.use == "train" and c.name not in exclude:
                    names |= set(c.class_names.values())
    return names


def insert_lesions(case: dict[str, Any], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw image with ``count`` synthetic lesions in organs, and their label map (ids from SYNTHETIC_BASE)."""
    from scipy import ndimage

    from napari_s2vnet.train.targets import lesion_mask, paint_lesion

    image, labels, spacing = case["image"].copy(), case["labels"], case["spacing"]
    lesions = np.zeros(labels.shape, np.int32)
    organs = [i for i, n in case["names"].items() if n in ORGANS and (labels == i).sum() > 2000]
    for k in range(count):
        if not organs:
            break
        host = labels == int(rng.choice(organs))
        inner = np.argwhere(ndimage.binary_erosion(host, iterations=3) & (lesions == 0))
        if not len(inner):
            continue
        cz, cy, cx = inner[rng.integers(len(inner))]
        r_mm = float(rng.uniform(5.0, 20.0))
        rz, ry, rx = (int(np.ceil(1.6 * r_mm / s)) + 2 for s in spacing)
        box = tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in zip((cz, cy, cx), (rz, ry, rx), labels.shape))
        local = tuple(int(c - b.start) for c, b in zip((cz, cy, cx), box))
        blob = lesion_mask(tuple(b.stop - b.start for b in box), local, r_mm / spacing[1], spacing[0] / spacing[1], rng)
        blob &= host[box]
        if blob.sum() < 30:
            continue
        painted = paint_lesion(image[box][:, None], blob, host[box], rng, value_range=None)[:, 0]
        image[box] = np.where(blob | (ndimage.binary_dilation(blob, iterations=2)), painted, image[box])
        lesions[box][blob] = SYNTHETIC_BASE + k
    return image, lesions


def case_structures(case: dict[str, Any], structures: int) -> list[int]:
    """The labels a case's interactive protocol clicks: ``structures`` spread over the size ranking
    (:func:`pick_classes`, at least 200 voxels), then every real lesion class (at least 20 voxels)."""
    gt = case["labels"]
    real = pick_classes(gt, structures, min_voxels=200)
    return real + [i for i, n in case["names"].items()
                   if any(w in n for w in LESION_WORDS) and i not in real and (gt == i).sum() >= 20]


def evaluate_case(predictor, case: dict[str, Any], seen: set[str], structures: int, lesions: int, clicks: int,
                  seed: int, zoom: bool = True, log=print, z_mm: float | None = None) -> dict[str, Any]:
    names, gt = case["names"], case["labels"]
    out: dict[str, Any] = {"name": case["name"], "shape": list(gt.shape), "spacing": list(case["spacing"])}
    t0 = time.perf_counter()
    auto = predictor.segment_internal(case["image"], case["spacing"], case["modality"], z_mm=z_mm)
    model_names = predictor.class_names
    present = [int(i) for i in np.unique(gt) if i and names.get(int(i)) == model_names.get(int(i))]
    dice = dice_per_class(auto, gt, labels=present) if present else {}
    out["automatic"] = {names[c]: d for c, d in dice.items()}
    organs = [d for c, d in dice.items() if names[c] in ORGANS]
    out["automatic_organs_mean"] = float(np.mean(organs)) if organs else None
    out["automatic_s"] = time.perf_counter() - t0
    log(f"  {case['name']}: automatic, {len(dice)} classes, organs mean {out['automatic_organs_mean']}")
    real = case_structures(case, structures)
    rows: dict[str, dict[str, Any]] = {}
    session = predictor.session(case["image"], case["spacing"], case["modality"])
    session.zoom &= zoom
    for curve in run_clicks(session, gt, real, clicks, case["spacing"]):
        name = names.get(curve.label, str(curve.label))
        kind = "real lesion" if any(w in name for w in LESION_WORDS) else ("seen" if name in seen else "never labelled")
        rows[name] = {"kind": kind, "dice": curve.dice, "voxels": int((gt == curve.label).sum())}
    if lesions:
        image, lesion_map = insert_lesions(case, lesions, np.random.default_rng(seed))
        session = predictor.session(image, case["spacing"], case["modality"])
        session.zoom &= zoom
        ids = [int(i) for i in np.unique(lesion_map) if i]
        for curve in run_clicks(session, lesion_map, ids, clicks, case["spacing"]):
            rows[f"synthetic_lesion_{curve.label - SYNTHETIC_BASE}"] = {
                "kind": "synthetic lesion", "dice": curve.dice, "voxels": int((lesion_map == curve.label).sum())}
    out["interactive"] = rows
    out["interactive_by_kind"] = {
        kind: summarize({n: r["dice"] for n, r in rows.items() if r["kind"] == kind}, clicks)
        for kind in sorted({r["kind"] for r in rows.values()})}
    out["interactive_all"] = summarize({n: r["dice"] for n, r in rows.items()}, clicks)
    out["seconds"] = time.perf_counter() - t0
    log(f"  {case['name']}: interactive, {len(rows)} structures, {out['seconds']:.0f} s")
    return out


def goal_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled over ``cases``: the figures issue 8 sets goals for (organs = :data:`ORGANS` names)."""
    organs = {(c["name"], n): r["dice"] for c in cases for n, r in c["interactive"].items()
              if n in ORGANS and r["kind"] in ("seen", "never labelled")}
    lesions = {(c["name"], n): r["dice"] for c in cases for n, r in c["interactive"].items()
               if r["kind"] in ("real lesion", "synthetic lesion")}
    every = {(c["name"], n): r["dice"] for c in cases for n, r in c["interactive"].items()}
    auto = [d for c in cases for n, d in c["automatic"].items() if n in ORGANS]
    o, les, a = summarize(organs), summarize(lesions), summarize(every)
    return {"organs_interactive": o, "lesions_interactive": les, "all_interactive": a,
            "automatic_organs_mean": float(np.mean(auto)) if auto else None, "automatic_organs_n": len(auto)}


def _goal_lines(g: dict[str, Any]) -> list[str]:
    def fmt(v, digits=3):
        return "–" if v is None else f"{v:.{digits}f}"

    o, les, a = g["organs_interactive"], g["lesions_interactive"], g["all_interactive"]
    return ["| figure | goal | measured |", "|---|---|---|",
            f"| organs, Dice after 1 click ({o.get('n_structures', 0)} organs) | ≥ 0.75 | {fmt(o.get('dice_1'))} |",
            f"| organs, Dice after 5 clicks | ≥ 0.85 | {fmt(o.get('dsc_final'))} |",
            f"| lesions, Dice after 5 clicks ({les.get('n_structures', 0)} lesions) | ≥ 0.70 | {fmt(les.get('dsc_final'))} |",
            f"| automatic, organs mean Dice ({g['automatic_organs_n']} organs) | ≥ 0.75 | {fmt(g['automatic_organs_mean'])} |",
            f"| click steps without a Dice drop > 0.01 (all structures) | ≥ 0.90 | {fmt(a.get('no_drop_fraction'))} |", ""]


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Unseen-volume evaluation: {result['model']}", "", f"`{result['command']}`", ""]
    lines += ["## Against the goals of issue 8 (pooled over the cases below)", ""] + _goal_lines(goal_figures(result["cases"]))
    for case in result["cases"]:
        lines += [f"## {case['name']} ({'x'.join(map(str, case['shape']))}, spacing "
                  f"{', '.join(f'{s:.2f}' for s in case['spacing'])} mm)", "",
                  f"Automatic, organs mean Dice: {case['automatic_organs_mean']}", "",
                  "| structure | kind | voxels | Dice@1 | Dice@3 | Dice@5 | DSC_AUC | NoC@85 | NoC@90 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, r in case["interactive"].items():
            s = summarize({name: r["dice"]}, result["clicks"])
            d = r["dice"]
            lines.append(f"| {name} | {r['kind']} | {r['voxels']} | {d[0]:.3f} | {d[min(2, len(d) - 1)]:.3f} | "
                         f"{d[min(4, len(d) - 1)]:.3f} | {s['dsc_auc']:.3f} | {s['noc85']:.0f} | {s['noc90']:.0f} |")
        lines += ["", "| kind | structures | Dice@1 | Dice@5 | DSC_AUC | NoC@85 | NoC@90 | no-drop steps |",
                  "|---|---|---|---|---|---|---|---|"]
        for kind, s in list(case["interactive_by_kind"].items()) + [("all", case["interactive_all"])]:
            if s:
                lines.append(f"| {kind} | {s['n_structures']} | {s['dice_1']:.3f} | {s['dsc_final']:.3f} | "
                             f"{s['dsc_auc']:.3f} | {s['noc85']:.1f} | {s['noc90']:.1f} | "
                             f"{s['no_drop_fraction']:.3f} ({s['no_drop_steps'][0]}/{s['no_drop_steps'][1]}) |")
        lines.append("")
    return "\n".join(lines)


def case_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case, with :func:`summarize` on its structures: the mean Dice over clicks 1-5, Dice@1 and
    Dice@5; then the unweighted mean of those case figures (every case counts once, whatever its number
    of structures: the "selection" of docs/training.md when the cases are the five fetched volumes, the
    "tumours" when they are the five pyradiomics tumours)."""
    rows = []
    for c in cases:
        s = summarize({n: r["dice"] for n, r in c["interactive"].items()})
        if s:
            first = list(s["mean_dice_by_clicks"].values())[:CHALLENGE_CLICKS]
            rows.append({"case": c["name"], "structures": s["n_structures"], "mean_clicks": float(np.mean(first)),
                         "dice_1": s["dice_1"], "dice_last": s["dsc_final"]})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("mean_clicks", "dice_1", "dice_last")} if rows else {}
    return {"clicks": CHALLENGE_CLICKS, "cases": rows, "mean_of_cases": mean}


def _case_lines(f: dict[str, Any]) -> list[str]:
    k = f["clicks"]
    lines = ["## Per case: mean over its structures (every case counts once in the last row)", "",
             f"| case | structures | mean Dice over clicks 1–{k} | Dice@1 | Dice@{k} |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['structures']} | {r['mean_clicks']:.3f} | {r['dice_1']:.3f} | {r['dice_last']:.3f} |"
              for r in f["cases"]]
    if f["mean_of_cases"]:
        m = f["mean_of_cases"]
        lines.append(f"| **mean of the {len(f['cases'])} cases** | | **{m['mean_clicks']:.3f}** | {m['dice_1']:.3f} | "
                     f"{m['dice_last']:.3f} |")
    return lines + [""]


def pool(folders: list[Path], out: Path) -> dict[str, Any]:
    """Goal figures pooled over the cases of earlier runs (``folders`` holding ``unseen.json``), and the
    per-case figures (:func:`case_figures`)."""
    runs = [json.loads((f / "unseen.json").read_text()) for f in folders]
    cases = [c for r in runs for c in r["cases"]]
    figures = goal_figures(cases)
    figures["per_case"] = case_figures(cases)
    figures["sources"] = [str(f) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    (out / "goals.json").write_text(json.dumps(figures, indent=1, default=float))
    lines = [f"# Goals of issue 8, pooled over {len(folders)} runs", "", *(f"- `{f}`" for f in folders), ""]
    (out / "goals.md").write_text("\n".join(lines + _goal_lines(figures) + _case_lines(figures["per_case"])))
    print("\n".join(_goal_lines(figures) + _case_lines(figures["per_case"])))
    return figures


def main(argv: list[str] | None = None) -> int:
    import sys

    p = argparse.ArgumentParser(prog="python -m napari_s2vnet.benchmark.unseen", description=__doc__.splitlines()[0])
    p.add_argument("--pool", type=Path, nargs="+", help="pool the unseen.json of these folders into OUT/goals.md")
    p.add_argument("--model", help="weights file (.safetensors)")
    p.add_argument("--data", type=Path, help="folder written by `napari-s2vnet data fetch`")
    p.add_argument("--case", action="append",
                   help="case name (repeatable), bundled:ct / bundled:mr, or NAME=IMAGE::LABELS::MODALITY")
    p.add_argument("--train-data", action="append", default=[], help="the model's --data sources (for seen/unseen)")
    p.add_argument("--exclude", action="append", default=[], help="the model's --exclude")
    p.add_argument("--structures", type=int, default=10)
    p.add_argument("--lesions", type=int, default=3)
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pixel-mm", type=float, default=0.0, help="override the model's in-plane working spacing")
    p.add_argument("--zoom-mm", type=float, default=-1.0,
                   help="override the model's zoomed-view spacing (0 = no zoom; default: the weights' own)")
    p.add_argument("--no-zoom", action="store_true", help="never decode small objects on the zoomed view")
    p.add_argument("--z-mm", type=float, default=None,
                   help="automatic mode decodes slices at most this far apart (default: the model's in-plane spacing; "
                        "0: every slice)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.pool:
        pool(args.pool, args.out)
        return 0
    if not args.model or not args.case:
        p.error("--model and --case are needed (or --pool)")
    import torch

    from napari_s2vnet.inference import Predictor

    torch.set_num_threads(args.threads)
    predictor = Predictor.from_file(args.model, "cpu")
    import dataclasses

    if args.pixel_mm:
        predictor.model.config = dataclasses.replace(predictor.model.config, pixel_spacing_mm=args.pixel_mm)
    if args.zoom_mm >= 0:
        predictor.model.config = dataclasses.replace(predictor.model.config, zoom_mm=args.zoom_mm)
    seen = training_names(args.train_data, set(args.exclude))
    result = {"model": predictor.model_id, "zoom": not args.no_zoom, "z_mm": args.z_mm, "command": " ".join(["python -m napari_s2vnet.benchmark.unseen", *sys.argv[1:]]),
              "clicks": args.clicks, "cases": []}
    for name in args.case:
        result["cases"].append(evaluate_case(predictor, load_case(name, args.data), seen, args.structures,
                                             args.lesions, args.clicks, args.seed, not args.no_zoom, z_mm=args.z_mm))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unseen.json").write_text(json.dumps(result, indent=1, default=float))
    (args.out / "unseen.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
