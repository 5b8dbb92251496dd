"""Building blocks of DPT networks shared by the backbones and the decoder (MiDaS v3.0 / v3.1).

* :class:`ProjectReadout` and :class:`Reassemble` (with :func:`make_vit_reassembles`): turn the
  token sequence of a ViT-style backbone into a feature map (``pretrained.act_postprocess{1..4}``
  in the official checkpoints); used by :mod:`~face3d_core.models.dpt_vit` and
  :mod:`~face3d_core.models.dpt_beit`.
* :class:`FeatureFusionBlock` and :class:`Interpolate`: the decoder's fusion steps and head
  resize (``scratch.refinenet{1..4}``, ``scratch.output_conv``); used by
  :mod:`~face3d_core.models.dpt`, which assembles whole networks from a backbone and these.

Module and parameter names follow isl-org/MiDaS so that every official checkpoint loads with
``strict=True`` (``nn.Identity`` placeholders keep the official ``nn.Sequential`` indices).
This module imports no backbone, so every backbone module can import it at the top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from face3d_core.models.blocks import ResidualConvUnit

__all__ = ["FeatureFusionBlock", "Interpolate", "ProjectReadout", "Reassemble", "make_vit_reassembles"]


class ProjectReadout(nn.Module):
    """Fold the class (readout) token into every patch token.

    Each patch token is concatenated with the class token and projected back with
    ``Linear(2C, C)`` + GELU (MiDaS ``readout="project"``).

    Args:
        dim: Token width ``C``.
        start_index: Index of the first patch token (1: one class token before the patches).
    """

    def __init__(self, dim: int, start_index: int = 1) -> None:
        super().__init__()
        self.start_index = start_index
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Project the patch tokens.

        Args:
            tokens: ``(B, start_index + N, C)`` tokens, class token first.

        Returns:
            ``(B, N, C)`` patch tokens.
        """
        patches = tokens[:, self.start_index :]
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat((patches, readout), dim=-1))


class Reassemble(nn.Sequential):
    """Tokens of one transformer layer -> feature map at the wanted stride.

    Children (official indices): ``0`` :class:`ProjectReadout`; ``1``, ``2`` placeholders for
    the official ``Transpose``/``Unflatten`` (no weights); ``3`` a 1x1 convolution to
    ``out_channels``; ``4`` (optional) a resampling layer (transposed convolution to upsample,
    strided convolution to downsample).

    Args:
        dim: Token width ``C``.
        out_channels: Channels of the feature map.
        resample: Layer applied last, or ``None``.
    """

    def __init__(self, dim: int, out_channels: int, resample: nn.Module | None = None) -> None:
        layers: list[nn.Module] = [
            ProjectReadout(dim),
            nn.Identity(),
            nn.Identity(),
            nn.Conv2d(dim, out_channels, kernel_size=1),
        ]
        if resample is not None:
            layers.append(resample)
        super().__init__(*layers)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        """Reassemble.

        Args:
            tokens: ``(B, 1 + h * w, C)`` tokens, class token first.
            grid: Patch grid ``(h, w)``.

        Returns:
            ``(B, out_channels, h * s, w * s)`` features, ``s`` the resampling factor.
        """
        x = self[0](tokens)
        batch, _, channels = x.shape
        # reshape, not unflatten: while tracing for export, the grid follows the input size.
        x = x.transpose(1, 2).reshape(batch, channels, grid[0], grid[1])
        for layer in list(self)[3:]:
            x = layer(x)
        return x


def make_vit_reassembles(
    dim: int, channels: Sequence[int], levels: Sequence[int] = (1, 2, 3, 4)
) -> dict[int, Reassemble]:
    """Build the official reassemble blocks of a patch-16 ViT/BEiT backbone.

    Level 1 upsamples 4x (stride 4), level 2 upsamples 2x (stride 8), level 3 keeps stride 16,
    level 4 downsamples 2x (stride 32).

    Args:
        dim: Token width of the backbone.
        channels: Output channels of levels 1 to 4.
        levels: Which levels to build (the hybrid model only uses 3 and 4).

    Returns:
        ``{level: Reassemble}``.
    """
    resamplers: dict[int, nn.Module | None] = {
        1: nn.ConvTranspose2d(channels[0], channels[0], kernel_size=4, stride=4),
        2: nn.ConvTranspose2d(channels[1], channels[1], kernel_size=2, stride=2),
        3: None,
        4: nn.Conv2d(channels[3], channels[3], kernel_size=3, stride=2, padding=1),
    }
    return {level: Reassemble(dim, channels[level - 1], resamplers[level]) for level in levels}


class Interpolate(nn.Module):
    """Bilinear resize by a fixed factor (``align_corners=True``, as MiDaS).

    Args:
        scale_factor: Resize factor.
    """

    def __init__(self, scale_factor: float) -> None:
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resize ``(B, C, h, w)`` to ``(B, C, h * s, w * s)``."""
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=True)


class FeatureFusionBlock(nn.Module):
    """Decoder step: add the refined skip features, refine, resize, project (1x1).

    Args:
        features: Channels of the path and of the skip features.
        size: Fixed output size used when ``forward`` gets none (LeViT's ``refinenet3``);
            ``None``: upsample 2x.
    """

    def __init__(self, features: int, size: int | None = None) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815 - official key name
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815 - official key name
        self.size = size

    def forward(
        self, path: torch.Tensor, skip: torch.Tensor | None = None, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Fuse.

        Args:
            path: ``(B, C, h, w)`` coarser path (or the deepest features).
            skip: ``(B, C, h, w)`` skip features of the same resolution, or ``None``.
            size: Output ``(h', w')``; default the fixed size, else ``2h, 2w``.

        Returns:
            ``(B, C, h', w')`` features.
        """
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is not None:
            path = F.interpolate(path, size=tuple(size), mode="bilinear", align_corners=True)
        elif self.size is not None:
            path = F.interpolate(path, size=self.size, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(path)
