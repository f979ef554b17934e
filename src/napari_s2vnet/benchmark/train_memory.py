"""Memory and time of one training step per model preset and episode size (``python -m
napari_s2vnet.benchmark.train_memory``).

What a GPU run has to budget per rank is, to first order, the model's parameters, their gradients
and AdamW's two moments, plus the activations that one step keeps for backward. This benchmark
measures that on the CPU, in full precision, in a fresh process per configuration: the resident
memory after the model and optimizer exist (``base``) and its high-water mark during two steps, one
automatic and one interactive episode batch with correction rounds (``peak``); ``step`` is the mean
of the two steps' wall time. On a GPU add the CUDA context (a few hundred MB) and the caching
allocator's slack; bf16 AMP stores most activations in 16 bits (roughly halving that part) and
keeps fp32 weights. It is an estimate for planning ``--batch`` / ``--crop`` / ``--slices``, not a
GPU measurement.

Episodes are cut from procedural phantoms; the model has ``--classes`` automatic classes (117, as
TotalSegmentator v2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

#: (preset, batch episodes, slices per episode, crop px)
DEFAULT_CONFIGS = (("tiny", 4, 3, 112), ("tiny", 4, 8, 112), ("tiny", 8, 6, 192),
                   ("base", 4, 3, 112), ("base", 4, 6, 192))


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in a fresh process (spawned)."""
    import numpy as np
    import torch

    from napari_s2vnet.benchmark.speed import current_rss, peak_rss_self
    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.model.config import preset
    from napari_s2vnet.model.s2vnet import S2VNet
    from napari_s2vnet.train.episodes import EpisodeSampler
    from napari_s2vnet.train.steps import auto_step, class_lut, interactive_step
    from napari_s2vnet.train.volumes import prepare

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    names = {i: f"class_{i}" for i in range(1, spec["classes"] + 1)}
    model = S2VNet(preset(spec["preset"], names))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    crop, slices = spec["crop"], spec["slices"]
    ph = make_phantom(7, shape=(slices + 8, crop + 32, crop + 32), spacing=(3.0, 3.0, 3.0))
    vol = prepare(ph.image, ph.labels.astype(np.int32), ph.spacing, "CT", 3.0, "phantom", auto=True)
    rng = np.random.default_rng(0)
    sampler = EpisodeSampler([vol], slices=slices, crop=crop, rng=rng)
    lut = class_lut(model)
    model.train()
    base = current_rss()
    seconds = []
    for auto in (True, False):
        batch = sampler.sample(spec["batch"], auto=auto)
        start = time.perf_counter()
        losses = auto_step(model, batch, lut) if auto else interactive_step(model, batch, lut, rng, 1.0)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    peak = peak_rss_self() or current_rss()
    params = sum(p.numel() for p in model.parameters())
    return {**spec, "parameters_m": params / 1e6, "weights_grads_adam_mb": 4 * params * 4 / 2**20,
            "base_rss_mb": base / 2**20, "peak_rss_mb": peak / 2**20, "step_mb": (peak - base) / 2**20,
            "step_s": float(np.mean(seconds))}


def run(configs, classes: int, threads: int) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    rows = []
    for name, batch, slices, crop in configs:
        spec = {"preset": name, "batch": batch, "slices": slices, "crop": crop, "classes": classes, "threads": threads}
        with ctx.Pool(1) as pool:
            row = pool.apply(_measure, (spec,))
        print(f"{name:5s} batch {batch} x {slices} slices x {crop}^2: {row['parameters_m']:.2f} M parameters, "
              f"step +{row['step_mb']:.0f} MB over {row['base_rss_mb']:.0f} MB (peak {row['peak_rss_mb']:.0f} MB), "
              f"{row['step_s']:.1f} s/step on {threads} CPU thread(s)", flush=True)
        rows.append(row)
    return rows


def _parse(text: str) -> tuple[str, int, int, int]:
    name, batch, slices, crop = text.split(":")
    return name, int(batch), int(slices), int(crop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_s2vnet.benchmark.train_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", type=_parse, default=None,
                   help="PRESET:BATCH:SLICES:CROP (repeatable; default: a tiny and a base set)")
    p.add_argument("--classes", type=int, default=117)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write OUT/train_memory.json")
    args = p.parse_args(argv)
    rows = run(args.config or DEFAULT_CONFIGS, args.classes, args.threads)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_memory.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
