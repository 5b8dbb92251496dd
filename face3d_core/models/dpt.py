"""DPT depth networks of MiDaS v3.0 / v3.1: the decoder, the model class and the builders.

A DPT network is a transformer backbone (``pretrained``) that returns three or four feature
maps at strides 4, 8, 16 and 32 (or 16, 32, 64 for LeViT), and a convolutional decoder
(``scratch``) that fuses them from coarse to fine and predicts one channel of relative inverse
depth at the input resolution. Backbones live in their own modules
(:mod:`~face3d_core.models.dpt_vit`, :mod:`~face3d_core.models.dpt_beit`,
:mod:`~face3d_core.models.dpt_swin2`, :mod:`~face3d_core.models.dpt_levit`), the blocks they
share with the decoder in :mod:`~face3d_core.models.dpt_blocks`; this module assembles them:

* :class:`DPTDepthModel`: the whole network (the decoder ``scratch`` built from
  :class:`~face3d_core.models.dpt_blocks.FeatureFusionBlock`); ``forward`` returns ``(B, H, W)``
  float32.
* ``build_dpt_*``: one builder per registry model (random init, nothing downloaded).

Module and parameter names follow isl-org/MiDaS so that every official checkpoint loads with
``strict=True`` (``nn.Identity`` placeholders keep the official ``nn.Sequential`` indices).

Example:
    >>> import torch
    >>> from face3d_core.models.dpt import build_dpt_swin2_tiny_256
    >>> net = build_dpt_swin2_tiny_256()
    >>> with torch.inference_mode():
    ...     net(torch.zeros(1, 3, 256, 256)).shape
    torch.Size([1, 256, 256])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from face3d_core.models.dpt_beit import BeitBackbone
from face3d_core.models.dpt_blocks import FeatureFusionBlock, Interpolate
from face3d_core.models.dpt_levit import LevitBackbone, make_stem_transpose
from face3d_core.models.dpt_swin2 import SWIN2_CONFIGS, Swin2Backbone
from face3d_core.models.dpt_vit import VitBackbone

__all__ = [
    "DPTDepthModel",
    "build_dpt_beit_base_384",
    "build_dpt_beit_large_384",
    "build_dpt_beit_large_512",
    "build_dpt_hybrid_384",
    "build_dpt_large_384",
    "build_dpt_levit_224",
    "build_dpt_swin2_base_384",
    "build_dpt_swin2_large_384",
    "build_dpt_swin2_tiny_256",
]

#: Channels of every decoder path (``features`` in MiDaS).
DECODER_FEATURES = 256


class _Scratch(nn.Module):
    """Container of the decoder (``scratch.*`` keys): projections, fusion blocks and head."""

    def __init__(
        self,
        in_channels: Sequence[int],
        features: int,
        head: nn.Sequential,
        refinenet3_size: int | None,
        stem_transpose: nn.Module | None,
    ) -> None:
        super().__init__()
        self.num_levels = len(in_channels)
        for level, channels in enumerate(in_channels, start=1):
            self.add_module(f"layer{level}_rn", nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False))
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features, size=refinenet3_size)
        if self.num_levels == 4:
            self.refinenet4 = FeatureFusionBlock(features)
        self.stem_transpose = stem_transpose
        self.output_conv = head

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode ``num_levels`` feature maps (finest first) to ``(B, 1, H, W)``."""
        rn = [getattr(self, f"layer{level}_rn")(f) for level, f in enumerate(feats, start=1)]
        if self.num_levels == 4:
            path = self.refinenet4(rn[3], size=rn[2].shape[2:])
            path = self.refinenet3(path, rn[2], size=rn[1].shape[2:])
        else:
            path = self.refinenet3(rn[2], size=rn[1].shape[2:])
        path = self.refinenet2(path, rn[1], size=rn[0].shape[2:])
        path = self.refinenet1(path, rn[0])
        if self.stem_transpose is not None:
            path = self.stem_transpose(path)
        return self.output_conv(path)


