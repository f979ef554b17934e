"""Weights files: safetensors with the resolved config and class names inside.

The safetensors header metadata holds ``config`` (the :class:`ModelConfig` as JSON), ``format``
(version of this layout), and optionally ``train`` (how the weights were made). Loading is strict:
a missing or unexpected tensor, or a shape mismatch, raises :class:`WeightsError`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_s2vnet.errors import InputError
from napari_s2vnet.model.config import ModelConfig
from napari_s2vnet.model.s2vnet import S2VNet

FORMAT_VERSION = "s2vnet-weights-1"
DEFAULT_WEIGHTS_NAME = "s2vnet_tiny_ct.safetensors"


class WeightsError(InputError):
    """A weights file that cannot be used (not ours, wrong format, keys do not match)."""


def default_weights_path() -> Path:
    return Path(str(resources.files("napari_s2vnet") / "_resources" / "weights" / DEFAULT_WEIGHTS_NAME))


def save_weights(model: S2VNet, path: str | Path, train_info: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT_VERSION, "config": model.config.to_json()}
    if train_info is not None:
        metadata["train"] = json.dumps(train_info, sort_keys=True, default=str)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises several error types for foreign files
        raise WeightsError(f"cannot read weights {path}: not a safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT_VERSION:
        raise WeightsError(f"{path} is not an S2VNet weights file (format {metadata.get('format')!r})")
    return metadata


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> S2VNet:
    """Rebuild the network from the config stored in ``path`` and load its tensors strictly."""
    metadata = read_metadata(path)
    config = ModelConfig.from_json(metadata["config"])
    model = S2VNet(config)
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    bad = [k for k in expected if expected[k].shape != tensors[k].shape]
    if bad:
        raise WeightsError(f"{path}: tensor shapes differ from the config for {bad[:5]}")
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def train_info(path: str | Path) -> dict:
    raw = read_metadata(path).get("train")
    return json.loads(raw) if raw else {}
