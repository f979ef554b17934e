"""The training loop behind ``napari-s2vnet train``.

One model, one run for both modes: every step draws either automatic or interactive episodes
(``interactive_fraction``). AdamW with linear warm-up then cosine decay; AMP on CUDA (bf16 where the GPU
supports it, else fp16 with a ``GradScaler``); gradient accumulation over micro-batches; optional
``torch.compile`` of the per-slice encoder; atomic checkpoints that resume exactly, and SIGTERM saves
one and stops (:mod:`.checkpoint`); several
GPUs or CPU processes through ``torchrun``: PyTorch's ``DistributedDataParallel`` (NCCL on CUDA, gloo
on CPU; bucketed gradient all-reduce overlapped with backward). A step runs through
:class:`_Step`, a module whose ``forward`` is the whole training step, so DDP sees every parameter
the step uses; ``find_unused_parameters`` covers the ones an episode kind leaves unused (an automatic
step never touches the click encoder). Rank 0 alone logs, validates and saves.
With ``time_budget_s`` the run stops when that much wall-clock time has passed and the cosine decay
follows elapsed time instead of steps, so the schedule ends exactly at the budget (the equal-budget
comparisons of ``napari-s2vnet benchmark``).
The run folder receives ``train_log.csv`` (losses per step), ``val_dice.csv`` (Dice per class per
validation), ``curves.png``, ``checkpoint.pt`` (for ``--resume``) and ``weights.safetensors``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from napari_s2vnet.inference.predictor import resolve_device
from napari_s2vnet.model.config import ModelConfig, TrainConfig
from napari_s2vnet.model.s2vnet import S2VNet
from napari_s2vnet.model.weights import save_weights
from napari_s2vnet.train.augment import EpisodeAugmenter, left_right_swap
from napari_s2vnet.train.checkpoint import (ScaleOptions, StopOnSigterm, amp_dtype, atomic_torch_save,
                                            gather_snapshots, rng_restore, rng_snapshot)
from napari_s2vnet.train.episodes import EpisodeBatch, EpisodeSampler
from napari_s2vnet.train.loader import EpisodeStream, episode_loader, slices_at
from napari_s2vnet.train.losses import total
from napari_s2vnet.train.plots import plot_curves
from napari_s2vnet.train.steps import auto_step, class_lut, interactive_step
from napari_s2vnet.train.targets import parse_mix
from napari_s2vnet.train.volumes import TrainVolume

Validator = Callable[[S2VNet], dict[str, float]]


class _Step(torch.nn.Module):
    """One training step as a module (what ``DistributedDataParallel`` wraps) -> its losses."""

    def __init__(self, model: S2VNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, lut, rng, second_round_fraction: float, mix, interactive: bool,
                lesion_donor: float = 0.0) -> dict[str, torch.Tensor]:
        if interactive:
            return interactive_step(self.model, batch, lut, rng, second_round_fraction, mix=mix,
                                    lesion_donor=lesion_donor)
        return auto_step(self.model, batch, lut)


def lr_factor(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine to 2 % over the steps (or over the time budget)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.time_budget_s > 0:
        progress = elapsed_s / cfg.time_budget_s
    else:
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(
    model_config: ModelConfig, cfg: TrainConfig, volumes: list[TrainVolume], run_dir: Path,
    device: str = "auto", resume: bool = False, validate: Validator | None = None,
    options: ScaleOptions | None = None,
) -> Path:
    """Train, log and save; returns the path of the final ``weights.safetensors``."""
    options = options or ScaleOptions()
    rank, world = _dist_info()
    dev = resolve_device(device)
    if world > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, rank])
    run_dir.mkdir(parents=True, exist_ok=True)
    model = S2VNet(model_config).to(dev)
    if cfg.init and not resume:
        _load_init(model, Path(cfg.init))
    if options.compile:  # in place: the parameter names (checkpoints, weights) stay the same
        model.backbone.compile()
        model.pixel_decoder.compile()
    step_fn: torch.nn.Module = _Step(model)
    if world > 1:  # DDP broadcasts rank 0's parameters, then averages gradients in backward
        step_fn = torch.nn.parallel.DistributedDataParallel(
            step_fn, device_ids=[dev] if dev.type == "cuda" else None, find_unused_parameters=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clock = {"t0": time.time(), "before": 0.0}  # wall clock of this process + seconds of earlier runs

    def elapsed() -> float:
        return clock["before"] + time.time() - clock["t0"]

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg, elapsed()))
    dtype = amp_dtype(dev, options.amp)
    amp = torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    scaler = torch.amp.GradScaler("cuda" if dev.type == "cuda" else "cpu", enabled=dtype == torch.float16)
    start, snapshots, augment_seed = 0, None, cfg.seed * 1000 + rank
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        start = int(ckpt["step"])
        clock["before"] = float(ckpt.get("seconds", 0.0))
        snapshots = ckpt.get("rng")
        if not snapshots or len(snapshots) != world:  # an older checkpoint, or another number of ranks
            if rank == 0 and snapshots:
                tqdm.write(f"checkpoint from {len(snapshots)} processes, this run has {world}: new random streams")
            snapshots = None
            rng, augment_seed = np.random.default_rng([cfg.seed, rank, start]), augment_seed + start
    sampler = EpisodeSampler(volumes, cfg.episode_slices, cfg.crop, rng)
    lut = class_lut(model)
    mix = parse_mix(cfg.target_mix)
    augment = EpisodeAugmenter(left_right_swap(dict(zip(model_config.class_ids, model_config.class_names)), len(lut) - 1),
                               seed=augment_seed, level=cfg.augment,
                               contrast=cfg.contrast_randomise)
    if snapshots:
        rng_restore(snapshots[rank], rng, augment, dev)  # exactly where the interrupted run was
    stream = None
    if options.workers > 0:  # episodes from worker processes (train.loader); clicks still from ``rng``
        stream = iter(episode_loader(EpisodeStream(volumes, cfg, augment.swap, rank, start, options.accumulate),
                                     options.workers))

    def next_batch() -> tuple[bool, EpisodeBatch]:
        if stream is not None:
            return next(stream)
        interactive = bool(rng.random() < cfg.interactive_fraction)
        batch = sampler.sample(cfg.batch_episodes, auto=not interactive)
        return interactive, augment(batch, rng, interactive)  # one draw per episode

    timing = {"data_s": 0.0, "step_s": 0.0, "slices": 0}
    if rank == 0:
        (run_dir / "config.json").write_text(json.dumps(
            {"model": json.loads(model_config.to_json()), "train": dataclasses.asdict(cfg),
             "scale": dataclasses.asdict(options), "volumes": [v.name for v in volumes]}, indent=1))
    log_path, val_path = run_dir / "train_log.csv", run_dir / "val_dice.csv"
    if rank == 0 and resume:
        _truncate_log(log_path, start)
    log_file = open(log_path, "a" if resume else "w", newline="") if rank == 0 else None
    log = csv.writer(log_file) if log_file else None
    if log and not resume:
        log.writerow(["step", "mode", "loss", "ce", "dice", "objectness", "class", "aux", "lr", "seconds"])
    clock["t0"] = time.time()
    budget = cfg.time_budget_s
    bar = tqdm(initial=start, total=None if budget > 0 else cfg.steps, disable=rank != 0, mininterval=5,
               unit="step")
    step, saved, stopped = start, start, False

    def checkpoint(with_validation: bool) -> None:
        snaps = gather_snapshots(rng_snapshot(rng, augment, dev), world)  # every rank's random streams
        if rank == 0:
            _checkpoint(model, opt, sched, scaler, step, elapsed(), snaps, ckpt_path, log_file,
                        validate if with_validation else None, log_path, val_path, run_dir)

    with StopOnSigterm() as stop:
        while step < cfg.steps and not (budget > 0 and _over_budget(elapsed(), budget, world, dev)):
            sampler.slices = slices_at(cfg, step)
            model.train()
            opt.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            modes, loss_sum = set(), 0.0
            t_step = time.perf_counter()
            for micro in range(options.accumulate):
                t_data = time.perf_counter()
                interactive, batch = next_batch()
                timing["data_s"] += time.perf_counter() - t_data
                timing["slices"] += int(batch.labels.shape[0] * batch.labels.shape[1])
                batch.images, batch.labels = batch.images.to(dev), batch.labels.to(dev)
                last = micro == options.accumulate - 1
                sync = step_fn.no_sync() if world > 1 and not last else contextlib.nullcontext()
                with sync:  # DDP averages the gradients once, in the last micro-batch's backward
                    with amp:
                        losses = step_fn(batch, lut, rng, cfg.second_round_fraction, mix, interactive,
                                         cfg.lesion_donor)
                        loss = total(losses) / options.accumulate
                    scaler.scale(loss).backward()
                loss_sum += float(loss.detach())
                modes.add("interactive" if interactive else "auto")
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / options.accumulate
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            timing["step_s"] += time.perf_counter() - t_step
            mode = modes.pop() if len(modes) == 1 else "mixed"
            if log:
                log.writerow([step + 1, mode, f"{loss_sum:.5f}",
                              *(f"{sums[k]:.5f}" for k in ("ce", "dice", "objectness", "class", "aux")),
                              f"{sched.get_last_lr()[0]:.6f}", f"{elapsed():.1f}"])
                bar.set_postfix(loss=f"{loss_sum:.3f}", mode=mode[:4])
            bar.update()
            step += 1
            stopped = stop.agreed(world, dev)
            validating = step % cfg.val_every == 0
            if validating or stopped or (options.ckpt_every and step % options.ckpt_every == 0):
                checkpoint(validating and not stopped)
                saved = step
            if stopped:
                if rank == 0:
                    tqdm.write(f"SIGTERM: stopped after step {step}; {ckpt_path} saved (continue with --resume)")
                break
    bar.close()
    seconds = elapsed()
    if rank == 0 and step > start:
        r = _loading_report(timing, options.workers)
        tqdm.write(f"episode loading ({r['workers']} workers): {r['waited_share']:.0%} of the step time spent waiting "
                   f"for data; model {r['model_slices_per_s']:.1f} slices/s")
    if saved != step:
        checkpoint(True)
    if log_file:
        log_file.close()
    weights = run_dir / "weights.safetensors"
    in_sync = _ranks_in_sync(model, world)
    if rank == 0:
        info = {"train": dataclasses.asdict(cfg), "scale": dataclasses.asdict(options), "seconds": round(seconds, 1),
                "steps": step, "device": str(dev), "world_size": world, "volumes": [v.name for v in volumes],
                "torch": torch.__version__, "ranks_in_sync": in_sync, "amp": str(dtype).replace("torch.", ""),
                "stopped_by_sigterm": stopped, "loading": _loading_report(timing, options.workers)}
        save_weights(model, weights, info)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return weights


def _ranks_in_sync(model: S2VNet, world: int) -> bool:
    """Whether every process ends with the same parameters (what DDP guarantees), checked."""
    if world == 1:
        return True
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    lo, hi = flat.clone(), flat.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))


#: Pixel-decoder tensors of the stride-2 layout that a stride-4 model (``embed_stride=4``) does not
#: have: the stride-2 lateral 1x1 conv and smooth 3x3 ConvNormAct (conv, GroupNorm).
STRIDE2_ONLY = ("pixel_decoder.lateral.0.weight", "pixel_decoder.lateral.0.bias",
                "pixel_decoder.smooth.0.0.weight", "pixel_decoder.smooth.0.1.weight", "pixel_decoder.smooth.0.1.bias")


def _load_init(model: S2VNet, path: Path) -> None:
    """Start from the parameters of ``path`` (strict: same architecture and automatic classes).

    The one allowed difference: a stride-2 file for a stride-4 model (``--embed-stride 4``); exactly
    the :data:`STRIDE2_ONLY` tensors are dropped, everything else must match.
    """
    from napari_s2vnet.errors import InputError
    from napari_s2vnet.model.weights import load_weights

    start = load_weights(path, "cpu")
    if (start.config.class_ids, start.config.widths, start.config.dim) != (
            model.config.class_ids, model.config.widths, model.config.dim):
        raise InputError(f"--init {path}: its classes or architecture differ from this run's model")
    state = start.state_dict()
    given, wanted = start.config.embed_stride, model.config.embed_stride
    if (given, wanted) == (2, 4):
        missing = [k for k in STRIDE2_ONLY if k not in state]
        if missing:
            raise InputError(f"--init {path}: stride-2 tensors not found: {missing}")
        for k in STRIDE2_ONLY:
            del state[k]
        print(f"--init {path.name}: stride-2 weights for a stride-4 model: dropped {', '.join(STRIDE2_ONLY)}",
              flush=True)
    elif given != wanted:
        raise InputError(f"--init {path}: embed_stride {given} cannot start a model with embed_stride {wanted}")
    model.load_state_dict(state, strict=True)


def _over_budget(elapsed_s: float, budget_s: float, world: int, device: torch.device) -> bool:
    """Whether the time budget is spent; with several processes, rank 0's clock decides for all."""
    if world == 1:
        return elapsed_s >= budget_s
    flag = torch.tensor([float(elapsed_s >= budget_s)], device=device)
    torch.distributed.broadcast(flag, 0)
    return bool(flag.item())


