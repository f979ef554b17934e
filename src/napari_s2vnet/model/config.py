"""Frozen model configuration.

The resolved :class:`ModelConfig` (with the class ids and names of the automatic slots) is stored
inside every weights file, so a weights file alone is enough to rebuild the network exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`napari_s2vnet.model.s2vnet.S2VNet`.

    Attributes:
        name: preset name (``tiny`` for CPU, ``base`` for GPU training).
        in_channels: image channels after :func:`data.preprocess.normalize_intensity` (2 windows).
        widths: backbone channels at strides 2, 4, 8, 16.
        depths: residual blocks per backbone stage.
        dim: pixel-feature and cluster-centre dimension ``D``.
        heads: attention heads in the cluster decoder and the aggregator.
        decoder_strides: feature strides visited by the k-means cross-attention blocks, coarse to fine.
        decoder_rounds: how many times the list of strides is visited.
        num_background: learned background centres (background is heterogeneous).
        history: number of past slices the recurrent centroid aggregation attends to.
        max_clicks: per class and sign, only the newest this many clicks become centres (``Session``).
        pixel_spacing_mm: in-plane spacing slices are resampled to before the network.
        class_ids: user-facing label id of each automatic class slot.
        class_names: name of each automatic class slot (same order as ``class_ids``).
        centres_per_class: cluster centres per class (automatic slots and clicked classes alike);
            their soft masks are summed into the class (:func:`model.s2vnet.group_probabilities`).
            1 = the paper's setting; more lets a class with several parts or textures split.
        zoom_mm: in-plane spacing of the session's zoomed passes for small objects, the spacing of the
            fine training copies (``train --fine-mm``); 0 = the model was not trained for them: no zoom.
        click_centres: ``per_click`` (each positive click is a centre of its class) or ``pooled``
            (one recency-weighted centre per class; weights files written before this setting).
        embed_stride: stride of the pixel embedding the mask logits are computed on: 2 (the shipped
            layout; weights files written before this setting) or 4 (lighter pixel decoder, no
            stride-2 fusion: :mod:`napari_s2vnet.model.pixel_decoder`).
        use_propagation / use_aggregation / adaptive_clicks: ablation switches (all on by default).
    """

    name: str = "tiny"
    in_channels: int = 2
    widths: tuple[int, ...] = (16, 32, 64, 96)
    depths: tuple[int, ...] = (1, 1, 2, 2)
    dim: int = 64
    heads: int = 4
    decoder_strides: tuple[int, ...] = (16, 8, 4)
    decoder_rounds: int = 1
    num_background: int = 4
    history: int = 4
    max_clicks: int = 16
    pixel_spacing_mm: float = 3.0
    centres_per_class: int = 1
    click_centres: str = "per_click"
    zoom_mm: float = 0.0
    embed_stride: int = 2
    class_ids: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    use_propagation: bool = True
    use_aggregation: bool = True
    adaptive_clicks: bool = True

    def __post_init__(self) -> None:
        if len(self.class_ids) != len(self.class_names):
            raise ValueError("class_ids and class_names must have the same length")
        if len(self.widths) != 4 or len(self.depths) != 4:
            raise ValueError("the backbone has exactly 4 stages (strides 2, 4, 8, 16)")
        if any(s not in (4, 8, 16) for s in self.decoder_strides):
            raise ValueError("decoder_strides must be taken from (4, 8, 16)")
        if self.centres_per_class < 1:
            raise ValueError("centres_per_class must be at least 1")
        if self.click_centres not in ("per_click", "pooled"):
            raise ValueError("click_centres must be 'per_click' or 'pooled'")
        if self.embed_stride not in (2, 4):
            raise ValueError("embed_stride must be 2 or 4")
        if self.dim % self.heads:
            raise ValueError("dim must be divisible by heads")
        if any(i <= 0 for i in self.class_ids) or len(set(self.class_ids)) != len(self.class_ids):
            raise ValueError("class_ids must be distinct positive integers")

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def with_classes(self, class_names: dict[int, str]) -> ModelConfig:
        ids = tuple(sorted(int(i) for i in class_names))
        return dataclasses.replace(self, class_ids=ids, class_names=tuple(class_names[i] for i in ids))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        for key, value in LEGACY_VALUES.items():  # settings added later: older files keep their behaviour
            raw.setdefault(key, value)
        for key, value in raw.items():
            if isinstance(value, list):
                raw[key] = tuple(value)
        return cls(**raw)


#: Value of each setting for weights files written before the setting existed.
LEGACY_VALUES: dict[str, Any] = {"click_centres": "pooled", "zoom_mm": 0.0, "embed_stride": 2}

PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "base": ModelConfig(
        name="base", widths=(32, 64, 128, 256), depths=(2, 2, 4, 2), dim=128, heads=8,
        decoder_rounds=2, pixel_spacing_mm=1.5,
    ),
}


def preset(name: str, class_names: dict[int, str] | None = None, **overrides: Any) -> ModelConfig:
    """A named preset, optionally with its classes and field overrides (ablations)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}: choose from {sorted(PRESETS)}")
    config = dataclasses.replace(PRESETS[name], **overrides)
    return config.with_classes(class_names) if class_names is not None else config


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (stored in the run folder and the weights file)."""

    steps: int = 6000  # with time_budget_s > 0: an upper bound
    time_budget_s: float = 0.0  # > 0: train for this wall-clock time; the schedule follows elapsed time
    batch_episodes: int = 4
    episode_slices: int = 3
    long_slices: int = 0  # curriculum: from step ``long_from`` on, episodes have this many slices
    long_from: int = 0
    crop: int = 112
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    interactive_fraction: float = 0.5
    second_round_fraction: float = 0.5
    phantoms: int = 16
    include_mr: bool = True
    val_every: int = 500
    seed: int = 0
    threads: int = 0
    target_mix: str = ""  # interactive target kinds, e.g. "class:1,lesion:0.25" ("" = train.targets.KIND_WEIGHTS)
    init: str = ""  # weights file to start from (same architecture and classes); "" = random init
    augment: str = "full"  # train.augment.AUGMENT_LEVELS: "full" (nnU-Net-like) or "light" (v0.1's; ablations)
    contrast_randomise: float = 0.0  # probability of a random intensity curve per interactive episode (train.augment)
    lesion_donor: float = 0.0  # share of synthetic lesions with another tissue's intensity (train.targets.donor_tissue)
