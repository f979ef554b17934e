"""Backbone: a small residual CNN giving multi-scale 2D features of one slice.

Input ``(B, C_in, H, W)`` with ``H`` and ``W`` multiples of 16. Output: four maps at strides
2, 4, 8 and 16, ``(B, widths[s], H/stride, W/stride)``. GroupNorm (not BatchNorm) keeps the
statistics independent of the batch, so CT, MR and single-slice inference behave the same.
"""

from __future__ import annotations

import torch
from torch import nn


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups that divide ``channels``."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            norm(c_out),
            nn.GELU(),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection; shape preserved ``(B, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), norm(channels))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class Backbone(nn.Module):
    """Four stages at strides 2, 4, 8, 16 (a strided conv then ``depths[i]`` residual blocks)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        stages = []
        c_prev = in_channels
        for width, depth in zip(widths, depths):
            blocks: list[nn.Module] = [ConvNormAct(c_prev, width, stride=2)]
            blocks += [ResidualBlock(width) for _ in range(depth)]
            stages.append(nn.Sequential(*blocks))
            c_prev = width
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