def _make_head(in_features: int, mid_features: int) -> nn.Sequential:
    """Official depth head (``scratch.output_conv``): conv, 2x upsample, conv, ReLU, 1x1, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_features, in_features // 2, kernel_size=3, padding=1),
        Interpolate(scale_factor=2),
        nn.Conv2d(in_features // 2, mid_features, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(mid_features, 1, kernel_size=1),
        nn.ReLU(),  # non_negative=True
        nn.Identity(),
    )


class DPTDepthModel(nn.Module):
    """A DPT depth network: backbone (``pretrained``) + decoder (``scratch``).

    Args:
        backbone: Module whose ``forward(x)`` returns the list of feature maps, finest first
            (4 maps at strides 4/8/16/32, or 3 for LeViT); it must have the official names
            (``model``, ``act_postprocess*``).
        in_channels: Channels of those feature maps.
        features: Width of the decoder paths.
        head_features: ``(in, mid)`` channels of the head (``head_features_1/2`` in MiDaS).
        refinenet3_size: Fixed output size of ``refinenet3`` (LeViT: 7), else ``None``.
        stem_transpose: Extra upsampling before the head (LeViT), else ``None``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_channels: Sequence[int],
        features: int = DECODER_FEATURES,
        head_features: tuple[int, int] = (DECODER_FEATURES, 32),
        refinenet3_size: int | None = None,
        stem_transpose: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if len(in_channels) not in (3, 4):
            raise ValueError(f"DPT needs 3 or 4 feature levels, got {len(in_channels)}")
        self.pretrained = backbone
        self.scratch = _Scratch(in_channels, features, _make_head(*head_features), refinenet3_size, stem_transpose)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict relative inverse depth.

        Args:
            x: ``(B, 3, H, W)`` float32 image, normalised (network space; mean 0.5, std 0.5).

        Returns:
            ``(B, H, W)`` float32 relative inverse depth (larger = nearer), non-negative.
        """
        feats = self.pretrained(x)
        out = self.scratch(feats)
        return out.squeeze(1).float()


# --- builders (registry entry points) -------------------------------------------------------


def build_dpt_hybrid_384() -> DPTDepthModel:
    """MiDaS v3.0 DPT-Hybrid (ResNet-50 + ViT-B/16, 384 px); random init, eval mode."""
    backbone = VitBackbone("vit_base_r50_s16_384", hooks=(0, 1, 8, 11), channels=(256, 512, 768, 768), hybrid=True)
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_large_384() -> DPTDepthModel:
    """MiDaS v3.0 DPT-Large (ViT-L/16, 384 px); random init, eval mode."""
    backbone = VitBackbone("vit_large_patch16_384", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_large_512() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-L/16 at 512 px; random init, eval mode."""
    backbone = BeitBackbone("beit_large_patch16_512", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_large_384() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-L/16 at 384 px; random init, eval mode."""
    backbone = BeitBackbone("beit_large_patch16_384", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_base_384() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-B/16 at 384 px; random init, eval mode."""
    backbone = BeitBackbone("beit_base_patch16_384", hooks=(2, 5, 8, 11), channels=(96, 192, 384, 768))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_tiny_256() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 tiny (window 16, 256 px); random init, eval mode."""
    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_tiny_window16_256"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_base_384() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 base (window 12 to 24, 384 px); random init, eval mode."""
    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_base_window12to24_192to384"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_large_384() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 large (window 12 to 24, 384 px); random init, eval mode."""
    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_large_window12to24_192to384"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_levit_224() -> DPTDepthModel:
    """MiDaS v3.1 LeViT-384 at 224 px; random init, eval mode."""
    backbone = LevitBackbone()
    return DPTDepthModel(
        backbone,
        backbone.out_channels,
        head_features=(64, 8),
        refinenet3_size=7,
        stem_transpose=make_stem_transpose(DECODER_FEATURES, 128),
    ).eval()
