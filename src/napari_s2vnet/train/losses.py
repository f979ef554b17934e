"""Losses of one decoded slice: CE + Dice on group probabilities, objectness, class, auxiliary.

``groups (B, K)`` says which output group every centre votes for (0 = background). The target is a
group map ``(B, H, W)``. Per-stage clustering logits of the k-means blocks get the same CE at their
own resolution (deep supervision; the hard argmax assignment has no gradient of its own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_s2vnet.model.cluster_decoder import DecoderOutput
from napari_s2vnet.model.s2vnet import group_probabilities

WEIGHTS = {"ce": 1.0, "dice": 1.0, "objectness": 0.5, "class": 0.2, "aux": 0.3}


def soft_dice(probs: torch.Tensor, onehot: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - Dice`` over the (sample, group) pairs where ``present`` ``(B, G)`` is True."""
    inter = (probs * onehot).sum((2, 3))
    denom = probs.sum((2, 3)) + onehot.sum((2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return ((1 - dice) * present).sum() / present.sum().clamp_min(1)


def slice_losses(
    out: DecoderOutput, groups: torch.Tensor, valid: torch.Tensor, target: torch.Tensor,
    num_groups: int, class_target: torch.Tensor,
) -> dict[str, torch.Tensor]:
    logits = F.interpolate(out.mask_logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    probs = group_probabilities(logits, groups, valid, num_groups)
    onehot = F.one_hot(target, num_groups).permute(0, 3, 1, 2).float()
    present = onehot.sum((2, 3)) > 0  # (B, G)
    losses = {
        "ce": F.nll_loss(probs.clamp_min(1e-6).log(), target),
        "dice": soft_dice(probs[:, 1:], onehot[:, 1:], present[:, 1:]),
    }
    is_class = valid & (groups > 0)
    obj_target = present.gather(1, groups).float()
    losses["objectness"] = F.binary_cross_entropy_with_logits(out.objectness.float()[is_class], obj_target[is_class]) \
        if is_class.any() else logits.new_zeros(())
    losses["class"] = F.cross_entropy(out.class_logits.float().flatten(0, 1), class_target.flatten(), ignore_index=-100) \
        if (class_target >= 0).any() else logits.new_zeros(())
    aux = []
    for stage in out.aux_logits:
        small = F.interpolate(target[:, None].float(), size=stage.shape[-2:], mode="nearest")[:, 0].long()
        stage_probs = group_probabilities(stage, groups, valid, num_groups)
        aux.append(F.nll_loss(stage_probs.clamp_min(1e-6).log(), small))
    losses["aux"] = torch.stack(aux).mean() if aux else logits.new_zeros(())
    return losses


def total(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(WEIGHTS[k] * v for k, v in losses.items())
