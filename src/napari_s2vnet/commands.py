"""Sub-commands of the CLI other than ``train`` and ``data`` (see :mod:`napari_s2vnet.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_s2vnet.errors import InputError, MissingExtraError


def require_extra(extra: str, modules: Sequence[str], needed_for: str) -> None:
    """A :class:`MissingExtraError` naming ``extra`` unless every module imports."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(module, extra, needed_for) from None


def free_cores(cpus: int | None = None, load: float | None = None) -> int:
    """Torch threads for ``segment`` by default: the cores not already busy (CPU count minus the
    1-minute load average, at least 1). On this 2-core machine with one other busy process, one thread
    ran ``segment`` on the bundled CT in 11 s and torch's default two in 21-24 s (issue 10)."""
    import os

    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            load = 0.0
    return max(1, min(cpus, int(round(cpus - load))))


def add_segment(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="NIfTI file, TIFF file, DICOM series folder, or sample:ct / sample:mr")
    p.add_argument("-o", "--output", required=True,
                   help="label map (.nii.gz, .nii, .tif) on the input's grid; missing folders are created")
    p.add_argument("--clicks", help="CLICKS.json (see docs/cli.md); only the clicked labels unless --auto")
    p.add_argument("--auto", action="store_true", help="automatic segmentation (default without --clicks)")
    p.add_argument("--model", help="weights file (.safetensors); default: the bundled model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--modality", choices=["CT", "MR"], help="default: from metadata / intensities")
    p.add_argument("--channel", type=int, help="channel to segment in a multi-channel (4-D/5-D) file")
    p.add_argument("--timepoint", type=int, help="time point to segment in a 4-D file")
    p.add_argument("--series", help="series of a DICOM folder (SeriesNumber or UID); default: the largest")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: the cores not already busy, from the load average)")
    p.add_argument("--z-mm", type=float, default=None,
                   help="automatic mode decodes slices at most this far apart (mm) and interpolates the "
                        "others (default: the model's in-plane spacing, 3 mm; 0: every slice)")


def run_segment(args: argparse.Namespace) -> int:
    import torch

    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: give a positive number, or 0 for the free cores")
    from napari_s2vnet.inference.auto import checked_z_mm

    checked_z_mm(args.z_mm)  # before the volume is read
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads or free_cores())
    try:  # in-process callers (tests, scripts) get their thread count back
        return _segment(args)
    finally:
        torch.set_num_threads(before)


