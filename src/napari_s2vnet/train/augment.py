"""Episode augmentation at the level of nnU-Net's, with MONAI's transforms.

Why MONAI: of the three libraries the issue names, MONAI (already the benchmark's 3D baseline
library) installs beside the CPU ``torch==2.13.0`` without torchvision and works on torch tensors
channel-first; TorchIO works on 3D subjects (an episode is a stack of 2D slices that must share one
in-plane transform) and batchgeneratorsv2 pins its own numpy/torch stack. MONAI's dictionary
transforms apply one draw to the image and the labels together.

One draw per episode, shared by its ``T`` slices (the slices travel as channels ``(T*C, S, S)``), so
propagation sees a coherent volume:

* spatial: mirroring left-right (then left/right classes swap, :func:`left_right_swap`), rotation
  ±15°, scaling 0.7-1.4 per axis (which also randomises the in-plane spacing), elastic deformation;
* intensity: gamma 0.7-1.5, contrast and brightness, Gaussian blur, Gaussian noise, and low
  resolution (down- then up-sampling).

Labels are resampled with nearest neighbour; images bilinearly.

``level="light"`` is the augmentation the v0.1 weights were trained with (rotation ±12°, scale
0.85-1.15, shift, gain, bias and noise; no mirroring, no elastic): an ablation of the strength.

**Contrast randomisation** (``contrast`` > 0, interactive episodes only): with that probability an
episode's intensities go through a random, smooth, generally non-monotone curve per input channel
(:func:`random_intensity_curve`), the same on all its slices. Interactive targets are defined by the
labels, not by what they look like, so the network has to find "the region like the clicked pixel"
instead of recognising CT intensities: a CT's fat can come out bright and its bone dark, as on a T1
MR. This is single-source domain generalisation by intensity randomisation, in the spirit of the
global intensity non-linear augmentation of Ouyang et al. ("Causality-inspired single-source domain
generalization for medical image segmentation", IEEE TMI 2022; there random shallow convolution
nets, here a per-channel random curve) and of SynthSeg's random contrasts (Billot et al., MedIA
2023). Automatic episodes keep their intensities: automatic classes are recognised by them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_s2vnet.train.episodes import EpisodeBatch


def left_right_swap(class_names: dict[int, str], max_id: int) -> torch.Tensor:
    """Id lookup table ``(max_id + 1,)`` that swaps ``*_left`` and ``*_right`` classes."""
    lut = torch.arange(max_id + 1)
    by_name = {name: i for i, name in class_names.items()}
    for i, name in class_names.items():
        for a, b in (("_left", "_right"), ("_right", "_left")):
            if name.endswith(a) and name[: -len(a)] + b in by_name and i <= max_id and by_name[name[: -len(a)] + b] <= max_id:
                lut[i] = by_name[name[: -len(a)] + b]
    return lut


AUGMENT_LEVELS = ("full", "light")


def random_intensity_curve(x: torch.Tensor, rng: np.random.Generator, knots: tuple[int, int] = (3, 6)) -> torch.Tensor:
    """``x`` in [0, 1] through a random piecewise-linear curve ``[0, 1] -> [0, 1]``.

    The curve has ``k`` evenly spaced knots (``k`` uniform in ``knots``) with values uniform in [0, 1],
    so it is continuous, usually non-monotone, and keeps edges where it is not flat.
    """
    k = int(rng.integers(knots[0], knots[1] + 1))
    values = torch.as_tensor(rng.uniform(0.0, 1.0, k), dtype=x.dtype)
    pos = x.clamp(0, 1) * (k - 1)
    left = pos.floor().clamp(max=k - 2).long()
    frac = pos - left
    return values[left] * (1 - frac) + values[left + 1] * frac


class EpisodeAugmenter:
    """Callable ``(EpisodeBatch, rng, interactive) -> EpisodeBatch``; ``swap`` is the left/right id
    table, ``contrast`` the probability of contrast randomisation per episode of an interactive batch."""

    def __init__(self, swap: torch.Tensor, seed: int = 0, level: str = "full", contrast: float = 0.0) -> None:
        from monai import transforms as mt

        if level not in AUGMENT_LEVELS:
            raise ValueError(f"augmentation level must be one of {AUGMENT_LEVELS}, not {level!r}")
        if not 0.0 <= contrast <= 1.0:
            raise ValueError(f"contrast randomisation is a probability in [0, 1], not {contrast}")
        keys = ("image", "label")
        self.swap = swap
        self.contrast = contrast
        self.mirror = level == "full"
        if level == "light":
            self.spatial = mt.RandAffined(keys, prob=1.0, rotate_range=(math.radians(12),),
                                          scale_range=((-0.15, 0.15), (-0.15, 0.15)), translate_range=(5, 5),
                                          mode=("bilinear", "nearest"), padding_mode="zeros")
            self.intensity = mt.Compose([
                mt.RandScaleIntensityd("image", factors=0.1, prob=1.0),
                mt.RandShiftIntensityd("image", offsets=0.05, prob=1.0),
                mt.RandGaussianNoised("image", prob=1.0, std=0.02),
            ])
            self.spatial.set_random_state(seed)
            self.intensity.set_random_state(seed + 1)
            return
        self.spatial = mt.Compose([
            mt.RandAffined(keys, prob=0.9, rotate_range=(math.radians(15),), scale_range=((-0.3, 0.4), (-0.3, 0.4)),
                           translate_range=(8, 8), mode=("bilinear", "nearest"), padding_mode="zeros"),
            mt.Rand2DElasticd(keys, spacing=(24, 24), magnitude_range=(0.5, 2.0), prob=0.2,
                              mode=("bilinear", "nearest"), padding_mode="zeros"),
        ])
        self.intensity = mt.Compose([
            mt.RandAdjustContrastd("image", prob=0.25, gamma=(0.7, 1.5)),
            mt.RandScaleIntensityd("image", factors=0.25, prob=0.2),
            mt.RandShiftIntensityd("image", offsets=0.08, prob=0.2),
            mt.RandGaussianSmoothd("image", sigma_x=(0.5, 1.2), sigma_y=(0.5, 1.2), prob=0.15),
            mt.RandGaussianNoised("image", prob=0.2, std=0.03),
            mt.RandSimulateLowResolutiond("image", prob=0.15, zoom_range=(0.5, 1.0), upsample_mode="bilinear"),
        ])
        self.spatial.set_random_state(seed)
        self.intensity.set_random_state(seed + 1)

    def __call__(self, batch: EpisodeBatch, rng: np.random.Generator, interactive: bool = False) -> EpisodeBatch:
        b, t, c, s, _ = batch.images.shape
        images, labels = [], []
        for i in range(b):
            img = batch.images[i].reshape(t * c, s, s)
            lab = batch.labels[i]
            if self.mirror and rng.random() < 0.5:
                img, lab = img.flip(-1), self.swap[lab.clamp(0, len(self.swap) - 1)].where(lab < len(self.swap), lab).flip(-1)
            out = self.spatial({"image": img, "label": lab.float()})
            img = _plain(out["image"]).clamp(0, 1)
            if self.contrast > 0 and interactive and rng.random() < self.contrast:
                img = img.reshape(t, c, s, s)  # one curve per channel, shared by the episode's slices
                img = torch.stack([random_intensity_curve(img[:, j], rng) for j in range(c)], 1).reshape(t * c, s, s)
            out = self.intensity({"image": img, "label": out["label"]})
            images.append(_plain(out["image"]).float().clamp(0, 1).reshape(t, c, s, s))
            labels.append(_plain(out["label"]).round().long())
        return EpisodeBatch(torch.stack(images), torch.stack(labels), batch.auto, batch.names)


def _plain(x) -> torch.Tensor:
    """A plain tensor from MONAI's output (a ``MetaTensor`` or an array)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(np.asarray(x))
