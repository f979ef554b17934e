"""`napari-s2vnet benchmark`: the report is produced with the expected keys (tiny sizes, random model).

This checks that the benchmark runs end to end and writes benchmark.json / benchmark.md / PNGs; it
does not check any speed or accuracy figure (those are in docs/benchmarks.md, from a real run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("monai")
pytest.importorskip("SimpleITK")

from napari_s2vnet.benchmark.baselines3d import nearest_to_grid, nnunet_plan  # noqa: E402
from napari_s2vnet.benchmark.run import BenchConfig, config_from_args, run_benchmark  # noqa: E402

HEADLINE = ("speedup_vs_3d", "memory_ratio_vs_3d", "click_latency_ms_p95", "propagate_volume_s", "dice_auto",
            "dice_interactive", "units", "goals", "meta", "sections")


def test_nnunet_plan_like_3d_fullres():
    plan = nnunet_plan((3.0, 3.0, 3.0), (96, 96, 96))
    assert plan["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 4
    assert plan["filters"] == [32, 64, 128, 256, 320]
    aniso = nnunet_plan((5.0, 0.8, 0.8), (48, 192, 192))
    assert aniso["kernel_size"][0] == [1, 3, 3] and aniso["strides"][1] == [1, 2, 2]


def test_nearest_to_grid_maps_back_exactly():
    lab = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    up = nearest_to_grid(lab, (4, 6, 8))
    assert up.shape == (4, 6, 8) and np.array_equal(up[::2, ::2, ::2], lab)


def test_cli_quick_config(tmp_path):
    from napari_s2vnet.cli import _parser

    args = _parser().parse_args(["benchmark", "--quick", "--out", str(tmp_path), "--weights", "random"])
    cfg = config_from_args(args)
    assert cfg.quick and cfg.repeats_3d == 1 and cfg.volumes == ("synthetic_small",)
    args = _parser().parse_args(["benchmark", "--out", str(tmp_path), "--train-budget-min", "1", "--train-jobs", "2",
                                 "--train-only", "dynunet, s2vnet_full"])
    cfg = config_from_args(args)
    assert cfg.train_only == ("dynunet", "s2vnet_full") and cfg.train_jobs == 2 and "training" in cfg.sections


def test_train_only_rejects_unknown_models(tmp_path):
    from napari_s2vnet.benchmark.run import section_training

    cfg = BenchConfig(out=tmp_path, train_budget_min=1.0, train_only=("s2vnet_bogus",))
    with pytest.raises(ValueError, match="s2vnet_bogus"):
        section_training(cfg, None, log=lambda *a: None)


@pytest.mark.slow
def test_tiny_benchmark_writes_report(tmp_path):
    from napari_s2vnet.benchmark.train3d import train_dynunet
    from napari_s2vnet.train.volumes import phantom_volumes

    # a 3D U-Net "trained" for 2 s, so the accuracy section exercises the baseline path too
    vols = phantom_volumes(1, 3.0, seed=0, auto=True)
    ids = sorted({int(c) for v in vols for c in np.unique(v.labels) if c})
    train_dynunet(vols, ids, 1.0, tmp_path / "train" / "dynunet", roi=(64, 64, 64), batch=1, log=lambda *a: None)
    cfg = BenchConfig.quick_preset(
        out=tmp_path, weights="random", threads=1, synthetic_shape=(12, 40, 40), synthetic_spacing=(3.0, 3.0, 3.0),
        roi=(64, 64, 64), swin_feature_size=12, repeats_ours=1, repeats_3d=1, latency_cases=("synthetic_small",),
        latency_clicks=4, heldout_phantoms=1, phantom_shape=(12, 48, 48), max_clicks=2,
        classes_per_case=2, ablation_classes_per_case=1, accuracy_real=(), command="pytest", busy=True,
    )
    doc = run_benchmark(cfg, log=lambda *a: None)
    for key in HEADLINE:
        assert key in doc
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert set(HEADLINE) <= set(saved)
    assert saved["speedup_vs_3d"] > 0 and saved["memory_ratio_vs_3d"] > 0
    assert saved["click_latency_ms_p95"] > 0 and saved["propagate_volume_s"] >= 0
    assert set(saved["dice_interactive"]) == {"s2vnet", "s2vnet_box", "s2vnet_no_propagation", "region_growing"}
    assert set(saved["dice_interactive"]["s2vnet"]) == {"1", "2"}
    assert "dynunet" in saved["dice_auto"] and "s2vnet" in saved["dice_auto"]
    md = (tmp_path / "benchmark.md").read_text()
    assert "Speed and memory" in md and "Dice after k simulated clicks" in md and "box + clicks protocol" in md
    busy = saved["sections"]["speed"]["busy"]
    assert busy["threads"] and all(r["summary"]["inprocess_s"]["median"] > 0 for r in busy["threads"].values())
    assert "Busy machine" in md and "Where our time goes" in md and "cluster decoder" in md
    for png in ("speed.png", "latency.png", "interactive.png"):
        assert (tmp_path / png).stat().st_size > 0


def test_training_jobs_run_in_parallel_and_failures_surface(tmp_path):
    import sys
    import time

    from napari_s2vnet.benchmark.trainings import Job, run_jobs

    sleep = [sys.executable, "-c", "import time; time.sleep(1.5)"]
    jobs = [Job(f"j{i}", sleep, tmp_path / f"j{i}") for i in range(2)]
    t0 = time.time()
    done, _ = run_jobs(jobs, parallel=2, log=lambda *a: None, poll_s=0.1)
    assert {j.name for j in done} == {"j0", "j1"}
    assert abs(done[0].started - done[1].started) < 1.0  # both started before either finished
    assert time.time() - t0 < 2.9
    bad = Job("bad", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path / "bad")
    with pytest.raises(RuntimeError, match="boom"):
        run_jobs([bad], parallel=1, log=lambda *a: None, poll_s=0.1)


def test_training_commands_parse_and_cover_every_ablation(tmp_path):
    from napari_s2vnet.benchmark import train3d
    from napari_s2vnet.benchmark.trainings import VARIANTS, dynunet_command, ours_command
    from napari_s2vnet.cli import _parser

    seen = set()
    for name in VARIANTS:
        cmd = ours_command(name, tmp_path / name, 1200.0, 16, 1, 0)
        args = _parser().parse_args(cmd[3:])  # after "python -m napari_s2vnet"
        assert args.time_budget_min == 20 and args.threads == 1 and args.device == "cpu"
        seen.add((args.ablation, args.centres_per_class, args.seed))
    assert seen == {("none", None, 0), ("no-propagation", None, 0), ("no-aggregation", None, 0),
                    ("no-adaptive", None, 0), ("none", 3, 0), ("none", None, 1)}
    cmd = dynunet_command(tmp_path / "d", 1200.0, 16, 1, 0, (96, 96, 96))
    assert cmd[2] == "napari_s2vnet.benchmark.train3d" and "--budget-min" in cmd
    assert callable(train3d.main)


def test_3d_baselines_train_on_our_automatic_volumes():
    from napari_s2vnet.benchmark.train3d import training_volumes

    volumes, class_names = training_volumes(phantoms=1)
    assert [v.name for v in volumes] == ["ct_abdomen", "phantom0"] and all(v.auto for v in volumes)
    assert class_names[5] == "liver"


def test_train_memory_benchmark_measures_a_configuration(tmp_path):
    """A fresh process per configuration reports parameters, resident memory and step time."""
    from napari_s2vnet.benchmark import train_memory

    assert train_memory.main(["--config", "tiny:1:2:48", "--classes", "5", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "train_memory.json").read_text())
    assert [(r["preset"], r["batch"], r["slices"], r["crop"], r["classes"]) for r in rows] == [("tiny", 1, 2, 48, 5)]
    r = rows[0]
    assert r["parameters_m"] > 0.5 and r["peak_rss_mb"] >= r["base_rss_mb"] > 0 and r["step_s"] > 0
