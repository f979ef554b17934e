"""Pixel decoder: top-down fusion (FPN) of the backbone maps into pixel features.

Input: backbone maps at strides 2, 4, 8, 16. Output: a dict ``{stride: (B, D, H/stride, W/stride)}``
for strides 2, 4, 8 and 16, all with the same dimension ``D``. The cluster decoder attends to the
coarse maps (4, 8, 16); the stride-2 map, after a projection, is the pixel embedding that the final
centres are compared with to give mask logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_s2vnet.model.backbone import ConvNormAct

STRIDES = (2, 4, 8, 16)


class PixelDecoder(nn.Module):
    def __init__(self, widths: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(w, dim, 1) for w in widths)
        self.smooth = nn.ModuleList(ConvNormAct(dim, dim) for _ in widths)
        self.embed = nn.Sequential(ConvNormAct(dim, dim), nn.Conv2d(dim, dim, 1))

    def forward(self, feats: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        out[STRIDES[-1]] = x
        for level in range(len(feats) - 2, -1, -1):
            lat = self.lateral[level](feats[level])
            x = self.smooth[level](lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False))
            out[STRIDES[level]] = x
        out[2] = self.embed(out[2])
        return out
