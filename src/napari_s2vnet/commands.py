"""Sub-commands of the CLI other than ``train`` (see :mod:`napari_s2vnet.cli`)."""

from __future__ import annotations

import argparse


def resolve_input(name: str) -> str:
    """``sample:ct`` (``ct``, ``ct_labels``, ``mr``, ``mr_labels``) names a bundled file; else a path."""
    if name.startswith("sample:"):
        from napari_s2vnet.data.samples import sample_path

        return str(sample_path(name.split(":", 1)[1]))
    return name


def add_segment(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="NIfTI file, TIFF file, DICOM series folder, or sample:ct / sample:mr")
    p.add_argument("-o", "--output", required=True, help="label map (.nii.gz, .nii, .tif) on the input's grid")
    p.add_argument("--clicks", help="CLICKS.json (see docs/cli.md); only the clicked labels unless --auto")
    p.add_argument("--auto", action="store_true", help="automatic segmentation (default without --clicks)")
    p.add_argument("--model", help="weights file (.safetensors); default: the bundled model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--modality", choices=["CT", "MR"], help="default: from metadata / intensities")


def run_segment(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from napari_s2vnet.data.io import read_volume, write_labels
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.inference.click_file import read_clicks, rounds_of

    t0 = time.perf_counter()
    volume = read_volume(resolve_input(args.input), args.modality)
    g = volume.geometry
    clicks = read_clicks(args.clicks, g) if args.clicks else None
    predictor = Predictor.from_file(args.model, args.device) if args.model else Predictor.from_pretrained(args.device)
    if clicks is None:
        labels = predictor.segment(volume)
    else:
        session = predictor.session(g.to_internal(volume.array), g.internal_spacing, volume.modality)
        if args.auto:
            session.auto()
        for batch in rounds_of(clicks):
            session.add_clicks(batch)
            for _ in session.propagate():
                pass
        labels = g.from_internal(np.asarray(session.labels()))
    write_labels(args.output, labels, g)
    seconds = time.perf_counter() - t0
    names = predictor.class_names
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    mode = "automatic" if clicks is None else ("automatic + clicks" if args.auto else "clicks")
    print(f"{args.output}: {len(ids)} classes ({mode}, {predictor.device}), {seconds:.1f} s")
    for i, n in zip(ids.tolist(), counts.tolist()):
        print(f"  {i:4d} {names.get(i, 'label ' + str(i)):32s} {n:9d} voxels")
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="predicted label map")
    p.add_argument("gt", help="reference label map (same grid), e.g. sample:ct_labels")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.errors import InputError
    from napari_s2vnet.evaluation.metrics import dice_per_class, hd95_per_class, summarize

    pred, gt = read_volume(resolve_input(args.pred)), read_volume(resolve_input(args.gt))
    if pred.array.shape != gt.array.shape:
        raise InputError(f"shapes differ: {args.pred} {pred.array.shape} vs {args.gt} {gt.array.shape}")
    p, r = np.rint(pred.array).astype(np.int32), np.rint(gt.array).astype(np.int32)
    dice = dice_per_class(p, r)
    hd95 = hd95_per_class(p, r, gt.geometry.spacing, labels=list(dice))
    summary = summarize(dice, hd95)
    if args.json:
        print(json.dumps({"dice": {str(k): v for k, v in dice.items()},
                          "hd95_mm": {str(k): (v if np.isfinite(v) else None) for k, v in hd95.items()},
                          "summary": summary}, indent=1))
        return 0
    print(f"{'label':>6} {'dice':>7} {'hd95_mm':>9}")
    for k in dice:
        print(f"{k:6d} {dice[k]:7.4f} {hd95[k]:9.2f}")
    print(f"{'mean':>6} {summary['mean_dice']:7.4f} {summary.get('mean_hd95', float('nan')):9.2f}")
    return 0


def add_benchmark(p: argparse.ArgumentParser) -> None:
    from napari_s2vnet.benchmark.run import add_arguments

    add_arguments(p)


def run_benchmark(args: argparse.Namespace) -> int:
    from napari_s2vnet.benchmark.run import run

    return run(args)