def _segment(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from napari_s2vnet.data.io import check_output_path, read_volume, write_labels
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.inference.click_file import read_clicks, rounds_of

    import torch

    t0 = time.perf_counter()
    check_output_path(args.output)
    volume = read_volume(args.input, args.modality, channel=args.channel, timepoint=args.timepoint, series=args.series)
    g = volume.geometry
    if volume.array.min() == volume.array.max():
        raise InputError(f"'{args.input}' is constant (every voxel is {volume.array.flat[0]:g}): nothing to segment; "
                         "check the file (another series, channel or time point?)")
    predictor = Predictor.from_file(args.model, args.device) if args.model else Predictor.from_pretrained(args.device)
    clicks = read_clicks(args.clicks, g, predictor.class_names) if args.clicks else None
    if clicks == []:
        if not args.auto:
            raise InputError(f"the clicks file {args.clicks} has no clicks: add some (docs/cli.md), "
                             "or add --auto for the automatic segmentation")
        print(f"note: the clicks file {args.clicks} has no clicks: automatic segmentation only", file=sys.stderr)
        clicks = None
    if clicks is None:
        labels = predictor.segment(volume, z_mm=args.z_mm)
    else:
        session = predictor.session(g.to_internal(volume.array), g.internal_spacing, volume.modality, z_mm=args.z_mm)
        if args.auto:
            session.auto()
        for batch in rounds_of(clicks):
            session.add_prompts(batch)
            for _ in session.propagate():
                pass
        labels = g.from_internal(np.asarray(session.labels()))
    write_labels(args.output, labels, g)
    seconds = time.perf_counter() - t0
    names = predictor.class_names
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    mode = "automatic" if clicks is None else ("automatic + clicks" if args.auto else "clicks")
    threads = torch.get_num_threads()
    print(f"{args.output}: {len(ids)} {'class' if len(ids) == 1 else 'classes'} ({mode}, {predictor.device}, "
          f"{threads} {'thread' if threads == 1 else 'threads'}), {seconds:.1f} s")
    for i, n in zip(ids.tolist(), counts.tolist()):
        print(f"  {i:4d} {names.get(i, 'label ' + str(i)):32s} {n:9d} voxels")
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="predicted label map")
    p.add_argument("gt", help="reference label map (same grid), e.g. sample:ct_labels")
    p.add_argument("--classes", help="comma-separated ids or class names to score and average "
                                     "(default: every class of the reference)")
    p.add_argument("--names", help="class names shown beside ids: a .safetensors weights file, a JSON {id: name} "
                                   "file, or 'none' (default: the sample's own table for sample:*_labels, "
                                   "else the bundled model's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def class_names_for(names: str | None, gt: str) -> dict[int, str]:
    """``{id: name}`` for ``evaluate --names`` (see :func:`add_evaluate`)."""
    import json
    from pathlib import Path

    from napari_s2vnet.data.samples import sample_class_names

    if names == "none":
        return {}
    if names is None and gt in ("sample:ct_labels", "sample:mr_labels"):
        return sample_class_names(gt[7:9])
    if names is None or names.endswith(".safetensors"):
        from napari_s2vnet.model.config import ModelConfig
        from napari_s2vnet.model.weights import default_weights_path, read_metadata

        config = ModelConfig.from_json(read_metadata(names or default_weights_path())["config"])
        return dict(zip(config.class_ids, config.class_names))
    try:
        table = json.loads(Path(names).read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in table.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"--names {names}: expected a .safetensors file, a JSON object {{id: name}} or 'none' ({exc})") from None


def _wanted_classes(spec: str, names: dict[int, str]) -> list[int]:
    by_name = {n.lower(): i for i, n in names.items()}
    out = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        if token.isdigit() and int(token) > 0:
            out.append(int(token))
        elif token.lower() in by_name:
            out.append(by_name[token.lower()])
        else:
            raise InputError(f"--classes: unknown class {token!r}: give positive ids or names of --names' table")
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.evaluation.metrics import dice_per_class, hd95_per_class, summarize

    pred, gt = read_volume(args.pred), read_volume(args.gt)
    if pred.array.shape != gt.array.shape:
        raise InputError(f"shapes differ: {args.pred} {pred.array.shape} vs {args.gt} {gt.array.shape}")
    names = class_names_for(args.names, args.gt)
    p, r = np.rint(pred.array).astype(np.int32), np.rint(gt.array).astype(np.int32)
    if args.classes:
        averaged = _wanted_classes(args.classes, names)
    else:
        averaged = [int(c) for c in np.unique(r) if c > 0]
        if not averaged:
            raise InputError(f"the reference {args.gt} has no labelled voxel: nothing to average; pass --classes")
    dice = dice_per_class(p, r)
    hd95 = hd95_per_class(p, r, gt.geometry.spacing, labels=list(dice))
    scored = [c for c in averaged if c in dice]  # a class absent from both files is not scored
    extra = [c for c in dice if c not in set(averaged)]
    summary = summarize({c: dice[c] for c in scored}, {c: hd95[c] for c in scored})
    summary["averaged_over"] = "--classes" if args.classes else "the reference's classes"
    if args.json:
        print(json.dumps({"dice": {str(k): v for k, v in dice.items()},
                          "hd95_mm": {str(k): (v if np.isfinite(v) else None) for k, v in hd95.items()},
                          "names": {str(k): names[k] for k in dice if k in names},
                          "averaged": scored, "not_averaged": extra,
                          "not_scored": [c for c in averaged if c not in dice],
                          "summary": summary}, indent=1))
        return 0
    print(f"{'label':>6} {'name':28s} {'dice':>7} {'hd95_mm':>9}")
    for k in scored + extra:
        note = "  (not in the mean)" if k in extra else ""
        print(f"{k:6d} {names.get(k, ''):28.28s} {dice[k]:7.4f} {hd95[k]:9.2f}{note}")
    missing = [c for c in averaged if c not in dice]
    if missing:
        print(f"absent from both files, not scored: {', '.join(str(c) for c in missing)}")
    n, n_inf = summary["n_classes"], summary["n_hd95_undefined"]
    hd_note = (f"; inf HD95 (a class empty on one side) of {n_inf} class{'es' * (n_inf != 1)} left out of the "
               "HD95 mean" if n_inf else "")
    print(f"mean over {n} {'asked' if args.classes else 'reference'} class{'es' * (n != 1)}: "
          f"Dice {summary['mean_dice']:.4f}, HD95 {summary['mean_hd95']:.2f} mm{hd_note}")
    return 0


def add_benchmark(p: argparse.ArgumentParser) -> None:
    from napari_s2vnet.benchmark.run import add_arguments

    add_arguments(p)


def run_benchmark(args: argparse.Namespace) -> int:
    require_extra("benchmark", ("monai", "SimpleITK", "einops"), "napari-s2vnet benchmark")
    from napari_s2vnet.benchmark.run import run

    return run(args)
