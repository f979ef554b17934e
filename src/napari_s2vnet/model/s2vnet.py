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

* automatic: ``[background (nb) | class 1 (m) | class 2 (m) | ...]``; :meth:`S2VNet.class_centres`
  gives the index range of a class;
* clicks: ``[background (nb) | click 1 (m) | click 2 (m) | ... | negatives (q)]``, one entry per
  positive click (``click_centres="per_click"``) or per class (``"pooled"``); ``groups`` says which
  class each centre belongs to. Click centres carry a recency ``bias`` (adaptive sampling).

With ``m > 1`` the copies start from their own learned embeddings (automatic mode) or from the click
encoding plus a learned per-copy offset (interactive mode), so the hard k-means assignment can split
the class between them.

:class:`Chain` is the one slice-to-slice stepper (history, presence, re-initialisation) used by
training, automatic inference and the interactive session alike.
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
    """Initial centres of a pass: ``centres (B,K,D)``, ``groups (B,K)`` long, ``valid (B,K)`` bool,
    ``bias (B,K)`` logit prior of each centre (None: all zero)."""

    centres: torch.Tensor
    groups: torch.Tensor
    valid: torch.Tensor
    bias: torch.Tensor | None = None

    def appended(self, centres: torch.Tensor, group: int) -> Anchors:
        """These anchors plus ``centres`` ``(B, n, D)`` of class ``group`` (valid, zero bias)."""
        b, n = centres.shape[:2]
        groups = torch.full((b, n), group, dtype=torch.long, device=centres.device)
        valid = torch.ones(b, n, dtype=torch.bool, device=centres.device)
        bias = self.bias if self.bias is not None else torch.zeros_like(self.valid, dtype=centres.dtype)
        return Anchors(torch.cat([self.centres, centres], 1), torch.cat([self.groups, groups], 1),
                       torch.cat([self.valid, valid], 1), torch.cat([bias, torch.zeros(b, n, dtype=bias.dtype, device=bias.device)], 1))


class S2VNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.backbone = Backbone(config.in_channels, config.widths, config.depths)
        self.pixel_decoder = PixelDecoder(config.widths, d, config.embed_stride)
        self.decoder = ClusterDecoder(d, config.heads, config.decoder_strides, config.decoder_rounds, config.num_classes,
                                      config.embed_stride)
        m = config.centres_per_class
        self.class_embed = nn.Parameter(torch.randn(config.num_classes * m, d) * 0.5)  # class-major: (N*m, D)
        if m > 1:  # only then, so one-centre weights load strictly without it
            self.copy_embed = nn.Parameter(torch.randn(m, d) * 0.5)
        self.background_embed = nn.Parameter(torch.randn(config.num_background, d) * 0.5)
        self.click_encoder = ClickEncoder(d, config.adaptive_clicks)
        self.aggregator = CentroidAggregator(d, config.heads, config.history)

    # ----------------------------------------------------------------- per-slice features
    def encode(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """``(B, C, H, W)`` (H, W multiples of 16) -> ``{stride: (B, D, H/s, W/s)}`` for s in 2,4,8,16
        (4, 8, 16 with ``config.embed_stride=4``); the pixel embedding is ``[config.embed_stride]``."""
        return self.pixel_decoder(self.backbone(image))

    def sample_clicks(self, feats: dict[int, torch.Tensor], points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Raw click features ``(B, P, 4D)`` at ``points`` ``(B, P, 2)`` (y, x input pixels)."""
        return sample_click_features(feats, points, image_hw, self.config.embed_stride)

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
        made = self.click_encoder(clicks, per_click=self.config.click_centres == "per_click")
        m = self.config.centres_per_class
        classes, groups, valid, bias = made.centres, made.groups, made.valid, made.bias
        if m > 1:  # each click (or class) -> m centres: the click encoding plus a learned offset per copy
            classes = (classes.unsqueeze(2) + self.copy_embed).flatten(1, 2)
            groups, valid, bias = (t.repeat_interleave(m, dim=1) for t in (groups, valid, bias))
        background = self.background_embed.unsqueeze(0).expand(b, -1, -1)
        device = classes.device
        nb, q = background.shape[1], made.negatives.shape[1]
        zeros = torch.zeros(b, nb, dtype=torch.long, device=device)
        groups = torch.cat([zeros, groups, torch.zeros(b, q, dtype=torch.long, device=device)], 1)
        valid = torch.cat([torch.ones(b, nb, dtype=torch.bool, device=device), valid, clicks.neg_valid], dim=1)
        bias = torch.cat([zeros.to(bias.dtype), bias, torch.zeros(b, q, dtype=bias.dtype, device=device)], 1)
        return Anchors(torch.cat([background, classes, made.negatives], dim=1), groups, valid, bias)

    # ----------------------------------------------------------------- one slice / next slice
    def decode(self, feats: dict[int, torch.Tensor], centres: torch.Tensor, valid: torch.Tensor,
               bias: torch.Tensor | None = None) -> DecoderOutput:
        return self.decoder(feats, centres, valid, bias)

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
        chain = Chain(self, anchors)
        return [chain.step(feats) for feats in feats_seq]


class Chain:
    """One propagation chain: decode a slice, carry its centres to the next (both modes, train and
    inference).

    State: the refined centres of the last ``config.history`` slices (oldest first) and ``present``
    ``(B, K)``, the centres whose structure was on the last slice (:meth:`S2VNet.presence`; callers
    may overwrite it, e.g. the session after its own found/not-found decision). :meth:`init` gives the
    next slice's initial centres (:meth:`S2VNet.next_init`); before any slice, the anchors.
    """

    def __init__(self, model: S2VNet, anchors: Anchors, first: DecoderOutput | None = None) -> None:
        self.model, self.anchors = model, anchors
        self.history: list[torch.Tensor] = []
        self.present: torch.Tensor | None = None
        if first is not None:
            self.push(first)

    def init(self) -> torch.Tensor:
        return self.model.next_init(self.anchors.centres, self.history, self.present)

    def push(self, out: DecoderOutput) -> None:
        self.history = (self.history + [out.centres])[-self.model.config.history :]
        self.present = self.model.presence(out, self.anchors)

    def decode(self, feats: dict[int, torch.Tensor], valid: torch.Tensor | None = None) -> DecoderOutput:
        """Decode one slice from :meth:`init` without advancing (``valid`` overrides the anchors')."""
        a = self.anchors
        return self.model.decode(feats, self.init(), a.valid if valid is None else valid, a.bias)

    def step(self, feats: dict[int, torch.Tensor], valid: torch.Tensor | None = None) -> DecoderOutput:
        out = self.decode(feats, valid)
        self.push(out)
        return out


def group_probabilities(mask_logits: torch.Tensor, groups: torch.Tensor, valid: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Softmax over centres, summed per group: ``(B,K,h,w)`` -> ``(B,G,h,w)`` (sums to 1 over G)."""
    probs = torch.softmax(mask_logits.float(), dim=1)
    onehot = F.one_hot(groups, num_groups).to(probs.dtype) * valid.unsqueeze(-1)
    return torch.einsum("bkhw,bkg->bghw", probs, onehot)
