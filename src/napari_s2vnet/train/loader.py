"""Episode loading that keeps the model busy: a ``torch.utils.data`` pipeline and a preprocessing cache.

* :class:`EpisodeStream` is an ``IterableDataset`` of ``(interactive, EpisodeBatch)``: each worker
  process samples and augments whole micro-batches with its own random streams, seeded by
  ``(seed, rank, worker, start step)``, so ranks and workers never draw the same episodes. A
  ``DataLoader`` hands the workers' batches out round-robin, so the ``j``-th batch of worker ``w``
  is micro-batch ``j * workers + w`` of the run: the worker knows its step (the ``--long-slices``
  curriculum) without talking to the trainer. With workers, ``--resume`` reseeds the streams from
  the step instead of restoring them (the in-process path, ``--workers 0``, resumes exactly).
* :func:`cached_case` keeps each dataset case resampled and normalised once, as ``.npy`` arrays
  under a cache folder keyed by the preprocessing (source files with their sizes and modification
  times, class ids, spacing, modality); later runs memory-map them copy-on-write (``np.load(mmap_mode="c")``), so
  worker processes share the pages instead of copying volumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from napari_s2vnet.model.config import TrainConfig
from napari_s2vnet.train.augment import EpisodeAugmenter
from napari_s2vnet.train.episodes import EpisodeBatch, EpisodeSampler
from napari_s2vnet.train.volumes import TrainVolume, load_case

CACHE_FORMAT = "s2vnet-train-cache-1"


def slices_at(cfg: TrainConfig, step: int) -> int:
    """Slices per episode at ``step`` (0-based), with the ``long_slices`` curriculum."""
    return cfg.long_slices if cfg.long_slices > 0 and step >= cfg.long_from else cfg.episode_slices


class EpisodeStream(IterableDataset):
    """Endless ``(interactive, batch)`` micro-batches; see the module docstring."""

    def __init__(self, volumes: list[TrainVolume], cfg: TrainConfig, swap: torch.Tensor, rank: int = 0,
                 start: int = 0, accumulate: int = 1) -> None:
        super().__init__()
        self.volumes, self.cfg, self.swap = volumes, cfg, swap
        self.rank, self.start, self.accumulate = rank, start, accumulate

    def __iter__(self) -> Iterator[tuple[bool, EpisodeBatch]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, 7919, worker, self.start])
        sampler = EpisodeSampler(self.volumes, cfg.episode_slices, cfg.crop, rng)
        augment = EpisodeAugmenter(self.swap, seed=int(rng.integers(2**31 - 1)), level=cfg.augment,
                                   contrast=cfg.contrast_randomise)
        j = 0
        while True:
            sampler.slices = slices_at(cfg, self.start + (j * workers + worker) // self.accumulate)
            interactive = bool(rng.random() < cfg.interactive_fraction)
            yield interactive, augment(sampler.sample(cfg.batch_episodes, auto=not interactive), rng, interactive)
            j += 1


def _as_is(sample: Any) -> Any:
    return sample


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the model's process keeps the cores it was given


def episode_loader(stream: EpisodeStream, workers: int) -> DataLoader:
    """A ``DataLoader`` over ``stream`` with ``workers`` processes (``batch_size=None``: the stream
    yields whole micro-batches)."""
    return DataLoader(stream, batch_size=None, num_workers=workers, collate_fn=_as_is,
                      worker_init_fn=_worker_init, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None)


def loader_slices_per_s(loader: DataLoader, batches: int) -> float:
    """Slices per second that ``loader`` delivers on its own (after its first batch: worker start-up)."""
    it = iter(loader)
    next(it)
    t0, slices = time.perf_counter(), 0
    for _ in range(batches):
        _, batch = next(it)
        slices += int(batch.labels.shape[0] * batch.labels.shape[1])
    return slices / max(time.perf_counter() - t0, 1e-9)


# ---------------------------------------------------------------------------------- preprocessing cache
def _stamp(path: Path) -> list[Any]:
    """A file's (or a mask folder's files') identity: name, size, modification time."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def cache_key(case: Any, class_names: dict[int, str], target_mm: float, modality: str | None) -> str:
    """Hex key of a case's preprocessing: its source files, class ids, target spacing and modality."""
    desc = {"format": CACHE_FORMAT, "image": _stamp(case.image), "label": _stamp(case.label),
            "classes": sorted(int(i) for i in class_names), "target_mm": round(float(target_mm), 6),
            "modality": modality}
    return hashlib.blake2b(json.dumps(desc, sort_keys=True).encode(), digest_size=10).hexdigest()


def cached_case(case: Any, class_names: dict[int, str], target_mm: float, auto: bool, cache_dir: Path,
                weight: float = 1.0, modality: str | None = None) -> TrainVolume:
    """:func:`~napari_s2vnet.train.volumes.load_case` through the cache (memory-mapped arrays)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case.name)
    folder = Path(cache_dir) / f"{safe}-{cache_key(case, class_names, target_mm, modality)}"
    if not (folder / "meta.json").is_file():
        vol = load_case(case, class_names, target_mm, auto, weight, modality)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            np.save(tmp / "image.npy", vol.image)
            np.save(tmp / "labels.npy", vol.labels)
            (tmp / "meta.json").write_text(json.dumps({"name": vol.name, "native_mm": vol.native_mm}))
            try:
                os.replace(tmp, folder)  # another process may have filled it meanwhile: keep theirs
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads((folder / "meta.json").read_text())
    return TrainVolume(meta["name"], np.load(folder / "image.npy", mmap_mode="c"),
                       np.load(folder / "labels.npy", mmap_mode="c"), auto, weight, float(meta["native_mm"]))
