"""``napari-s2vnet train``: assemble the data, the configs and the validator, then train.

Data sources (``--data``, repeatable): ``bundled`` (the real CT for both modes, the real MR for
interactive episodes only, since its label ids are TotalSegmentator's MR map), the folder written by
``napari-s2vnet data fetch`` (its ``manifest.json``: the cases marked ``"use": "train"``, for
interactive episodes; ``--auto-cases`` also uses some for automatic episodes), or a dataset folder
(nnU-Net raw, MSD, TotalSegmentator, images/ + labels/). ``--phantoms N`` adds procedural phantoms.
``--exclude NAME`` leaves a case out (leave-one-volume-out runs; ``ct_abdomen`` / ``mr_abdomen`` name
the bundled ones).
``--classes`` keeps only some classes (ids or names); ``--map 7:5`` renames label id 7 to 5.
``--split FILE`` (``--fold N``) divides the cases of dataset folders into training and validation
cases (:mod:`napari_s2vnet.data.splits`); without it a dataset's first case also validates. Every
run writes the volumes it trained and validated on to ``OUT/split.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from napari_s2vnet.data.datasets import Case, DatasetSpec, bundled_cases, discover
from napari_s2vnet.data.phantom import PHANTOM_CLASSES
from napari_s2vnet.data.splits import Split, check_split, read_split
from napari_s2vnet.errors import InputError
from napari_s2vnet.evaluation.metrics import dice_per_class
from napari_s2vnet.inference.auto import auto_volume
from napari_s2vnet.inference.prepared import FeatureCache, from_normalized
from napari_s2vnet.model.config import TrainConfig, preset
from napari_s2vnet.model.s2vnet import S2VNet
from napari_s2vnet.inference.predictor import resolve_device
from napari_s2vnet.train.checkpoint import AMP_MODES, ScaleOptions
from napari_s2vnet.train.loader import cached_case
from napari_s2vnet.train.trainer import train
from napari_s2vnet.train.volumes import TrainVolume, load_case, load_fetched, phantom_volumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", default=None, help="'bundled' or a dataset folder (repeatable; default: bundled)")
    p.add_argument("--out", type=Path, default=Path("runs/s2vnet"), help="run folder")
    p.add_argument("--preset", default="tiny", help="model preset: tiny (CPU) or base")
    p.add_argument("--steps", type=int, default=TrainConfig.steps, help="training steps (an upper bound with --time-budget-min)")
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="train for this many minutes of wall clock; warm-up and cosine decay follow elapsed time")
    p.add_argument("--batch", type=int, default=TrainConfig.batch_episodes, help="episodes per step")
    p.add_argument("--slices", type=int, default=TrainConfig.episode_slices, help="slices per episode (T)")
    p.add_argument("--long-slices", type=int, default=0, help="curriculum: longer episodes (T) from --long-from on")
    p.add_argument("--long-from", type=int, default=0, help="step at which --long-slices starts")
    p.add_argument("--crop", type=int, default=TrainConfig.crop)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--interactive-fraction", type=float, default=TrainConfig.interactive_fraction)
    p.add_argument("--phantoms", type=int, default=TrainConfig.phantoms)
    p.add_argument("--no-mr", action="store_true", help="exclude the bundled MR (generalisation runs)")
    p.add_argument("--exclude", action="append", default=[], help="leave this case out (repeatable)")
    p.add_argument("--auto-cases", default="", help="fetched cases (comma-separated) also used for automatic episodes")
    p.add_argument("--fine-mm", type=float, default=0.0,
                   help="also train interactive episodes on fetched volumes resampled to this finer in-plane "
                        "spacing (those finer than it natively): what zoomed interactive passes decode")
    p.add_argument("--fine-upsampled", action="store_true",
                   help="with --fine-mm, fine copies of the coarser sources too: the bundled volumes upsampled "
                        "to --fine-mm and the phantoms rendered at it (interactive episodes only)")
    p.add_argument("--classes", default=None, help="comma-separated ids or names to keep")
    p.add_argument("--map", action="append", default=[], help="relabel SRC:DST (repeatable)")
    p.add_argument("--split", type=Path, default=None,
                   help="train/val split of the dataset folders' cases: JSON {\"train\": [...], \"val\": [...]} "
                        "or nnU-Net's splits_final.json (with --fold)")
    p.add_argument("--fold", type=int, default=0, help="fold of an nnU-Net splits_final.json given to --split")
    p.add_argument("--val-every", type=int, default=TrainConfig.val_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (exactly: random states included)")
    p.add_argument("--ckpt-every", type=int, default=0,
                   help="also write OUT/checkpoint.pt every N steps (default: at each validation); SIGTERM always writes one")
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation: micro-batches of --batch per step")
    p.add_argument("--amp", choices=AMP_MODES, default="auto",
                   help="CUDA mixed precision: auto (bf16 where supported, else fp16 with a gradient scaler), bf16, fp16, off")
    p.add_argument("--workers", type=int, default=0,
                   help="episode-loading processes (0: in the training process; --resume is exact only then)")
    p.add_argument("--cache", type=Path, default=None,
                   help="preprocessing cache folder: dataset cases resampled and normalised once, memory-mapped later")
    p.add_argument("--compile", action="store_true", help="torch.compile the per-slice encoder (unverified here: see docs/training.md)")
    p.add_argument("--target-mix", default="", help="interactive target kinds and weights, e.g. class:1,lesion:0.25")
    p.add_argument("--init", default="", help="start from this weights file (same preset and classes)")
    p.add_argument("--ablation", choices=["none", "no-propagation", "no-aggregation", "no-adaptive"], default="none")
    p.add_argument("--click-centres", choices=["per_click", "pooled"], default=None,
                   help="one centre per positive click (the preset's) or one pooled centre per class")
    p.add_argument("--augment", choices=["full", "light"], default=TrainConfig.augment,
                   help="full: nnU-Net-like (mirroring, elastic, scale 0.7-1.4, ...); light: v0.1's "
                        "(rotation, scale 0.85-1.15, shift, gain, noise; no mirroring)")
    p.add_argument("--contrast-randomise", type=float, default=TrainConfig.contrast_randomise, metavar="P",
                   help="probability that an interactive episode's intensities go through a random non-monotone "
                        "curve (single-source domain generalisation; docs/method.md); default 0")
    p.add_argument("--lesion-donor", type=float, default=TrainConfig.lesion_donor, metavar="P",
                   help="share of synthetic lesions that take the intensity of another labelled tissue of the "
                        "episode (a solid tumour in the lung) instead of a contrast relative to their organ; default 0")
    p.add_argument("--centres-per-class", type=int, default=None,
                   help="cluster centres per class (default: the preset's, 1)")
    p.add_argument("--embed-stride", type=int, choices=[2, 4], default=None,
                   help="stride of the pixel embedding (default: the preset's, 2); 4 = lighter pixel decoder "
                        "(no stride-2 fusion); --init accepts a stride-2 file for it (stride-2 layers dropped)")


def _load(case: Case, class_names: dict[int, str], target_mm: float, auto: bool, cache: Path | None,
          weight: float = 1.0, modality: str | None = None) -> TrainVolume:
    """One dataset case at the model spacing, through the preprocessing cache when ``--cache`` is set."""
    if cache is None:
        return load_case(case, class_names, target_mm, auto, weight, modality)
    return cached_case(case, class_names, target_mm, auto, cache, weight, modality)


def _select(spec: DatasetSpec, classes: str | None) -> DatasetSpec:
    """Keep the classes named in ``--classes`` (dataset ids or names, before ``--map``)."""
    names = dict(spec.class_names)
    if classes:
        wanted = {c.strip() for c in classes.split(",") if c.strip()}
        names = {i: n for i, n in names.items() if str(i) in wanted or n in wanted}
    return DatasetSpec(spec.cases, names, spec.layout)


def _relabel(vol: TrainVolume, mapping: dict[int, int]) -> TrainVolume:
    if not mapping:
        return vol
    labels = vol.labels.copy()
    for src, dst in mapping.items():
        labels[vol.labels == src] = dst
    return dataclasses.replace(vol, labels=labels)


def _mapped(names: dict[int, str], mapping: dict[int, int]) -> dict[int, str]:
    return {mapping.get(i, i): n for i, n in names.items()}


def build_volumes(args: argparse.Namespace, target_mm: float) -> tuple[list[TrainVolume], dict[int, str], list[TrainVolume]]:
    """-> training volumes, the automatic classes ``{id: name}``, the validation volumes."""
    mapping = {}
    for item in args.map:
        try:
            src, dst = (int(x) for x in item.split(":"))
        except ValueError:
            raise InputError(f"--map expects SRC:DST integers, got {item!r}") from None
        mapping[src] = dst
    volumes: list[TrainVolume] = []
    class_names: dict[int, str] = {}
    val: list[TrainVolume] = []
    excluded = set(args.exclude)
    split: Split | None = read_split(args.split, args.fold) if getattr(args, "split", None) else None
    found: set[str] = set()
    auto_cases = {c.strip() for c in args.auto_cases.split(",") if c.strip()}
    for source in args.data or ["bundled"]:
        if source == "bundled":
            for spec in bundled_cases(include_mr=not args.no_mr):
                is_ct = spec.cases[0].name.startswith("ct")
                held_out = spec.cases[0].name in excluded
                if held_out and not is_ct:
                    continue
                spec = _select(spec, args.classes) if is_ct else spec
                vol = load_case(spec.cases[0], spec.class_names, target_mm, auto=is_ct, weight=3.0 if is_ct else 1.0)
                if is_ct:  # its classes stay the automatic classes; held out, it only validates
                    vol = _relabel(vol, mapping)
                    class_names.update(_mapped(spec.class_names, mapping))
                    val.append(vol)
                if not held_out:
                    volumes.append(vol)
                    if args.fine_mm and args.fine_upsampled:
                        fine = load_case(spec.cases[0], spec.class_names, args.fine_mm, auto=False, weight=vol.weight)
                        fine = _relabel(fine, mapping) if is_ct else fine
                        volumes.append(dataclasses.replace(fine, name=f"{fine.name}@{args.fine_mm:g}mm"))
        elif (Path(source) / "manifest.json").is_file():
            from napari_s2vnet.data.fetch import read_manifest

            for case in read_manifest(Path(source)):
                if case.use == "train" and case.name not in excluded:
                    vol = _load(Case(case.image, case.labels, case.name), case.class_names, target_mm,
                                case.name in auto_cases, getattr(args, "cache", None), modality=case.modality)
                    volumes.append(vol)
                    if args.fine_mm and vol.native_mm <= args.fine_mm * 1.25:
                        fine = load_fetched(case, args.fine_mm, auto=False)
                        volumes.append(dataclasses.replace(fine, name=f"{fine.name}@{args.fine_mm:g}mm"))
        else:
            spec = _select(discover(Path(source)), args.classes)
            found |= {c.name for c in spec.cases}
            roles = [split.role(c.name) if split else "train" for c in spec.cases]
            cache = getattr(args, "cache", None)
            vols = {c.name: _relabel(_load(c, spec.class_names, target_mm, True, cache), mapping)
                    for c, r in zip(spec.cases, roles) if r != "skip"}
            class_names.update(_mapped(spec.class_names, mapping))
            volumes += [vols[c.name] for c, r in zip(spec.cases, roles) if r == "train"]
            val += [vols[c.name] for c, r in zip(spec.cases, roles) if r == "val"] if split else [vols[spec.cases[0].name]]
    if split is not None:
        check_split(split, found)
    if args.phantoms:
        volumes += phantom_volumes(args.phantoms, target_mm, args.seed, auto=True, weight=1.0 / args.phantoms)
        if args.fine_mm and args.fine_upsampled:
            fine = phantom_volumes(args.phantoms, args.fine_mm, args.seed, auto=False, weight=1.0 / args.phantoms,
                                   render_mm=args.fine_mm)
            volumes += [dataclasses.replace(v, name=f"{v.name}@{args.fine_mm:g}mm") for v in fine]
        phantom_names = {i: n for i, n in PHANTOM_CLASSES.items() if not args.classes or i in class_names}
        class_names.update(phantom_names)
    if not volumes:
        raise InputError("no training volumes left (check --data and --exclude)")
    if not class_names:
        raise InputError("no classes left to train (check --classes)")
    return volumes, class_names, val


def _write_split_record(out: Path, volumes: list[TrainVolume], val: list[TrainVolume]) -> None:
    """``OUT/split.json``: the volumes trained on and validated on (a validation volume may also train)."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"train": [v.name for v in volumes], "val": [v.name for v in val]}
    (out / "split.json").write_text(json.dumps(record, indent=1) + "\n")


