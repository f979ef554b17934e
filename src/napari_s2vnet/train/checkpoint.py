"""Checkpoints that resume a run exactly, the run options of training at scale, and SIGTERM.

A checkpoint (``checkpoint.pt``, read with ``torch.load(weights_only=True)``: nothing but tensors and
plain containers) holds the model, the optimizer, the learning-rate scheduler, the gradient scaler,
the step, the elapsed seconds, and every random state the loop draws from, per rank:

* the numpy ``Generator`` of the sampler and the interactive steps (``bit_generator.state``, as JSON);
* torch's CPU generator (and the CUDA generators on CUDA);
* every ``numpy.random.RandomState`` inside the augmenter (MONAI's transforms each keep their own,
  nested: ``Compose`` -> ``RandAffined`` -> ``RandAffine`` -> ``RandAffineGrid``), found by walking
  the augmenter's attributes in a fixed order.

So ``--resume`` from step ``k`` draws the same episodes, augmentations and clicks as the run that was
not interrupted, and gives the same losses. A checkpoint is written to a temporary file in the run
folder, ``fsync``-ed and renamed over the old one, so a crash while saving keeps the previous one.
Checkpoints of earlier versions (no random states) still load; the run then reseeds as before.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class ScaleOptions:
    """Run options beside ``TrainConfig`` (which lives with the model configs)."""

    ckpt_every: int = 0  # write checkpoint.pt every this many steps (0: at each validation only)
    accumulate: int = 1  # micro-batches (of ``batch_episodes`` each) per optimizer step
    amp: str = "auto"  # auto: bf16 on CUDA where supported, else fp16 + GradScaler; off on CPU/MPS
    compile: bool = False  # torch.compile the backbone and the pixel decoder (the per-slice encoder)
    workers: int = 0  # episode-loading processes (train.loader); 0: in the training process (exact resume)

    def __post_init__(self) -> None:
        if self.accumulate < 1:
            raise ValueError("accumulate must be at least 1")
        if self.workers < 0:
            raise ValueError("workers must be 0 or positive")
        if self.ckpt_every < 0:
            raise ValueError("ckpt_every must be 0 or positive")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, not {self.amp!r}")


def amp_dtype(device: torch.device, mode: str) -> torch.dtype | None:
    """The autocast dtype: ``None`` for full precision (CPU, MPS, ``off``)."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def random_states(obj: Any) -> list[np.random.RandomState]:
    """Every ``RandomState`` reachable from ``obj``'s attributes, in a fixed (attribute) order."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def walk(x: Any, depth: int) -> None:
        if id(x) in seen or depth > 12:
            return
        seen.add(id(x))
        if isinstance(x, np.random.RandomState):
            found.append(x)
        elif isinstance(x, (list, tuple)):
            for item in x:
                walk(item, depth + 1)
        elif isinstance(x, dict):
            for key in sorted(x, key=str):
                walk(x[key], depth + 1)
        elif hasattr(x, "__dict__") and not isinstance(x, (torch.Tensor, np.ndarray, type)):
            walk(vars(x), depth + 1)

    walk(obj, 0)
    return found


def _state_of(r: np.random.RandomState) -> list[Any]:
    name, keys, pos, has_gauss, cached = r.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _set_state(r: np.random.RandomState, state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    r.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def rng_snapshot(rng: np.random.Generator, augmenter: Any, device: torch.device) -> dict[str, Any]:
    """This process's random states (see the module docstring)."""
    snap: dict[str, Any] = {
        "numpy": json.dumps(rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "augment": [_state_of(r) for r in random_states(augmenter)],
    }
    if device.type == "cuda":
        snap["cuda"] = torch.cuda.get_rng_state(device)
    return snap


def rng_restore(snap: dict[str, Any], rng: np.random.Generator, augmenter: Any, device: torch.device) -> None:
    """Put the states of :func:`rng_snapshot` back into ``rng``, torch and the augmenter."""
    rng.bit_generator.state = json.loads(snap["numpy"])
    torch.set_rng_state(snap["torch"])
    states = random_states(augmenter)
    if len(states) != len(snap["augment"]):
        raise ValueError("the checkpoint's augmentation differs from this run's (another --augment?)")
    for r, state in zip(states, snap["augment"]):
        _set_state(r, state)
    if device.type == "cuda" and "cuda" in snap:
        torch.cuda.set_rng_state(snap["cuda"], device)


def gather_snapshots(snap: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """Every rank's snapshot, on every rank (a collective when ``world > 1``)."""
    if world == 1:
        return [snap]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, snap)
    return out


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file in the same folder, fsync and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class StopOnSigterm:
    """A context that turns SIGTERM into a request: ``requested`` becomes true; the loop saves a
    checkpoint after its current step and returns. Only in the main thread (else a no-op)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def agreed(self, world: int, device: torch.device) -> bool:
        """Whether any rank was asked to stop (all ranks stop after the same step)."""
        if world == 1:
            return self.requested
        flag = torch.tensor([float(self.requested)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
