"""``Predictor``: a loaded S2VNet (load once) for automatic segmentation and interactive sessions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from napari_s2vnet.data.io import Volume
from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.auto import auto_volume, z_step_for
from napari_s2vnet.inference.prepared import FeatureCache, checked_image, prepare_image
from napari_s2vnet.model.s2vnet import S2VNet
from napari_s2vnet.model.weights import WeightsError, default_weights_path, load_weights, read_metadata

if TYPE_CHECKING:
    from napari_s2vnet.inference.session import Session


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an unavailable explicit device is an InputError."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' requested but Apple MPS is not available (use --device cpu or auto)")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


_WEIGHTS_HINT = "use a weights.safetensors written by `napari-s2vnet train`, or leave --model out for the bundled one"


def _load(path: Path, device: torch.device) -> S2VNet:
    """``load_weights`` with every failure as one :class:`WeightsError` line that says what to do."""
    try:
        return load_weights(path, device)
    except WeightsError as exc:
        message = str(exc)
        if "not fully covered" in message:
            message = f"cannot read weights {path}: the file is truncated (an interrupted download or copy?)"
        elif "class_embed" in message or "class_head" in message:
            import json

            names = json.loads(read_metadata(path)["config"]).get("class_names", [])
            message = (f"{path}: its config names {len(names)} classes but its tensors were made for another "
                       "number of classes (an edited or mixed-up file)")
        raise WeightsError(f"{message}; {_WEIGHTS_HINT}") from None
    except (ValueError, TypeError, KeyError) as exc:  # the config in the header is broken
        raise WeightsError(f"{path}: the model config inside the file is invalid ({exc}); {_WEIGHTS_HINT}") from None


class Predictor:
    def __init__(self, model: S2VNet, device: str | torch.device = "cpu", model_id: str = "unsaved-model") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.model_id = model_id

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "auto") -> Predictor:
        path = Path(path)
        dev = resolve_device(device)
        model = _load(path, dev)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return cls(model, dev, f"{path.name}:{digest}")

    @classmethod
    def from_pretrained(cls, device: str | torch.device = "auto") -> Predictor:
        path = default_weights_path()
        if not path.exists():
            raise InputError(f"the bundled weights are missing ({path}); reinstall napari-s2vnet")
        return cls.from_file(path, device)

    @property
    def config(self):
        return self.model.config

    @property
    def class_names(self) -> dict[int, str]:
        return dict(zip(self.model.config.class_ids, self.model.config.class_names))

    def segment_internal(
        self, image_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], modality: str,
        classes: Iterable[int] | None = None, cache_bytes: int = 64 << 20, z_mm: float | None = None,
    ) -> np.ndarray:
        """Automatic labels ``(Z, Y, X)`` uint16 for an internal-order image (checked first:
        ``inference.prepared.checked_image``).

        ``cache_bytes`` bounds the encoder features kept meanwhile: automatic mode visits every
        slice once, outward from its start slice, so only the look-ahead batch (16 slices) and the
        start's neighbours are reused (64 MB: 36 slices of 512x512 at 0.8 mm, 52 of the bundled CT).
        ``z_mm``: decoded slices at most this far apart, the others interpolated
        (:func:`~napari_s2vnet.inference.auto.z_step_for`; default the model's in-plane spacing, 0 = every slice).
        """
        image_zyx, spacing_zyx = checked_image(image_zyx, spacing_zyx, self.config.pixel_spacing_mm)
        prepared = prepare_image(image_zyx, spacing_zyx, modality, self.config.pixel_spacing_mm)
        cache = FeatureCache(self.model, prepared, self.device, max_bytes=cache_bytes, batch=16)
        return auto_volume(self.model, prepared, cache, classes, z_step=z_step_for(self.model, spacing_zyx[0], z_mm))

    def segment(self, volume: Volume, classes: Iterable[int] | None = None, cache_bytes: int = 64 << 20,
                z_mm: float | None = None) -> np.ndarray:
        """Automatic labels in the volume's file order (same shape as ``volume.array``); ``cache_bytes``
        and ``z_mm`` as in :meth:`segment_internal`."""
        g = volume.geometry
        labels = self.segment_internal(g.to_internal(volume.array), g.internal_spacing, volume.modality or "CT", classes,
                                       cache_bytes, z_mm)
        return g.from_internal(labels)

    def session(self, image_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], modality: str | None = None,
                **kwargs) -> Session:
        from napari_s2vnet.inference.session import Session
        from napari_s2vnet.data.io import guess_modality

        return Session(self, image_zyx, spacing_zyx, modality or guess_modality(image_zyx), **kwargs)