def make_validator(val: list[TrainVolume], device: str, top: int = 10):
    """Automatic Dice on the validation volumes: per class, mean, and mean over the ``top`` largest."""

    def validate(model: S2VNet) -> dict[str, float]:
        scores: dict[str, float] = {}
        top_scores: list[float] = []
        all_scores: list[float] = []
        for vol in val:
            prepared = from_normalized(vol.image, vol.labels.shape)
            cache = FeatureCache(model, prepared, resolve_device(device), batch=16)
            pred = auto_volume(model, prepared, cache)
            dice = dice_per_class(pred, vol.labels, labels=[int(c) for c in np.unique(vol.labels) if c])
            sizes = {c: int((vol.labels == c).sum()) for c in dice}
            largest = sorted(sizes, key=sizes.get, reverse=True)[:top]
            for c, d in dice.items():
                scores[f"{vol.name}:{c}"] = d
            top_scores += [dice[c] for c in largest]
            all_scores += list(dice.values())
        scores = {"mean_dice": float(np.mean(all_scores)), f"mean_dice_top{top}": float(np.mean(top_scores)), **scores}
        return scores

    return validate


def _check_train_extra() -> None:
    import importlib.util

    missing = [m for m in ("monai", "skimage") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"training needs {', '.join(missing)}: pip install 'napari-s2vnet[train]'")


