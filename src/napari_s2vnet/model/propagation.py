"""Slice-to-volume propagation with recurrent centroid aggregation.

The refined centres of slice ``t`` initialise the centres of slice ``t+1`` (or ``t-1``): that is
what lets a 2D network bridge remote slices. To avoid one bad slice derailing the chain, the
initialisation is not the last centre alone but an attention read-out over the centre's history:

    tokens  = [anchor, c_{t-M+1}, ..., c_t] + age embedding          (B*K, M+1, D)
    init    = LN(c_t + MHA(query=c_t, keys=tokens))  then LN(x + FFN(x))   (B*K, D)

``anchor`` is the centre's origin: the learned class embedding (automatic mode) or the encoding
of the user's clicks (interactive mode). It is always in the memory, so the chain can fall back to
it. With ``use_aggregation=False`` the next init is ``c_t`` itself (plain propagation); with
``use_propagation=False`` it is the anchor on every slice (no propagation at all).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_s2vnet.model.cluster_decoder import FeedForward


class CentroidAggregator(nn.Module):
    def __init__(self, dim: int, heads: int, history: int) -> None:
        super().__init__()
        self.history = history
        self.age_embed = nn.Parameter(torch.zeros(history + 1, dim))
        nn.init.normal_(self.age_embed, std=0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, 2 * dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, anchors: torch.Tensor, history: list[torch.Tensor]) -> torch.Tensor:
        """``anchors`` ``(B, K, D)``; ``history`` oldest first, each ``(B, K, D)``; -> ``(B, K, D)``."""
        recent = history[-self.history :]
        b, k, d = anchors.shape
        # age 0 = anchor, age 1 = newest centre, age m = m-th newest
        ages = [0] + list(range(len(recent), 0, -1))
        tokens = torch.stack([anchors, *recent], dim=2) + self.age_embed[ages]  # (B, K, M+1, D)
        query = recent[-1].reshape(b * k, 1, d)
        out, _ = self.attn(query, tokens.reshape(b * k, -1, d), tokens.reshape(b * k, -1, d), need_weights=False)
        x = self.norm1(query + out)
        x = self.norm2(x + self.ffn(x))
        return x.view(b, k, d)
