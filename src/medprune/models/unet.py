"""A plain 2D U-Net (Ronneberger et al. 2015) as an ``nn.Module``: no Lightning, no pruning.

Each level holds two 3x3 conv -> BatchNorm -> ReLU blocks; the encoder halves the resolution
with 2x2 max-pooling, the decoder doubles it with a 2x2 transposed conv and concatenates the
skip connection. With ``base_channels=16`` and ``depth=5`` the filters are 16-32-64-128-256,
about 1.94 M parameters for 3 input channels and 1 output channel (Mahbod et al. 2022).
Input height and width must be divisible by ``2 ** (depth - 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from medprune.common.checks import check_int


class ConvBlock(nn.Sequential):
    """Two 3x3 conv -> BatchNorm -> ReLU; conv bias is redundant before BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """2x2 transposed conv up-sampling, skip concatenation, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net returning raw outputs (logits or a linear regression map), shape (N, out, H, W)."""

    def __init__(
        self, in_channels: int = 3, out_channels: int = 1, base_channels: int = 16, depth: int = 5
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "UNet in_channels")
        out_channels = check_int(out_channels, "UNet out_channels")
        base_channels = check_int(base_channels, "UNet base_channels")
        depth = check_int(depth, "UNet depth", 2)
        self.depth = depth
        widths = [base_channels * 2**level for level in range(depth)]
        self.encoder = nn.ModuleList(
            ConvBlock(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList(
            UpBlock(c_in, c_out) for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.depth - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"UNet input of size {tuple(x.shape[-2:])}: height and width must be divisible "
                f"by {factor} (2 ** (depth - 1))"
            )
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = block(x, skip)
        return self.head(x)
