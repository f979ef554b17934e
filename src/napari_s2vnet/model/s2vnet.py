"""S2VNet: one 2D clustering network for automatic and interactive 3D segmentation.

``encode`` (backbone + pixel decoder) runs once per slice and can be cached. ``decode`` refines a
set of centres ``(B, K, D)`` against those features. What differs between the modes is only where
the centres come from (:meth:`auto_anchors`: learned embeddings, one per class plus background;
:meth:`click_anchors`: the user's clicks plus learned background) and how they move from slice to
slice (:meth:`next_init`, see :mod:`napari_s2vnet.model.propagation`).

Every centre carries a *group*: ``0`` = background (learned background centres and negative clicks),
``g >= 1`` = the g-th class of the pass. :func:`group_probabilities` turns the per-centre softmax
into per-group probabilities ``(B, G, H, W)``.

Centre layout of a pass, ``m = config.centres_per_class``:
``[background (nb) | class 1 (m) | class 2 (m) | ... | negatives (q)]``; :meth:`S2VNet.class_centres`
gives the index range of a class. With ``m > 1`` the copies of a class start from their own learned
embeddings (automatic mode) or from the click encoding plus a learned per-copy offset (interactive
mode), so the hard k-means assignment can split the class between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_s2vnet.model.backbone import Backbone
from napari_s2vnet.model.clicks import ClickBatch, ClickEncoder, sample_click_features
from napari_s2vnet.model.cluster_decoder import ClusterDecoder, DecoderOutput
from napari_s2vnet.model.config import ModelConfig
from napari_s2vnet.model.pixel_decoder import PixelDecoder
from napari_s2vnet.model.propagation import CentroidAggregator


@dataclass
class Anchors:
    """Initial centres of a pass: ``centres (B,K,D)``, ``groups (B,K)`` long, ``valid (B,K)`` bool."""

    centres: torch.Tensor
    groups: torch.Tensor
    valid: torch.Tensor


class S2VNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.backbone = Backbone(config.in_channels, config.widths, config.depths)
        self.pixel_decoder = PixelDecoder(config.widths, d)
        self.decoder = ClusterDecoder(d, config.heads, config.decoder_strides, config.decoder_rounds, config.num_classes)
        m = config.centres_per_class
        self.class_embed = nn.Parameter(torch.randn(config.num_classes * m, d) * 0.5)  # class-major: (N*m, D)
        if m > 1:  # only then, so one-centre weights load strictly without it
            self.copy_embed = nn.Parameter(torch.randn(m, d) * 0.5)
        self.background_embed = nn.Parameter(torch.randn(config.num_background, d) * 0.5)
        self.click_encoder = ClickEncoder(d, config.adaptive_clicks)
        self.aggregator = CentroidAggregator(d, config.heads, config.history)

    # ----------------------------------------------------------------- per-slice features
    def encode(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """``(B, C, H, W)`` (H, W multiples of 16) -> ``{stride: (B, D, H/s, W/s)}`` for s in 2,4,8,16."""
        return self.pixel_decoder(self.backbone(image))

    def sample_clicks(self, feats: dict[int, torch.Tensor], points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Raw click features ``(B, P, 4D)`` at ``points`` ``(B, P, 2)`` (y, x input pixels)."""
        return sample_click_features(feats, points, image_hw)

    # ----------------------------------------------------------------- initial centres
    def class_centres(self, group: int) -> slice:
        """Index range of the centres of class group ``group`` (1-based) in a pass's anchors."""
        nb, m = self.config.num_background, self.config.centres_per_class
        return slice(nb + (group - 1) * m, nb + group * m)

    def slot_embeddings(self, slot: int) -> torch.Tensor:
        """Learned centres ``(m, D)`` of automatic class slot ``slot`` (0-based)."""
        m = self.config.centres_per_class
        return self.class_embed[slot * m : (slot + 1) * m]

    def auto_anchors(self, batch: int) -> Anchors:
        nb, n, m = self.config.num_background, self.config.num_classes, self.config.centres_per_class
        centres = torch.cat([self.background_embed, self.class_embed]).unsqueeze(0).expand(batch, -1, -1)
        groups = torch.cat([torch.zeros(nb, dtype=torch.long), torch.arange(1, n + 1).repeat_interleave(m)]).to(centres.device)
        valid = torch.ones(batch, nb + n * m, dtype=torch.bool, device=centres.device)
        return Anchors(centres, groups.unsqueeze(0).expand(batch, -1), valid)

    def click_anchors(self, clicks: ClickBatch) -> Anchors:
        b = clicks.class_valid.shape[0]
        classes, negatives = self.click_encoder(clicks)  # (B, Kc, D), (B, Q, D)
        m = self.config.centres_per_class
        class_valid = clicks.class_valid
        if m > 1:  # each clicked class -> m centres: the click encoding plus a learned offset per copy
            classes = (classes.unsqueeze(2) + self.copy_embed).flatten(1, 2)
            class_valid = class_valid.repeat_interleave(m, dim=1)
        background = self.background_embed.unsqueeze(0).expand(b, -1, -1)
        device = classes.device
        nb, kc, q = background.shape[1], clicks.class_valid.shape[1], negatives.shape[1]
        groups = torch.cat([
            torch.zeros(nb, dtype=torch.long, device=device),
            torch.arange(1, kc + 1, device=device).repeat_interleave(m),
            torch.zeros(q, dtype=torch.long, device=device),
        ]).unsqueeze(0).expand(b, -1)
        valid = torch.cat([torch.ones(b, nb, dtype=torch.bool, device=device), class_valid, clicks.neg_valid], dim=1)
        return Anchors(torch.cat([background, classes, negatives], dim=1), groups, valid)

    # ----------------------------------------------------------------- one slice / next slice
    def decode(self, feats: dict[int, torch.Tensor], centres: torch.Tensor, valid: torch.Tensor) -> DecoderOutput:
        return self.decoder(feats, centres, valid)

    def next_init(self, anchors: torch.Tensor, history: list[torch.Tensor], present: torch.Tensor | None = None) -> torch.Tensor:
        """Initial centres of the next slice from the refined centres of the slices seen so far.

        ``present`` ``(B, K)`` marks the centres whose structure was on the last slice; the others
        (classes not seen yet, or gone) restart from their anchor, i.e. the learned embedding.
        """
        if not self.config.use_propagation or not history:
            return anchors
        init = history[-1] if not self.config.use_aggregation else self.aggregator(anchors, history)
        if present is not None:
            init = torch.where(present.unsqueeze(-1), init, anchors)
        return init

    def presence(self, out: DecoderOutput, anchors: Anchors) -> torch.Tensor:
        """``(B, K)``: background centres, and centres whose objectness is at least 0.5."""
        return (torch.sigmoid(out.objectness.detach()) >= 0.5) | (anchors.groups == 0)

    def run_chain(self, feats_seq: list[dict[int, torch.Tensor]], anchors: Anchors) -> list[DecoderOutput]:
        """Decode consecutive slices, propagating the centres from each to the next."""
        outputs: list[DecoderOutput] = []
        history: list[torch.Tensor] = []
        centres = anchors.centres
        for feats in feats_seq:
            out = self.decode(feats, centres, anchors.valid)
            outputs.append(out)
            history = (history + [out.centres])[-self.config.history :]
            centres = self.next_init(anchors.centres, history, self.presence(out, anchors))
        return outputs


def group_probabilities(mask_logits: torch.Tensor, groups: torch.Tensor, valid: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Softmax over centres, summed per group: ``(B,K,h,w)`` -> ``(B,G,h,w)`` (sums to 1 over G)."""
    probs = torch.softmax(mask_logits.float(), dim=1)
    onehot = F.one_hot(groups, num_groups).to(probs.dtype) * valid.unsqueeze(-1)
    return torch.einsum("bkhw,bkg->bghw", probs, onehot)
