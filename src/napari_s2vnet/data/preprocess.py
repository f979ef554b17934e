"""Intensity normalisation and in-plane resampling of internal-order ``(z, y, x)`` volumes.

S2VNet is a 2D model applied slice by slice, so only the in-plane ``(y, x)`` grid is resampled to
the working resolution; slices (``z``) are never interpolated. Anisotropic slice thickness is
therefore harmless: it only changes how far apart consecutive slices are, which the propagation
handles as it goes from one slice to the next.

Resampling uses ``torch.nn.functional.interpolate`` (``align_corners=False``): images are linear
(with antialiasing when shrinking), labels nearest (``nearest-exact``). Going to ``target_hw`` and
back with ``resample_inplane(..., out_hw=original_hw)`` lands on the exact original grid.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

#: CT windows in HU: channel 0 soft tissue, channel 1 wide.
CT_WINDOWS: tuple[tuple[float, float], tuple[float, float]] = ((-160.0, 240.0), (-1000.0, 1000.0))
#: MR robust percentiles.
MR_PERCENTILES: tuple[float, float] = (0.5, 99.5)
_MAX_PERCENTILE_SAMPLES = 2_000_000
_SLICES_PER_CHUNK = 64


def _window(vol: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to ``[lo, hi]`` and map linearly to ``[0, 1]`` (float32; both ends map exactly)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    out = np.clip(vol, lo32, hi32, dtype=np.float32)
    out -= lo32
    out /= max(hi32 - lo32, np.float32(1e-6))
    return out


def mr_range(vol_zyx: np.ndarray) -> tuple[float, float]:
    """Robust MR intensity range: percentiles 0.5 / 99.5 (of the non-zero voxels when more than
    10 % are zero, e.g. a zero background), from at most 2 M evenly spaced samples."""
    flat = np.asarray(vol_zyx).ravel()
    values = flat[:: max(1, flat.size // _MAX_PERCENTILE_SAMPLES)].astype(np.float32)
    nonzero = values[values != 0]
    if values.size and nonzero.size < 0.9 * values.size and nonzero.size > 0:
        values = nonzero
    lo, hi = (np.percentile(values, MR_PERCENTILES) if values.size else (0.0, 1.0))
    return float(lo), float(hi)


def normalize_intensity(vol_zyx: np.ndarray, modality: str, mr_window: tuple[float, float] | None = None) -> np.ndarray:
    """Two-channel float32 ``(2, Z, Y, X)`` model input in ``[0, 1]``.

    CT: channel 0 = HU window [-160, 240], channel 1 = HU window [-1000, 1000].
    MR: ``mr_window`` (default :func:`mr_range` of this volume) mapped to [0, 1] and clipped;
    channel 1 is channel 0 ** 0.5. Pass the whole volume's ``mr_window`` to normalise it in chunks.
    """
    vol = np.asarray(vol_zyx, dtype=np.float32)
    if vol.ndim != 3:
        raise InputError(f"expected a 3-D (Z, Y, X) volume, got shape {vol.shape}")
    kind = str(modality).upper()
    if kind == "CT":
        return np.stack([_window(vol, lo, hi) for lo, hi in CT_WINDOWS])
    if kind in ("MR", "MRI"):
        lo, hi = mr_window if mr_window is not None else mr_range(vol)
        channel0 = _window(vol, float(lo), float(hi))
        return np.stack([channel0, np.sqrt(channel0)])
    raise InputError(f"unknown modality '{modality}': expected 'CT' or 'MR'")


def inplane_zoom(spacing_yx: tuple[float, float], target_mm: float) -> tuple[float, float]:
    """Scale factors ``(fy, fx)`` from the input grid to a ``target_mm`` in-plane grid."""
    return (float(spacing_yx[0]) / target_mm, float(spacing_yx[1]) / target_mm)


def target_hw(
    in_hw: tuple[int, int], spacing_yx: tuple[float, float], target_mm: float
) -> tuple[int, int]:
    """In-plane size ``(h, w)`` of the ``target_mm`` grid: ``round(size * spacing / target)``."""
    fy, fx = inplane_zoom(spacing_yx, target_mm)
    return (max(1, int(round(in_hw[0] * fy))), max(1, int(round(in_hw[1] * fx))))


def resample_inplane(
    arr: np.ndarray | torch.Tensor,
    out_hw: tuple[int, int],
    order: Literal["linear", "nearest"] = "linear",
) -> np.ndarray | torch.Tensor:
    """Resample the last two axes of a ``(Z, Y, X)`` or ``(C, Z, Y, X)`` array to ``out_hw``.

    ``"linear"`` returns floats (float32 for integer input); ``"nearest"`` keeps the dtype and the
    label set (integer labels must be below 2**24). A numpy input gives a numpy output; a tensor
    stays a tensor on its device.
    """
    if order not in ("linear", "nearest"):
        raise ValueError(f"order must be 'linear' or 'nearest', got {order!r}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"expected a (Z, Y, X) or (C, Z, Y, X) array, got shape {tuple(arr.shape)}")
    if isinstance(arr, np.ndarray):
        work = arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)
        out = resample_inplane(torch.from_numpy(np.ascontiguousarray(work)), out_hw, order).numpy()
        return out.astype(arr.dtype) if order == "nearest" else out
    src = arr if arr.dtype.is_floating_point else arr.float()
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    flat = src.reshape(-1, 1, *src.shape[-2:])
    pieces = []
    for start in range(0, flat.shape[0], _SLICES_PER_CHUNK):
        chunk = flat[start : start + _SLICES_PER_CHUNK]
        if order == "linear":
            pieces.append(
                F.interpolate(chunk, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
            )
        else:
            pieces.append(F.interpolate(chunk, size=out_hw, mode="nearest-exact"))
    out = torch.cat(pieces).reshape(*src.shape[:-2], *out_hw)
    return out.to(arr.dtype) if order == "nearest" else out
