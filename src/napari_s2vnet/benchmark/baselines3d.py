"""The 3D baselines: MONAI ``SwinUNETR`` and an nnU-Net-style 3D U-Net (MONAI ``DynUNet``).

Both see the same input as S2VNet (:func:`data.preprocess.normalize_intensity`, 2 channels) and
use the pipeline such models normally use:

1. resample the whole volume (trilinear) to the working spacing of the model (``target_spacing``,
   by default the 3 mm of our ``tiny`` preset and of the data both were trained on);
2. sliding-window inference (``monai.inferers.sliding_window_inference``) with a ``roi`` patch
   (96³ by default), ``overlap`` 0.5 and Gaussian weighting (nnU-Net's settings, without its
   8-fold mirroring test-time augmentation, which would make it ~8x slower);
3. argmax at the working resolution, then nearest-neighbour mapping of the labels back to the
   input grid. (nnU-Net resamples the per-class probabilities instead, which is slower and needs
   far more memory on a large grid: our choice favours the baselines.)

:func:`nnunet_plan` derives kernels, strides and filters the way nnU-Net's "3d_fullres" planner
does for a patch and a spacing: pool an axis while its feature map stays >= 2 x 4 voxels and its
spacing is at most twice the finest one, 3-wide kernels except on axes more than twice as coarse as
the finest, 32 filters doubling per stage, capped at 320.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

BASELINES = ("swinunetr", "dynunet")


def nnunet_plan(spacing: tuple[float, ...], patch: tuple[int, ...], min_fmap: int = 4, max_pools: int = 5,
                base: int = 32, max_filters: int = 320) -> dict[str, list]:
    size, sp = [int(s) for s in patch], [float(s) for s in spacing]
    kernels = [[3 if s / min(sp) <= 2 else 1 for s in sp]]
    strides = [[1] * len(sp)]
    for _ in range(max_pools):
        finest = min(sp)
        stride = [2 if size[i] >= 2 * min_fmap and size[i] % 2 == 0 and sp[i] / finest <= 2 else 1
                  for i in range(len(sp))]
        if all(s == 1 for s in stride):
            break
        size = [n // s for n, s in zip(size, stride)]
        sp = [a * s for a, s in zip(sp, stride)]
        strides.append(stride)
        kernels.append([3 if s / min(sp) <= 2 else 1 for s in sp])
    filters = [min(base * 2**i, max_filters) for i in range(len(strides))]
    return {"kernel_size": kernels, "strides": strides, "upsample_kernel_size": strides[1:], "filters": filters,
            "patch": list(patch), "spacing": list(spacing)}


def build(method: str, in_channels: int, out_channels: int, roi: tuple[int, int, int],
          spacing: tuple[float, float, float] = (3.0, 3.0, 3.0), feature_size: int = 48,
          plan: dict | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A freshly initialised baseline network and the settings it was built with."""
    if method == "swinunetr":
        from monai.networks.nets import SwinUNETR

        net = SwinUNETR(in_channels=in_channels, out_channels=out_channels, feature_size=feature_size)
        info: dict[str, Any] = {"feature_size": feature_size}
    elif method == "dynunet":
        from monai.networks.nets import DynUNet

        plan = plan or nnunet_plan(spacing, roi)
        net = DynUNet(3, in_channels, out_channels, plan["kernel_size"], plan["strides"],
                      plan["upsample_kernel_size"], filters=plan["filters"], res_block=False)
        info = {"plan": plan}
    else:
        raise ValueError(f"unknown 3D baseline {method!r}: choose from {BASELINES}")
    info["params_m"] = sum(p.numel() for p in net.parameters()) / 1e6
    return net, info


def load_or_build(spec: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network of a speed spec: trained weights when ``spec['baseline']['weights']`` exists,
    else a random initialisation (speed and memory do not depend on the weights)."""
    opts = spec["baseline"]
    method = spec["method"]
    weights = opts.get("weights")
    if weights and Path(weights).exists():
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        net, info = build(method, 2, len(ckpt["class_ids"]) + 1, tuple(ckpt["roi"]), tuple(ckpt["spacing"]),
                          plan=ckpt.get("plan"), feature_size=ckpt.get("feature_size", 48))
        net.load_state_dict(ckpt["state_dict"])
        info.update(class_ids=list(ckpt["class_ids"]), model_id=f"{Path(weights).name} (trained)")
        return net, info
    torch.manual_seed(0)
    class_ids = [int(c) for c in opts["class_ids"]]
    net, info = build(method, 2, len(class_ids) + 1, tuple(opts["roi"]), tuple(opts["target_spacing"]),
                      feature_size=int(opts.get("feature_size", 48)))
    info.update(class_ids=class_ids, model_id=f"{method} (random init)")
    return net, info


def working_shape(shape: tuple[int, ...], spacing: tuple[float, ...], target: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def to_working(image_zyx: np.ndarray, spacing, modality: str, target_spacing) -> torch.Tensor:
    """Normalised ``(1, 2, D, H, W)`` float32 tensor at ``target_spacing`` (trilinear)."""
    from napari_s2vnet.data.preprocess import normalize_intensity

    x = torch.from_numpy(normalize_intensity(image_zyx, modality)).unsqueeze(0)
    size = working_shape(image_zyx.shape, spacing, target_spacing)
    if tuple(size) != tuple(image_zyx.shape):
        x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
    return x


def nearest_to_grid(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of a label volume to ``shape`` (pixel centres aligned)."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    idx = [np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1) for n, m in zip(shape, labels.shape)]
    return labels[np.ix_(*idx)]


@torch.inference_mode()
def segment(model: torch.nn.Module, image_zyx: np.ndarray, spacing, modality: str, ids: np.ndarray,
            roi=(96, 96, 96), overlap: float = 0.5, sw_batch: int = 1, target_spacing=(3.0, 3.0, 3.0),
            device: str | torch.device = "cpu") -> np.ndarray:
    """Labels ``(Z, Y, X)`` uint16 on the input grid (``ids[k]`` = label of output channel ``k``)."""
    from monai.inferers import sliding_window_inference

    x = to_working(image_zyx, spacing, modality, target_spacing).to(device)
    logits = sliding_window_inference(x, tuple(roi), sw_batch, model, overlap=overlap, mode="gaussian",
                                      sigma_scale=0.125, padding_mode="constant", cval=0.0)
    del x
    index = logits[0].argmax(0).to(torch.int32).cpu().numpy()
    del logits
    return nearest_to_grid(ids[index], image_zyx.shape)
