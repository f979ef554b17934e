"""Training volumes: images normalised and resampled once to the model's in-plane spacing.

Every training source (the bundled real CT/MR, a user's dataset, procedural phantoms) becomes a
:class:`TrainVolume` in internal order ``(Z, H, W)`` at ``pixel_spacing_mm``. Slice thickness is left
alone: the network is 2D, propagation works slice to slice whatever the thickness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_s2vnet.data.datasets import Case, load_case_labels
from napari_s2vnet.data.io import read_volume
from napari_s2vnet.data.phantom import make_phantom
from napari_s2vnet.data.preprocess import normalize_intensity, resample_inplane, target_hw


@dataclass
class TrainVolume:
    name: str
    image: np.ndarray  # (2, Z, H, W) float32, normalised, at the model spacing
    labels: np.ndarray  # (Z, H, W) int32 user label ids
    auto: bool  # its ids are the model's class ids: usable for automatic episodes
    weight: float  # sampling weight
    native_mm: float = 0.0  # finest in-plane spacing of the source file


def prepare(
    image_zyx: np.ndarray, labels_zyx: np.ndarray, spacing_zyx: tuple[float, float, float],
    modality: str, target_mm: float, name: str, auto: bool, weight: float = 1.0,
) -> TrainVolume:
    hw = target_hw(image_zyx.shape[1:], spacing_zyx[1:], target_mm)
    image = resample_inplane(normalize_intensity(image_zyx, modality), hw, "linear")
    labels = resample_inplane(labels_zyx.astype(np.int32), hw, "nearest")
    return TrainVolume(name, np.ascontiguousarray(image, dtype=np.float32), labels, auto, weight,
                       float(min(spacing_zyx[1:])))


def load_case(case: Case, class_names: dict[int, str], target_mm: float, auto: bool,
              weight: float = 1.0, modality: str | None = None) -> TrainVolume:
    vol = read_volume(case.image, modality)
    labels = load_case_labels(case, class_names).astype(np.int32)
    if labels.shape != vol.array.shape:
        raise ValueError(f"{case.name}: label shape {labels.shape} differs from image {vol.array.shape}")
    g = vol.geometry
    return prepare(g.to_internal(vol.array), g.to_internal(labels), g.internal_spacing,
                   vol.modality or "CT", target_mm, case.name, auto, weight)


def load_fetched(case, target_mm: float, auto: bool, weight: float = 1.0) -> TrainVolume:
    """A volume written by ``napari-s2vnet data fetch`` (:class:`napari_s2vnet.data.fetch.FetchedCase`)."""
    return load_case(Case(case.image, case.labels, case.name), case.class_names, target_mm, auto, weight, case.modality)


def phantom_volumes(count: int, target_mm: float, seed: int, auto: bool, weight: float = 1.0,
                    render_mm: float = 2.0) -> list[TrainVolume]:
    """``count`` phantoms rendered at ``render_mm`` in-plane (the same 256 mm field of view at any
    spacing: the anatomy scales with the grid) and resampled to ``target_mm``."""
    out = []
    side = int(round(128 * 2.0 / render_mm))
    for i in range(count):
        ph = make_phantom(seed * 1000 + i, shape=(48, side, side), spacing=(3.0, render_mm, render_mm))
        out.append(prepare(ph.image, ph.labels, ph.spacing, "CT", target_mm, f"phantom{seed * 1000 + i}", auto, weight))
    return out
