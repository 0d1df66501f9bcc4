"""Two-branch nuclei model after Mahbod et al. 2022: two independent U-Nets on the same image.

``seg`` predicts foreground logits (a sigmoid gives the probability), ``dist`` regresses the
per-nucleus normalised distance map (linear output). The branches share nothing, so pruning
can select one of them by the parameter-name prefix ``seg.`` or ``dist.``.
"""

from __future__ import annotations

import torch
from torch import nn

from medprune.models.unet import UNet


class TwoBranchUNet(nn.Module):
    """Returns ``(seg_logits, distance)``, each of shape (N, 1, H, W)."""

    def __init__(self, in_channels: int = 3, base_channels: int = 16, depth: int = 5) -> None:
        super().__init__()
        self.depth = depth  # inputs must be divisible by 2 ** (depth - 1), as for each UNet
        self.seg = UNet(in_channels, 1, base_channels, depth)
        self.dist = UNet(in_channels, 1, base_channels, depth)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.seg(x), self.dist(x)
