"""Building blocks shared by the depth networks' decoders (MiDaS small, DPT, Depth Anything V2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``x + conv2(relu(conv1(relu(x))))``.

    Key names (``conv1``, ``conv2``) follow the official checkpoints.

    Args:
        channels: Number of input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit to ``(B, C, h, w)`` features; same shape out."""
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x