def run(args: argparse.Namespace) -> Path:
    _check_train_extra()
    for flag in ("contrast_randomise", "lesion_donor"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            raise InputError(f"--{flag.replace('_', '-')} is a probability in [0, 1], not {getattr(args, flag)}")
    cfg = TrainConfig(
        steps=args.steps, batch_episodes=args.batch, episode_slices=args.slices, crop=args.crop, lr=args.lr,
        long_slices=args.long_slices, long_from=args.long_from,
        interactive_fraction=args.interactive_fraction, phantoms=args.phantoms, include_mr=not args.no_mr,
        val_every=args.val_every, seed=args.seed, threads=args.threads, time_budget_s=60.0 * args.time_budget_min,
        init=str(args.init), target_mix=args.target_mix, augment=args.augment,
        contrast_randomise=args.contrast_randomise, lesion_donor=args.lesion_donor,
    )
    try:
        options = ScaleOptions(args.ckpt_every, args.accumulate, args.amp, args.compile, args.workers)
    except ValueError as e:
        raise InputError(f"--{str(e).split()[0].replace('_', '-')}: {e}") from None
    overrides = {"no-propagation": {"use_propagation": False}, "no-aggregation": {"use_aggregation": False},
                 "no-adaptive": {"adaptive_clicks": False}}.get(args.ablation, {})
    if args.centres_per_class is not None:
        if args.centres_per_class < 1:
            raise InputError("--centres-per-class must be at least 1")
        overrides = {**overrides, "centres_per_class": args.centres_per_class}
    if args.click_centres:
        overrides = {**overrides, "click_centres": args.click_centres}
    if args.fine_upsampled and not args.fine_mm:
        raise InputError("--fine-upsampled needs --fine-mm (the spacing of the fine copies)")
    if args.fine_mm:
        overrides = {**overrides, "zoom_mm": args.fine_mm}
    if args.embed_stride is not None:
        overrides = {**overrides, "embed_stride": args.embed_stride}
    base = preset(args.preset, **overrides)
    volumes, class_names, val = build_volumes(args, base.pixel_spacing_mm)
    model_config = base.with_classes(class_names)
    _write_split_record(args.out, volumes, val)
    length = f"{args.time_budget_min:g} min (at most {cfg.steps} steps)" if cfg.time_budget_s > 0 else f"{cfg.steps} steps"
    print(f"training {model_config.name} on {len(volumes)} volumes, {len(class_names)} classes, "
          f"{length} -> {args.out}", flush=True)
    return train(model_config, cfg, volumes, args.out, args.device, args.resume, make_validator(val, args.device), options)
