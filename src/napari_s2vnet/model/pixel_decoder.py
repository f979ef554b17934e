"""Pixel decoder: top-down fusion (FPN) of the backbone maps into pixel features.

Input: backbone maps at strides 2, 4, 8, 16. Output: a dict ``{stride: (B, D, H/stride, W/stride)}``,
all with the same dimension ``D``:

* ``embed_stride=2`` (the shipped layout): strides 2, 4, 8 and 16. The cluster decoder attends to the
  coarse maps (4, 8, 16); the stride-2 map, after a projection (``embed``), is the pixel embedding
  that the final centres are compared with to give mask logits ``(B, K, H/2, W/2)``.
* ``embed_stride=4`` (lighter, as kMaX-DeepLab and Mask2Former): strides 4, 8 and 16. The top-down
  path stops at stride 4 (no stride-2 lateral/smooth: ``lateral[0]`` and ``smooth[0]`` are
  parameter-free placeholders, so the other parameters keep the names of the stride-2 layout) and the embedding head runs on the stride-4 map, which it
  replaces: ``out[4]`` is the pixel embedding, so mask logits are ``(B, K, H/4, W/4)`` and the
  decoder's stride-4 blocks attend to it. The backbone's stride-2 stage stays (it feeds stride 4).

The pixel embedding is always ``out[embed_stride]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_s2vnet.model.backbone import ConvNormAct

STRIDES = (2, 4, 8, 16)


class PixelDecoder(nn.Module):
    def __init__(self, widths: tuple[int, ...], dim: int, embed_stride: int = 2) -> None:
        super().__init__()
        self.embed_stride = embed_stride  # 2 or 4, validated by ModelConfig
        self.first = STRIDES.index(embed_stride)  # backbone maps before this one are not fused
        self.out_strides = STRIDES[self.first:]  # the keys of forward's output
        skip = range(self.first)  # nn.Identity: no parameters, and levels >= first keep their names
        self.lateral = nn.ModuleList(nn.Identity() if i in skip else nn.Conv2d(w, dim, 1) for i, w in enumerate(widths))
        self.smooth = nn.ModuleList(nn.Identity() if i in skip else ConvNormAct(dim, dim) for i in range(len(widths)))
        self.embed = nn.Sequential(ConvNormAct(dim, dim), nn.Conv2d(dim, dim, 1))

    def forward(self, feats: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        out[STRIDES[-1]] = x
        for level in range(len(feats) - 2, self.first - 1, -1):
            lat = self.lateral[level](feats[level])
            x = self.smooth[level](lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False))
            out[STRIDES[level]] = x
        out[self.embed_stride] = self.embed(out[self.embed_stride])
        return out
