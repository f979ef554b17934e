"""``napari-s2vnet benchmark``: speed, memory, latency and accuracy report (see ``docs/benchmarks.md``).

Sections (``--sections``, comma-separated; default all but ``training``, which runs only with
``--train-budget-min``): ``speed``, ``latency``, ``interactive``, ``training``, ``accuracy``,
``ablations``, ``review`` (do the slices ranked by ``Session.slice_doubt`` hold the errors?). Each section is saved as ``OUT/sections/<name>.json`` as soon as it is done, and the
report (``benchmark.json``, ``benchmark.md``, PNG plots) is rebuilt from every section file present,
so sections can be (re)run separately into the same folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SECTIONS = ("speed", "profile", "latency", "interactive", "training", "accuracy", "ablations", "review")


@dataclass
class BenchConfig:
    out: Path = Path("runs/benchmark")
    quick: bool = False
    device: str = "cpu"
    threads: int = 0  # 0: all logical cores
    busy: bool = False  # speed: also our run on the first volume beside one busy process (all cores, and one fewer)
    weights: str | None = None  # None: bundled weights; "random": untrained tiny model (smoke tests)
    sections: tuple[str, ...] = ("speed", "latency", "interactive", "accuracy", "ablations", "review")
    baselines: tuple[str, ...] = ("swinunetr", "dynunet")
    volumes: tuple[str, ...] = ("ct_bundled", "synthetic_large")
    synthetic_shape: tuple[int, int, int] = (300, 512, 512)
    synthetic_spacing: tuple[float, float, float] = (1.5, 0.8, 0.8)
    repeats_ours: int | dict[str, int] = 5  # an int, or {volume: repeats}
    repeats_3d: int | dict[str, int] = 3
    roi: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.5
    sw_batch: dict[str, int] = field(default_factory=lambda: {"swinunetr": 4, "dynunet": 1})
    swin_feature_size: int = 48
    target_spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    baseline_grid: str = "training"  # "training": resample to target_spacing; "ours": our grid (slices kept)
    latency_cases: tuple[str, ...] = ("ct_bundled", "synthetic_large")
    latency_clicks: int | dict[str, int] = field(default_factory=lambda: {"ct_bundled": 40, "synthetic_large": 12})
    heldout_phantoms: int = 2
    phantom_shape: tuple[int, int, int] = (48, 128, 128)
    curve_real: tuple[str, ...] = ("ct", "mr")
    accuracy_real: tuple[str, ...] = ("ct",)
    max_clicks: int = 20  # NoC@85/90 within 20 clicks; the 5-click protocol reads the first 5
    ablation_max_clicks: int = 5
    classes_per_case: int = 6
    train_budget_min: float = 0.0
    train_jobs: int = 1  # trainings run at once (each with ``threads`` torch threads)
    train_only: tuple[str, ...] = ()  # subset of the models to train ("dynunet" and/or VARIANTS names); () = all
    train_phantoms: int = 16
    train_dir: Path | None = None
    ablation_classes_per_case: int = 4
    timeout_s: float = 7200.0
    command: str = ""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.train_dir = Path(self.train_dir) if self.train_dir is not None else None

    @classmethod
    def quick_preset(cls, **kw) -> BenchConfig:
        base = dict(quick=True, volumes=("synthetic_small",), synthetic_shape=(48, 128, 128), synthetic_spacing=(3.0, 2.0, 2.0),
                    repeats_ours=2, repeats_3d=1, latency_cases=("ct_bundled",), latency_clicks=20,
                    heldout_phantoms=1, curve_real=(), max_clicks=3, ablation_max_clicks=3, classes_per_case=3,
                    ablation_classes_per_case=2,
                    timeout_s=600.0)
        base.update(kw)
        return cls(**base)


# ---------------------------------------------------------------------------------------- context
def machine_info(device: str, threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for mod in ("monai", "SimpleITK", "napari_s2vnet"):
        try:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", None) or getattr(m, "Version", lambda: "?")()
        except Exception:  # noqa: BLE001 - optional
            versions[mod] = "not installed"
    try:
        from importlib.metadata import version

        versions["napari_s2vnet"] = version("napari-s2vnet")
    except Exception:  # noqa: BLE001
        pass
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    commit = None
    try:
        root = Path(__file__).resolve().parents[3]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        commit = f"{commit}{' + uncommitted changes' if dirty else ''}" if commit else None
    except Exception:  # noqa: BLE001
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram, "platform": platform.platform(), "device": device,
            "gpu": gpu, "torch_threads": threads, "versions": versions, "git": commit}


def _class_names_random() -> dict[int, str]:
    from napari_s2vnet.data.phantom import PHANTOM_CLASSES
    from napari_s2vnet.data.samples import sample_class_names

    return {**sample_class_names("ct", present_only=True), **PHANTOM_CLASSES}


def load_predictor(cfg: BenchConfig):
    import torch

    from napari_s2vnet.inference.predictor import Predictor

    if cfg.weights == "random":
        from napari_s2vnet.model.config import preset
        from napari_s2vnet.model.s2vnet import S2VNet

        torch.manual_seed(0)
        return Predictor(S2VNet(preset("tiny", _class_names_random())), cfg.device, "random")
    if cfg.weights:
        return Predictor.from_file(cfg.weights, cfg.device)
    return Predictor.from_pretrained(cfg.device)


def _volume_spec(cfg: BenchConfig, name: str) -> tuple[dict[str, Any], str]:
    from napari_s2vnet.benchmark.speed import make_synthetic

    if name == "ct_bundled":
        return {"kind": "sample", "name": "ct"}, "the bundled real abdominal CT"
    if name.startswith("synthetic"):
        shape, spacing = cfg.synthetic_shape, cfg.synthetic_spacing
        tag = "x".join(str(s) for s in shape)
        spec = make_synthetic(cfg.out / "cache" / f"synthetic_{tag}.npy", shape, spacing)
        return spec, (f"synthetic CT phantom (seed {spec['seed']}), (Z, Y, X) = {tuple(shape)} voxels at "
                      f"{tuple(spacing)} mm")
    raise ValueError(f"unknown volume {name!r}")


# ---------------------------------------------------------------------------------------- sections
def section_speed(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark import speed
    from napari_s2vnet.benchmark.profile import profile_auto

    threads = cfg.threads
    result: dict[str, Any] = {"volumes": {}, "profile": {}, "threads": threads, "device": cfg.device,
                              "repeats_text": "the repeats given per volume (each run in a fresh process)",
                              "baseline_settings": {"roi": list(cfg.roi), "overlap": cfg.overlap, "sw_batch": cfg.sw_batch,
                                                    "target_spacing_mm": list(cfg.target_spacing),
                                                    "swin_feature_size": cfg.swin_feature_size}}
    class_ids = list(predictor.config.class_ids)
    train_dir = cfg.train_dir or cfg.out / "train"
    for vol in cfg.volumes:
        vspec, desc = _volume_spec(cfg, vol)
        image, spacing, modality = speed.load_volume(vspec)
        log(f"speed: {vol} {image.shape}")
        methods: dict[str, Any] = {}
        ours = {"method": "s2vnet", "volume": vspec, "threads": threads, "device": cfg.device,
                "weights": cfg.weights if cfg.weights else str(_bundled_path())}
        if cfg.weights == "random":
            ours["class_names"] = {str(k): v for k, v in predictor.class_names.items()}
        methods["s2vnet"] = speed.measure(ours, _repeats(cfg.repeats_ours, vol), cfg.timeout_s, log)
        target = list(cfg.target_spacing)
        if cfg.baseline_grid == "ours":  # the very voxels our model sees: slices kept, in-plane at our spacing
            target = [float(spacing[0]), predictor.config.pixel_spacing_mm, predictor.config.pixel_spacing_mm]
        for base in cfg.baselines:
            trained = train_dir / "dynunet" / "dynunet.pt" if base == "dynunet" else None
            spec = {"method": base, "volume": vspec, "threads": threads, "device": cfg.device,
                    "baseline": {"roi": list(cfg.roi), "overlap": cfg.overlap, "sw_batch": cfg.sw_batch.get(base, 1),
                                 "target_spacing": target, "feature_size": cfg.swin_feature_size,
                                 "class_ids": class_ids,
                                 "weights": str(trained) if trained is not None and trained.exists() else None}}
            methods[base] = speed.measure(spec, _repeats(cfg.repeats_3d, vol), cfg.timeout_s, log)
        result["volumes"][vol] = {"repeats": {m: len(r["runs"]) for m, r in methods.items()}, "description": desc, "baseline_spacing_zyx_mm": target, "shape_zyx": list(image.shape), "spacing_zyx_mm": list(spacing),
                                  "methods": methods, "compare": speed.compare(methods)}
        result["profile"][vol] = profile_auto(predictor, image, spacing, modality)
    if cfg.busy and cfg.volumes:
        vspec = _volume_spec(cfg, cfg.volumes[0])[0]
        cores = os.cpu_count() or 1
        log(f"speed: {cfg.volumes[0]} beside one busy process, {cores} and {max(1, cores - 1)} threads")
        result["busy"] = {"volume": cfg.volumes[0], "cores": cores,
                          "threads": speed.measure_busy({**ours, "volume": vspec}, sorted({cores, max(1, cores - 1)}),
                                                        _repeats(cfg.repeats_ours, cfg.volumes[0]), cfg.timeout_s, log)}
    return result


def section_profile(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    """Only the in-process profile of our automatic segmentation (``benchmark/profile.py``), per volume."""
    from napari_s2vnet.benchmark import speed
    from napari_s2vnet.benchmark.profile import profile_auto

    result: dict[str, Any] = {"profile": {}, "threads": cfg.threads, "device": cfg.device, "load_avg": os.getloadavg()}
    for vol in cfg.volumes:
        image, spacing, modality = speed.load_volume(_volume_spec(cfg, vol)[0])
        log(f"profile: {vol} {image.shape}")
        result["profile"][vol] = profile_auto(predictor, image, spacing, modality)
    return result


def _repeats(value: int | dict[str, int], volume: str) -> int:
    return int(value.get(volume, 1)) if isinstance(value, dict) else int(value)


def _parse_repeats(text: str) -> int | dict[str, int]:
    """``3`` or ``ct_bundled=3,synthetic_large=1``."""
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(",") if item.strip())}


def _bundled_path() -> Path:
    from napari_s2vnet.model.weights import default_weights_path

    return default_weights_path()


def _latency_case(cfg: BenchConfig, name: str) -> tuple[np.ndarray, tuple, str, np.ndarray]:
    if name == "ct_bundled":
        from napari_s2vnet.benchmark.accuracy import real_case

        c = real_case("ct")
        return c["image"], c["spacing"], c["modality"], c["labels"]
    spec, _ = _volume_spec(cfg, name)
    return np.load(spec["path"]), tuple(spec["spacing"]), "CT", np.load(spec["labels"])


def section_latency(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark.interactive import latency

    cases = {}
    for name in cfg.latency_cases:
        image, spacing, modality, gt = _latency_case(cfg, name)
        log(f"latency: {name} {image.shape}")
        cases[name] = latency(predictor, image, spacing, modality, gt, _repeats(cfg.latency_clicks, name))
        log(f"  click p50 {cases[name]['click_ms_p50']:.1f} ms, p95 {cases[name]['click_ms_p95']:.1f} ms, "
            f"volume {cases[name]['propagate_volume_s']:.2f} s")
    return {"cases": cases}


def _eval_cases(cfg: BenchConfig, real: tuple[str, ...]) -> list[dict[str, Any]]:
    from napari_s2vnet.benchmark.accuracy import phantom_cases, real_case

    return phantom_cases(cfg.heldout_phantoms, cfg.phantom_shape) + [real_case(k) for k in real]


def section_interactive(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark.interactive import click_curves

    cases = _eval_cases(cfg, cfg.curve_real)
    res = click_curves(cases, predictor, cfg.max_clicks, cfg.classes_per_case, log=log)
    res["cases"] = {c["name"]: {"shape": list(c["image"].shape), "heldout": c["heldout"]} for c in cases}
    return res


def section_review(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark.review import review_guidance

    return review_guidance(_eval_cases(cfg, cfg.curve_real), predictor, cfg.classes_per_case, log=log)


def section_training(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark.trainings import VARIANTS, train_all

    if cfg.train_budget_min <= 0:
        raise ValueError("the training section needs --train-budget-min > 0")
    only = set(cfg.train_only)
    unknown = only - set(VARIANTS) - {"dynunet"}
    if unknown:
        raise ValueError(f"unknown models to train {sorted(unknown)}: choose from dynunet, {', '.join(VARIANTS)}")
    variants = tuple(v for v in VARIANTS if not only or v in only)
    result = train_all(cfg.train_dir or cfg.out / "train", cfg.train_budget_min * 60, cfg.train_phantoms,
                       cfg.threads, variants, not only or "dynunet" in only, cfg.roi, parallel=cfg.train_jobs, log=log)
    old = _load_section(cfg.out, "training")
    if only and old:  # models trained by an earlier run and not retrained now are kept (marked as such)
        for name, res in old.get("models", {}).items():
            key = f"{name}_earlier" if name in result["models"] else name  # a retrained model keeps its old record
            result["models"].setdefault(key, {**res, "earlier_run": True})
        result["earlier_runs"] = old.get("earlier_runs", []) + [{k: v for k, v in old.items() if k != "models"}]
    return result


def _describe_ours(predictor, cfg: BenchConfig) -> str:
    from napari_s2vnet.model.weights import train_info

    if predictor.model_id == "random":
        return "untrained (random weights): smoke test only"
    info = {}
    try:
        info = train_info(cfg.weights or _bundled_path())
    except Exception:  # noqa: BLE001
        pass
    vols = info.get("volumes", [])
    phantoms = [v for v in vols if v.startswith("phantom")]
    start = info.get("train", {}).get("init")
    return (f"trained on {', '.join(v for v in vols if not v.startswith('phantom'))} and {len(phantoms)} phantoms, "
            f"{info.get('steps')} steps, {info.get('seconds')} s on {info.get('device')}"
            + (f", starting from {Path(start).name}" if start else "")) if info else "trained model (no training metadata)"


def section_accuracy(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark import accuracy
    from napari_s2vnet.inference.predictor import Predictor

    cases = _eval_cases(cfg, cfg.accuracy_real)
    train_dir = cfg.train_dir or cfg.out / "train"
    training = _load_section(cfg.out, "training") or {}
    budget = training.get("budget_s")
    models: dict[str, Any] = {}
    class_ids = list(predictor.config.class_ids)
    models["s2vnet"] = {
        "data": _describe_ours(predictor, cfg), "auto": accuracy.evaluate_auto(accuracy.ours_segmenter(predictor), class_ids, cases)}
    full = train_dir / "s2vnet_full" / "weights.safetensors"
    if full.exists():
        p = Predictor.from_file(full, cfg.device)
        models["s2vnet_full"] = {"data": f"same data as the bundled model, trained for the equal budget "
                                         f"({_fmt_budget(budget)}) on this machine",
                                 "auto": accuracy.evaluate_auto(accuracy.ours_segmenter(p), list(p.config.class_ids), cases)}
    dyn = train_dir / "dynunet" / "dynunet.pt"
    if dyn.exists():
        seg, info = accuracy.dynunet_segmenter(dyn, cfg.roi, cfg.overlap, cfg.device)
        import torch

        ck = torch.load(dyn, map_location="cpu", weights_only=True)
        models["dynunet"] = {"data": f"bundled CT + {sum(v.startswith('phantom') for v in ck['volumes'])} phantoms "
                                     f"(automatic labels; no MR), {ck['iterations']} iterations of batch {ck['batch']} "
                                     f"in {ck['seconds']:.0f} s (budget {_fmt_budget(ck['budget_s'])})",
                             "auto": accuracy.evaluate_auto(seg, info["class_ids"], cases)}
    for name, r in models.items():
        log(f"accuracy: {name}: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in r["auto"].items()
                                             if isinstance(v, dict) and v["mean"] is not None))
    return {"models": models, "cases": {c["name"]: {"heldout": c["heldout"], "shape": list(c["image"].shape)} for c in cases}}


def _fmt_budget(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def section_ablations(cfg: BenchConfig, predictor, log) -> dict[str, Any]:
    from napari_s2vnet.benchmark import accuracy
    from napari_s2vnet.benchmark.interactive import click_curves
    from napari_s2vnet.benchmark.trainings import VARIANTS
    from napari_s2vnet.inference.predictor import Predictor

    train_dir = cfg.train_dir or cfg.out / "train"
    auto_cases = _eval_cases(cfg, cfg.accuracy_real)
    curve_cases = _eval_cases(cfg, cfg.curve_real)
    training = (_load_section(cfg.out, "training") or {}).get("models", {})
    variants = {}
    for name, (description, _) in VARIANTS.items():
        path = train_dir / name / "weights.safetensors"
        if not path.exists():
            continue
        p = Predictor.from_file(path, cfg.device)
        auto = accuracy.evaluate_auto(accuracy.ours_segmenter(p), list(p.config.class_ids), auto_cases)
        curves = click_curves(curve_cases, p, cfg.ablation_max_clicks, cfg.ablation_classes_per_case, methods=("s2vnet",),
                              log=log)
        variants[name] = {"weights": str(path), "description": description, "auto": auto,
                          "interactive": curves["methods"]["s2vnet"]["pooled"],
                          "interactive_per_case": curves["methods"]["s2vnet"]["cases"],
                          "steps": training.get(name, {}).get("steps"),
                          "train_seconds": training.get(name, {}).get("train_seconds")}
        log(f"ablation {name}: auto {auto.get('phantoms_heldout_mean')}")
    return {"variants": variants, "max_clicks": cfg.ablation_max_clicks,
            "curve_cases": [c["name"] for c in curve_cases], "auto_cases": [c["name"] for c in auto_cases],
            "note": None if variants else f"no trained variants under {train_dir} (run with --train-budget-min)"}


RUNNERS = {"speed": section_speed, "profile": section_profile, "latency": section_latency, "interactive": section_interactive,
           "training": section_training, "accuracy": section_accuracy, "ablations": section_ablations,
           "review": section_review}


def _load_section(out: Path, name: str) -> dict[str, Any] | None:
    path = Path(out) / "sections" / f"{name}.json"
    return json.loads(path.read_text())["result"] if path.exists() else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run_benchmark(cfg: BenchConfig, log=print) -> dict[str, Any]:
    import torch

    from napari_s2vnet.benchmark import report

    out = Path(cfg.out)
    (out / "sections").mkdir(parents=True, exist_ok=True)
    if not cfg.threads:
        cfg = dataclasses.replace(cfg, threads=os.cpu_count() or 1)
    torch.set_num_threads(cfg.threads)
    started = _now()
    predictor = load_predictor(cfg)
    notes = []
    if not cfg.device.startswith("cuda"):
        notes.append("CPU-only run: no GPU was used, so there are no CUDA memory figures.")
    if predictor.model_id == "random":
        notes.append("Our model has RANDOM weights in this run (smoke test): accuracy numbers are meaningless.")
    git = machine_info(cfg.device, cfg.threads).get("git")
    for name in cfg.sections:
        t0 = time.perf_counter()
        log(f"== {name}")
        result = RUNNERS[name](cfg, predictor, log)
        if name == "speed":  # volumes measured by an earlier run and not re-measured now are kept
            for vol in result["volumes"].values():
                vol["measured_utc"], vol["git"] = _now(), git
            old = _load_section(out, "speed")
            for vol, res in ((old or {}).get("volumes") or {}).items():
                result["volumes"].setdefault(vol, res)
                if vol not in result["profile"] and vol in old.get("profile", {}):
                    result["profile"][vol] = old["profile"][vol]
        (out / "sections" / f"{name}.json").write_text(json.dumps(
            {"result": result, "command": cfg.command, "finished_utc": _now(), "seconds": time.perf_counter() - t0,
             "model_id": predictor.model_id, "quick": cfg.quick, "git": git, "threads": cfg.threads},
            default=report._json_default, indent=1))
    sections, provenance = {}, {}
    for name in SECTIONS:
        path = out / "sections" / f"{name}.json"
        if path.exists():
            raw = json.loads(path.read_text())
            sections[name] = raw["result"]
            provenance[name] = {k: raw.get(k) for k in ("command", "finished_utc", "seconds", "model_id", "quick", "git",
                                                        "threads")}
    meta = {"command": cfg.command, "started_utc": started, "finished_utc": _now(), "quick": cfg.quick,
            "threads": cfg.threads, "model_id": predictor.model_id, "machine": machine_info(cfg.device, cfg.threads),
            "config": dataclasses.asdict(cfg), "section_provenance": provenance, "notes": notes}
    doc = report.write_json(out / "benchmark.json", meta, sections)
    plots = report.write_plots(out, sections)
    report.write_markdown(out / "benchmark.md", doc, plots)
    log(f"report: {out / 'benchmark.md'}")
    return doc


# ---------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small volume, few repeats (CI smoke test, < 5 min on 2 cores)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (the same device for every method)")
    p.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="report folder")
    p.add_argument("--threads", type=int, default=0, help="torch threads for every method (0: all cores)")
    p.add_argument("--busy", action="store_true",
                   help="speed: also time ours on the first volume beside one busy process (all cores, one fewer)")
    p.add_argument("--weights", default=None, help="our weights (.safetensors); default bundled; 'random' = untrained")
    p.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--baselines", default=None, help="comma-separated: swinunetr,dynunet")
    p.add_argument("--repeats", default=None,
                   help="runs per 3D baseline measurement: N, or per volume ct_bundled=3,synthetic_large=1")
    p.add_argument("--repeats-ours", default=None, help="runs per measurement of ours (same forms)")
    p.add_argument("--volumes", default=None, help="comma-separated: ct_bundled,synthetic_large")
    p.add_argument("--synthetic-shape", default=None, help="Z,Y,X of the synthetic volume (default 300,512,512)")
    p.add_argument("--baseline-grid", choices=["training", "ours"], default="training",
                   help="3D baselines run at their training spacing (3 mm isotropic) or on our model's grid")
    p.add_argument("--train-budget-min", type=float, default=0.0,
                   help="train the 3D U-Net and our ablations for this many minutes each (adds the 'training' section)")
    p.add_argument("--train-jobs", type=int, default=1,
                   help="trainings run at once (keep jobs x threads <= cores; the load average is reported)")
    p.add_argument("--train-only", default=None,
                   help="comma-separated subset of the models to train (dynunet, s2vnet_full, ...); default all")
    p.add_argument("--train-dir", type=Path, default=None, help="trained models to evaluate (default OUT/train)")
    p.add_argument("--classes-per-case", type=int, default=None, help="classes per volume in the click curves")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    kw: dict[str, Any] = {"out": args.out, "device": args.device, "threads": args.threads, "weights": args.weights,
                          "train_budget_min": args.train_budget_min, "train_dir": args.train_dir,
                          "train_jobs": args.train_jobs,
                          "train_only": tuple(t.strip() for t in (args.train_only or "").split(",") if t.strip()),
                          "baseline_grid": args.baseline_grid, "busy": args.busy,
                          "command": "napari-s2vnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    if args.device == "auto":
        import torch

        kw["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if args.sections:
        kw["sections"] = tuple(s.strip() for s in args.sections.split(",") if s.strip())
        unknown = set(kw["sections"]) - set(SECTIONS)
        if unknown:
            from napari_s2vnet.errors import InputError

            raise InputError(f"unknown benchmark sections {sorted(unknown)}: choose from {', '.join(SECTIONS)}")
    elif args.train_budget_min > 0:
        kw["sections"] = tuple(s for s in SECTIONS if s != "profile")  # the speed section profiles too
    if args.baselines:
        kw["baselines"] = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if args.repeats:
        kw["repeats_3d"] = _parse_repeats(args.repeats)
    if args.repeats_ours:
        kw["repeats_ours"] = _parse_repeats(args.repeats_ours)
    if args.volumes:
        kw["volumes"] = tuple(v.strip() for v in args.volumes.split(","))
    if args.synthetic_shape:
        kw["synthetic_shape"] = tuple(int(v) for v in args.synthetic_shape.split(","))
    if args.classes_per_case:
        kw["classes_per_case"] = args.classes_per_case
    return BenchConfig.quick_preset(**kw) if args.quick else BenchConfig(**kw)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_benchmark(cfg)
    return 0
