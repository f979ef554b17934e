"""Episodes: short runs of consecutive slices, the unit of S2VNet training.

An episode is ``T`` consecutive slices of one volume (going up or down), cropped to ``S x S``
around foreground of its first slice. The same episode serves both modes: automatically (centres
start from the learned class embeddings) or interactively (centres start from simulated clicks on
the first slice); :mod:`napari_s2vnet.train.steps` decides. Augmentation
(:mod:`napari_s2vnet.train.augment`) is one draw per episode, identical on its slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from napari_s2vnet.train.volumes import TrainVolume


@dataclass
class EpisodeBatch:
    images: torch.Tensor  # (B, T, 2, S, S) float
    labels: torch.Tensor  # (B, T, S, S) long, user ids
    auto: list[bool]  # per episode: ids are model class ids
    names: list[str]


class EpisodeSampler:
    def __init__(self, volumes: list[TrainVolume], slices: int, crop: int, rng: np.random.Generator) -> None:
        if not volumes:
            raise ValueError("no training volumes")
        self.volumes = volumes
        self.slices = slices
        self.crop = crop
        self.rng = rng

    def _pick(self, auto_only: bool) -> TrainVolume:
        pool = [v for v in self.volumes if v.auto or not auto_only]
        weights = np.array([v.weight for v in pool], dtype=float)
        return pool[self.rng.choice(len(pool), p=weights / weights.sum())]

    def _episode(self, vol: TrainVolume) -> tuple[np.ndarray, np.ndarray]:
        z_count = vol.labels.shape[0]
        t = min(self.slices, z_count)
        fg_slices = np.flatnonzero(vol.labels.reshape(z_count, -1).any(1))
        z0 = int(self.rng.choice(fg_slices)) if len(fg_slices) else int(self.rng.integers(z_count))
        step = 1 if self.rng.random() < 0.5 else -1
        if not 0 <= z0 + step * (t - 1) < z_count:
            step = -step
        zs = [z0 + step * i for i in range(t)]
        zs += [zs[-1]] * (self.slices - t)  # very thin volumes: repeat the last slice
        first = vol.labels[z0]
        fg = np.argwhere(first > 0)
        h, w = first.shape
        s = self.crop
        if len(fg):
            cy, cx = fg[self.rng.integers(len(fg))] + self.rng.integers(-s // 4, s // 4 + 1, size=2)
        else:
            cy, cx = h // 2, w // 2
        y0 = int(np.clip(cy - s // 2, min(0, h - s), max(0, h - s)))
        x0 = int(np.clip(cx - s // 2, min(0, w - s), max(0, w - s)))
        img = np.zeros((self.slices, vol.image.shape[0], s, s), np.float32)
        lab = np.zeros((self.slices, s, s), np.int64)
        ys, xs = slice(max(y0, 0), min(y0 + s, h)), slice(max(x0, 0), min(x0 + s, w))
        oy, ox = ys.start - y0, xs.start - x0
        ny, nx = ys.stop - ys.start, xs.stop - xs.start
        for i, z in enumerate(zs):
            img[i, :, oy : oy + ny, ox : ox + nx] = vol.image[:, z, ys, xs]
            lab[i, oy : oy + ny, ox : ox + nx] = vol.labels[z, ys, xs]
        return img, lab

    def sample(self, batch: int, auto: bool) -> EpisodeBatch:
        vols = [self._pick(auto) for _ in range(batch)]
        pairs = [self._episode(v) for v in vols]
        images = torch.from_numpy(np.stack([p[0] for p in pairs]))
        labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return EpisodeBatch(images, labels, [v.auto for v in vols], [v.name for v in vols])
