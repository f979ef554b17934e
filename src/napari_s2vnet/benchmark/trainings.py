"""Equal-budget trainings for the benchmark: the 3D U-Net and our model with its ablations.

Every model gets the same wall-clock budget, the same torch thread count and the same data (the
training volumes of ``napari-s2vnet train`` with ``--phantoms N``; see :mod:`train3d` for what the
3D U-Net uses of them). Each training is its own process and is *time-driven*: ours through
``napari-s2vnet train --time-budget-min`` (warm-up, then cosine decay over elapsed time), the 3D
U-Net through :func:`train3d.train_dynunet` (poly decay over elapsed time), so every schedule ends
exactly at the budget whatever the speed of the machine.

``jobs`` trainings run at once (default 1). With ``jobs * threads`` no larger than the number of
cores, the runs do not compete for cores, but they still share memory bandwidth and caches; the
1-minute load average is sampled every 30 s and reported so that the conditions are on record.

Variants of our model (:data:`VARIANTS`): the full model, no propagation (centres re-initialised
from the anchor on every slice), no recurrent aggregation (the next slice starts from the last
centres alone), no adaptive sampling (all click rounds weigh the same) and several centres per
class (``--centres-per-class 3``); and the full model again with another seed, so that the table
shows how far a seed alone moves the numbers.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_s2vnet.benchmark.speed import stats

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "s2vnet_full": ("all components (1 centre per class)", []),
    "s2vnet_no_propagation": ("no propagation: centres re-initialised on every slice", ["--ablation", "no-propagation"]),
    "s2vnet_no_aggregation": ("no recurrent aggregation: the last slice's centres only",
                              ["--ablation", "no-aggregation"]),
    "s2vnet_no_adaptive": ("no adaptive sampling: every click round weighs the same", ["--ablation", "no-adaptive"]),
    "s2vnet_centres3": ("3 centres per class instead of 1", ["--centres-per-class", "3"]),
    "s2vnet_full_seed1": ("all components, training seed 1 (how much a seed alone moves the numbers)", ["--seed", "1"]),
}


@dataclass
class Job:
    name: str
    command: list[str]
    out: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    finished: float = 0.0


def ours_command(name: str, out: Path, budget_s: float, phantoms: int, threads: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "napari_s2vnet", "train", "--out", str(out), "--time-budget-min", f"{budget_s / 60:g}",
            "--steps", "1000000", "--val-every", "1000000", "--phantoms", str(phantoms), "--threads", str(threads),
            "--device", "cpu", "--seed", str(seed), *VARIANTS[name][1]]


def dynunet_command(out: Path, budget_s: float, phantoms: int, threads: int, seed: int, roi) -> list[str]:
    return [sys.executable, "-m", "napari_s2vnet.benchmark.train3d", "--out", str(out), "--budget-min", f"{budget_s / 60:g}",
            "--phantoms", str(phantoms), "--threads", str(threads), "--seed", str(seed),
            "--roi", ",".join(str(r) for r in roi)]


def _ours_result(job: Job) -> dict[str, Any]:
    rows = list(csv.DictReader(open(job.out / "train_log.csv")))
    return {"weights": str(job.out / "weights.safetensors"), "steps": int(rows[-1]["step"]),
            "train_seconds": float(rows[-1]["seconds"]), "variant": VARIANTS[job.name][0]}


def _dynunet_result(job: Job) -> dict[str, Any]:
    import torch

    path = job.out / "dynunet.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return {"weights": str(path), "iterations": ckpt["iterations"], "train_seconds": ckpt["seconds"],
            "volumes": ckpt["volumes"]}


def run_jobs(jobs: list[Job], parallel: int, log=print, poll_s: float = 2.0) -> tuple[list[Job], list[float]]:
    """Run the jobs, at most ``parallel`` at once; -> the jobs (timed) and the sampled 1-min load averages."""
    waiting, running, done, load = list(jobs), [], [], []
    last_sample = 0.0
    while waiting or running:
        while waiting and len(running) < max(1, parallel):
            job = waiting.pop(0)
            job.out.mkdir(parents=True, exist_ok=True)
            job.started = time.time()
            with open(job.out / "process.log", "w") as out:  # the child keeps its own copy of the handle
                job.process = subprocess.Popen(job.command, stdout=out, stderr=subprocess.STDOUT)
            log(f"  started {job.name}")
            running.append(job)
        for job in list(running):
            if job.process.poll() is not None:
                job.finished = time.time()
                running.remove(job)
                done.append(job)
                if job.process.returncode != 0:
                    tail = (job.out / "process.log").read_text()[-2000:]
                    for other in running:
                        other.process.kill()
                    raise RuntimeError(f"training {job.name} failed (exit {job.process.returncode}):\n{tail}")
                log(f"  finished {job.name} in {job.finished - job.started:.0f} s")
        if time.time() - last_sample >= 30:
            load.append(os.getloadavg()[0])
            last_sample = time.time()
        time.sleep(poll_s)
    return done, load


def train_all(out: Path, budget_s: float, phantoms: int, threads: int, variants=tuple(VARIANTS), dynunet: bool = True,
              roi=(96, 96, 96), seed: int = 0, parallel: int = 1, log=print) -> dict[str, Any]:
    """Train every model for ``budget_s`` seconds (``parallel`` at a time); -> the ``training`` section."""
    out = Path(out)
    jobs = []  # the 3D U-Net first, so that with parallel=2 it runs beside our full model
    if dynunet:
        jobs.append(Job("dynunet", dynunet_command(out / "dynunet", budget_s, phantoms, threads, seed, roi), out / "dynunet"))
    for name in variants:
        jobs.append(Job(name, ours_command(name, out / name, budget_s, phantoms, threads, seed), out / name))
    t0 = time.time()
    done, load = run_jobs(jobs, parallel, log)
    models: dict[str, Any] = {}
    for job in done:
        res = _dynunet_result(job) if job.name == "dynunet" else _ours_result(job)
        res.update(process_seconds=job.finished - job.started, command=" ".join(job.command[1:]))
        models[job.name] = res
        log(f"  {job.name}: {res.get('steps', res.get('iterations'))} steps, {res['train_seconds']:.0f} s of training")
    return {"budget_s": budget_s, "threads": threads, "parallel": parallel, "phantoms": phantoms, "seed": seed,
            "wall_seconds": time.time() - t0, "load_avg_1min": {"samples": len(load), **(stats(load) or {})},
            "models": models}