def _checkpoint(model, opt, sched, scaler, step: int, seconds: float, snapshots: list, ckpt_path: Path, log_file,
                validate: Validator | None, log_path: Path, val_path: Path, run_dir: Path) -> None:
    """Save ``checkpoint.pt`` atomically (for ``--resume``), validate and redraw the curves (rank 0)."""
    log_file.flush()
    os.fsync(log_file.fileno())
    atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                       "scaler": scaler.state_dict(), "step": step, "seconds": seconds, "rng": snapshots}, ckpt_path)
    if validate is not None:
        with torch.random.fork_rng(devices=[]):  # validating draws nothing from the training streams
            _validate(model, validate, step, val_path)
    plot_curves(log_path, val_path, run_dir / "curves.png")


def _loading_report(timing: dict[str, float], workers: int) -> dict[str, float]:
    """How much of the step time went to waiting for episodes, and the slices/s the model consumed."""
    compute = max(timing["step_s"] - timing["data_s"], 1e-9)
    return {"workers": workers, "waited_share": round(timing["data_s"] / max(timing["step_s"], 1e-9), 4),
            "data_s": round(timing["data_s"], 2), "step_s": round(timing["step_s"], 2),
            "model_slices_per_s": round(timing["slices"] / compute, 2)}


def _truncate_log(path: Path, step: int) -> None:
    """Drop the log rows after ``step`` (a run killed after its last checkpoint logged steps that the
    resumed run does again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) != len(rows):
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)


def _validate(model: S2VNet, validate: Validator, step: int, path: Path) -> None:
    model.eval()
    scores = validate(model)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["step", *scores])
        w.writerow([step, *(f"{v:.4f}" for v in scores.values())])
    mean = scores.get("mean_dice")
    tqdm.write(f"step {step}: validation mean Dice {mean:.3f}" if mean is not None else f"step {step}: {scores}")
