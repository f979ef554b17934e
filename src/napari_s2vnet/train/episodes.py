"""Episodes: short runs of consecutive slices, the unit of S2VNet training.

An episode is ``T`` consecutive slices of one volume (going up or down), cropped to ``S x S``
around foreground of its first slice. The same episode serves both modes: automatically (centres
start from the learned class embeddings) or interactively (centres start from simulated clicks on
the first slice); :mod:`napari_s2vnet.train.steps` decides. Augmentation
(:mod:`napari_s2vnet.train.augment`) is one draw per episode, identical on its slices.

``end_fraction`` of the interactive episodes instead start on one of the last ``T - 1`` slices of a
labelled class and run past its end (the crop centred on that class): a plain episode starts on any
foreground slice, so a 4-slice window crosses the end of a 40-slice organ in about one episode of 25,
while at inference propagation must stop there rather than run on into the look-alike neighbour
(docs/benchmarks.md §0f).
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
    def __init__(self, volumes: list[TrainVolume], slices: int, crop: int, rng: np.random.Generator,
                 end_fraction: float = 0.0) -> None:
        if not volumes:
            raise ValueError("no training volumes")
        self.volumes = volumes
        self.slices = slices
        self.crop = crop
        self.rng = rng
        self.end_fraction = end_fraction
        self._extents: dict[int, list[tuple[int, int, int]]] = {}  # volume -> (class, first z, last z)

    def _end_start(self, vol: TrainVolume, t: int) -> tuple[int, int, int] | None:
        """``(z0, step, class)``: an episode start on one of a class's last ``t - 1`` slices, going past
        its end (up or down) and staying in the volume; None if no class has such an end."""
        if id(vol) not in self._extents:
            from scipy import ndimage

            boxes = ndimage.find_objects(vol.labels)
            self._extents[id(vol)] = [(c + 1, b[0].start, b[0].stop - 1) for c, b in enumerate(boxes) if b is not None]
        z_count = vol.labels.shape[0]
        ends = [(c, lo, hi) for c, lo, hi in self._extents[id(vol)] if hi - lo + 1 >= t and (lo >= t - 1 or hi <= z_count - t)]
        if t < 2 or not ends:
            return None
        c, lo, hi = ends[self.rng.integers(len(ends))]
        steps = [s for s, ok in ((1, hi <= z_count - t), (-1, lo >= t - 1)) if ok]
        step = steps[self.rng.integers(len(steps))]
        back = int(self.rng.integers(0, t - 1))  # 0 .. t-2 slices before the end: at least one slice past it
        return (hi - back if step == 1 else lo + back), step, c

    def _pick(self, auto_only: bool) -> TrainVolume:
        pool = [v for v in self.volumes if v.auto or not auto_only]
        weights = np.array([v.weight for v in pool], dtype=float)
        return pool[self.rng.choice(len(pool), p=weights / weights.sum())]

    def _episode(self, vol: TrainVolume, near_end: bool = False) -> tuple[np.ndarray, np.ndarray]:
        z_count = vol.labels.shape[0]
        t = min(self.slices, z_count)
        end = self._end_start(vol, t) if near_end else None
        if end is not None:
            z0, step, centre_class = end
        else:
            fg_slices = np.flatnonzero(vol.labels.reshape(z_count, -1).any(1))
            z0 = int(self.rng.choice(fg_slices)) if len(fg_slices) else int(self.rng.integers(z_count))
            step = 1 if self.rng.random() < 0.5 else -1
            if not 0 <= z0 + step * (t - 1) < z_count:
                step = -step
            centre_class = 0
        zs = [z0 + step * i for i in range(t)]
        zs += [zs[-1]] * (self.slices - t)  # very thin volumes: repeat the last slice
        first = vol.labels[z0]
        fg = np.argwhere(first == centre_class) if centre_class else np.argwhere(first > 0)
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
        ends = [not auto and self.end_fraction > 0 and self.rng.random() < self.end_fraction for _ in vols]
        pairs = [self._episode(v, e) for v, e in zip(vols, ends)]
        images = torch.from_numpy(np.stack([p[0] for p in pairs]))
        labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return EpisodeBatch(images, labels, [v.auto for v in vols], [v.name for v in vols])
