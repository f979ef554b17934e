"""Cluster decoder: k-means cross-attention that turns centres into masks (kMaX-DeepLab style).

A set of ``K`` cluster centres ``(B, K, D)`` is refined against pixel features by blocks of

1. **k-means cross-attention**: every pixel is hard-assigned to its most similar centre
   (argmax over the ``K`` centres of ``q(centre) . k(pixel)``), and each centre moves to the mean
   value ``v(pixel)`` of the pixels assigned to it. The similarity logits ``(B, K, h, w)`` are also
   returned: they are this stage's clustering and get an auxiliary mask loss (the hard argmax has no
   gradient of its own).
2. self-attention among the centres (so centres of neighbouring organs negotiate borders);
3. a feed-forward layer.

A centre may carry a logit ``bias`` ``(B, K)`` (a prior on its share of the pixels; used for the
recency weights of click centres, :mod:`napari_s2vnet.model.clicks`): it is added to its assignment
logits in every block and to its mask logits.

Blocks visit the strides in ``decoder_strides`` (coarse to fine), ``decoder_rounds`` times. The heads
then give, per centre, mask logits ``(B, K, H/s, W/s)`` = centre embedding . pixel embedding
(``s = embed_stride``: 2 as shipped, 4 with the lighter pixel decoder), class
logits ``(B, K, N+1)`` (index 0 = no object) and an objectness logit ``(B, K)`` (is the centre's
structure on this slice at all?).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderOutput:
    centres: torch.Tensor  # (B, K, D) refined centres, the state that propagates to the next slice
    mask_logits: torch.Tensor  # (B, K, H/s, W/s), s = embed_stride (2 or 4)
    class_logits: torch.Tensor  # (B, K, N+1)
    objectness: torch.Tensor  # (B, K)
    aux_logits: list[torch.Tensor]  # per block: (B, K, h, w) clustering logits at that block's stride


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def masked_fill_invalid(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Set the logits of padded centres (``valid`` False, shape ``(B, K)``) to a large negative."""
    shape = valid.shape + (1,) * (logits.dim() - 2)
    return logits.masked_fill(~valid.view(shape), torch.finfo(logits.dtype).min / 4)


class KMeansCrossAttention(nn.Module):
    """Hard-assignment cross-attention: ``(B,K,D)`` centres x ``(B,D,h,w)`` pixels -> centres, logits."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.scale = dim**-0.5

    def forward(
        self, centres: torch.Tensor, pixels: torch.Tensor, valid: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = pixels.shape[-2:]
        flat = pixels.flatten(2).transpose(1, 2)  # (B, N, D), or (1, N, D) shared by the B centre sets
        logits = torch.matmul(self.query(centres), self.key(flat).transpose(1, 2)) * self.scale  # (B, K, N)
        if bias is not None:
            logits = logits + bias.unsqueeze(-1).to(logits.dtype)
        logits = masked_fill_invalid(logits, valid)
        assign = F.one_hot(logits.argmax(dim=1), centres.shape[1]).transpose(1, 2).to(flat.dtype)  # (B,K,N)
        mean = assign @ self.value(flat) / assign.sum(-1, keepdim=True).clamp_min(1.0)
        centres = self.norm(centres + self.out(mean))
        return centres, logits.view(logits.shape[0], -1, h, w)


class DecoderBlock(nn.Module):
    """k-means cross-attention, centre self-attention, FFN; ``(B, K, D)`` in and out."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.kmeans = KMeansCrossAttention(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, 4 * dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(
        self, centres: torch.Tensor, pixels: torch.Tensor, valid: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        centres, logits = self.kmeans(centres, pixels, valid, bias)
        attn, _ = self.self_attn(centres, centres, centres, key_padding_mask=~valid, need_weights=False)
        centres = self.norm1(centres + attn)
        centres = self.norm2(centres + self.ffn(centres))
        return centres, logits


class ClusterDecoder(nn.Module):
    def __init__(self, dim: int, heads: int, strides: tuple[int, ...], rounds: int, num_classes: int,
                 embed_stride: int = 2) -> None:
        super().__init__()
        self.embed_stride = embed_stride  # the pixel embedding is feats[embed_stride]
        self.strides = tuple(strides) * rounds
        self.blocks = nn.ModuleList(DecoderBlock(dim, heads) for _ in self.strides)
        self.mask_embed = FeedForward(dim, dim)
        self.class_head = nn.Linear(dim, num_classes + 1)
        self.objectness_head = nn.Linear(dim, 1)
        self.logit_scale = nn.Parameter(torch.tensor(dim**-0.5))

    def forward(
        self, feats: dict[int, torch.Tensor], centres: torch.Tensor, valid: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """``feats`` ``{stride: (B, D, h, w)}``, or batch 1 to decode B centre sets ``(B, K, D)`` on
        the same slice (its pixel projections are computed once)."""
        aux = []
        for stride, block in zip(self.strides, self.blocks):
            centres, logits = block(centres, feats[stride], valid, bias)
            aux.append(logits)
        embed = self.mask_embed(centres)
        pix = feats[self.embed_stride]
        mask_logits = torch.matmul(embed, pix.flatten(2)).view(*embed.shape[:2], *pix.shape[-2:]) * self.logit_scale
        if bias is not None:
            mask_logits = mask_logits + bias[:, :, None, None].to(mask_logits.dtype)
        return DecoderOutput(
            centres=centres,
            mask_logits=masked_fill_invalid(mask_logits, valid),
            class_logits=self.class_head(centres),
            objectness=self.objectness_head(centres).squeeze(-1),
            aux_logits=aux,
        )
