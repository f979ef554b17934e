"""Click initialisation of cluster centres, with adaptive sampling across refinement rounds.

Interactive mode uses the same network as automatic mode; only the initial centres differ. A click
at ``(y, x)`` is turned into a centre by sampling the pixel features there (bilinear, at strides
2, 4, 8 and 16, concatenated: ``(4 D,)``) and projecting them to ``D``. With ``embed_stride=4``
there is no stride-2 map: the first slot samples the pixel embedding at stride 4 (the stride-2 map
is the embedding in the shipped layout too), so the encoder keeps its ``4 D`` input.

* **One centre per positive click** (``click_centres="per_click"``, the default): every positive
  click of a class becomes a centre of that class, and the class's mask is the sum of its centres'
  soft masks (as with ``centres_per_class``). A correction click on a missed part therefore adds a
  centre that *describes that part*, instead of being averaged into the class's mean, which could
  move the mean away from what was right (the reason extra clicks used to lower Dice). Several
  classes are still segmented in one forward pass.
* **Adaptive sampling.** A click made ``a`` rounds before the newest round of its class gets the
  weight ``w = exp(-lambda * a)``, ``lambda = softplus(p)`` learned and initialised to ``ln 2`` (each
  older round counts half as much). With one centre per click the weight is a *prior* on the
  centre's share of the pixels: ``log w = -lambda * a`` is added to its assignment and mask logits
  (:attr:`ClickCentres.bias`), so newer clicks win the pixels where old and new disagree. With
  ``adaptive_clicks=False`` the bias is zero.
* ``click_centres="pooled"`` (the weights files written before per-click centres): all positive
  clicks of a class are averaged into one centre with the weights ``w`` (normalised per class).
* **Negative clicks** become extra *background* centres: each one is a centre initialised at the
  clicked pixel's features (plus a learned "negative" embedding) whose pixels are labelled
  background. They compete with the class centres for the pixels around the negative click, which is
  exactly the correction the user asked for, without touching the other classes' centres.

Shapes: positive clicks ``(B, P)``, negative clicks ``(B, Q)``, classes ``(B, Kc)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_STRIDES = (2, 4, 8, 16)


@dataclass
class ClickBatch:
    """Padded clicks of ``B`` slices; features already sampled (``F = 4 D``)."""

    pos_feats: torch.Tensor  # (B, P, F)
    pos_group: torch.Tensor  # (B, P) long: class centre index in [0, Kc)
    pos_round: torch.Tensor  # (B, P) long: interaction round of the click
    pos_valid: torch.Tensor  # (B, P) bool
    neg_feats: torch.Tensor  # (B, Q, F)
    neg_valid: torch.Tensor  # (B, Q) bool
    class_valid: torch.Tensor  # (B, Kc) bool: class centre exists


@dataclass
class ClickCentres:
    """Centres made from clicks: class centres ``(B, K, D)`` with their group (1-based class of the
    pass), validity and logit bias ``(B, K)``; negative (background) centres ``(B, Q, D)``."""

    centres: torch.Tensor
    groups: torch.Tensor
    valid: torch.Tensor
    bias: torch.Tensor
    negatives: torch.Tensor


def sample_click_features(feats: dict[int, torch.Tensor], points: torch.Tensor, image_hw: tuple[int, int],
                          embed_stride: int = 2) -> torch.Tensor:
    """Bilinear features at ``points`` ``(B, P, 2)`` (y, x in input pixels) -> ``(B, P, 4 D)``: the
    pixel embedding ``feats[embed_stride]``, then the maps at strides 4, 8, 16."""
    h, w = image_hw
    grid = torch.stack([(2 * points[..., 1] + 1) / w - 1, (2 * points[..., 0] + 1) / h - 1], dim=-1)
    grid = grid.to(feats[embed_stride].dtype).unsqueeze(2)  # (B, P, 1, 2)
    strides = (embed_stride, *SAMPLE_STRIDES[1:])  # with embed_stride=4 the stride-4 map comes twice
    sampled = {
        st: F.grid_sample(feats[st], grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 0]
        for st in dict.fromkeys(strides)
    }  # each (B, D, P), sampled once per map
    return torch.cat([sampled[st] for st in strides], dim=1).transpose(1, 2)


class ClickEncoder(nn.Module):
    def __init__(self, dim: int, adaptive: bool) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(len(SAMPLE_STRIDES) * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.positive_embed = nn.Parameter(torch.zeros(dim))
        self.negative_embed = nn.Parameter(torch.zeros(dim))
        self.adaptive = adaptive
        # softplus(p) = ln 2  <=>  p = ln(e^{ln 2} - 1) = 0
        self.decay_param = nn.Parameter(torch.tensor(math.log(math.expm1(math.log(2.0)))))

    def round_weights(self, batch: ClickBatch, num_groups: int) -> torch.Tensor:
        """Weight of each positive click inside its class ``(B, P)``; sums to 1 per class."""
        onehot = F.one_hot(batch.pos_group.clamp_min(0), num_groups).to(batch.pos_feats.dtype)
        onehot = onehot * batch.pos_valid.unsqueeze(-1)
        if self.adaptive:
            raw = torch.exp(-F.softplus(self.decay_param) * self.ages(batch, num_groups)) * batch.pos_valid
        else:
            raw = batch.pos_valid.to(onehot.dtype)
        total = torch.einsum("bp,bpk->bk", raw, onehot).clamp_min(1e-6)
        return raw / total.gather(1, batch.pos_group.clamp_min(0))

    def ages(self, batch: ClickBatch, num_groups: int) -> torch.Tensor:
        """Rounds between each positive click and the newest round of its class ``(B, P)`` (>= 0)."""
        onehot = F.one_hot(batch.pos_group.clamp_min(0), num_groups).to(batch.pos_feats.dtype)
        onehot = onehot * batch.pos_valid.unsqueeze(-1)
        rounds = batch.pos_round.to(onehot.dtype)
        newest = (onehot * rounds.unsqueeze(-1) - (1 - onehot) * 1e9).amax(dim=1)  # (B, Kc)
        return (newest.gather(1, batch.pos_group.clamp_min(0)) - rounds).clamp_min(0)

    def forward(self, batch: ClickBatch, per_click: bool = True) -> ClickCentres:
        """Class centres (one per click, or one per class when ``per_click`` is False) and negatives."""
        num_groups = batch.class_valid.shape[1]
        negatives = self.norm(self.proj(batch.neg_feats) + self.negative_embed)
        if per_click:
            centres = self.norm(self.proj(batch.pos_feats) + self.positive_embed)
            bias = -F.softplus(self.decay_param) * self.ages(batch, num_groups) if self.adaptive \
                else torch.zeros_like(batch.pos_round, dtype=centres.dtype)
            return ClickCentres(centres, batch.pos_group + 1, batch.pos_valid, bias * batch.pos_valid, negatives)
        weights = self.round_weights(batch, num_groups)
        onehot = F.one_hot(batch.pos_group.clamp_min(0), num_groups).to(weights.dtype) * batch.pos_valid.unsqueeze(-1)
        pooled = torch.einsum("bp,bpk,bpf->bkf", weights, onehot, batch.pos_feats)
        centres = self.norm(self.proj(pooled) + self.positive_embed)
        groups = torch.arange(1, num_groups + 1, device=centres.device).expand(centres.shape[0], -1)
        return ClickCentres(centres, groups, batch.class_valid, torch.zeros_like(centres[..., 0]), negatives)
