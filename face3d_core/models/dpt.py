"""DPT depth networks of MiDaS v3.0 / v3.1: the shared decoder, the model class and the builders.

A DPT network is a transformer backbone (``pretrained``) that returns three or four feature
maps at strides 4, 8, 16 and 32 (or 16, 32, 64 for LeViT), and a convolutional decoder
(``scratch``) that fuses them from coarse to fine and predicts one channel of relative inverse
depth at the input resolution. Backbones live in their own modules
(:mod:`~face3d_core.models.dpt_vit`, :mod:`~face3d_core.models.dpt_beit`,
:mod:`~face3d_core.models.dpt_swin2`, :mod:`~face3d_core.models.dpt_levit`); this module holds
what they share:

* :class:`ProjectReadout` and :class:`Reassemble`: turn the token sequence of a ViT-style
  backbone into a feature map (``pretrained.act_postprocess{1..4}`` in the official checkpoint).
* :class:`FeatureFusionBlock`, :class:`ResidualConvUnit`, :class:`Interpolate`: the decoder
  (``scratch.refinenet{1..4}``, ``scratch.output_conv``).
* :class:`DPTDepthModel`: the whole network; ``forward`` returns ``(B, H, W)`` float32.
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
from torch.nn import functional as F

from face3d_core.models.blocks import ResidualConvUnit

__all__ = [
    "DPTDepthModel",
    "FeatureFusionBlock",
    "Interpolate",
    "ProjectReadout",
    "Reassemble",
    "ResidualConvUnit",
    "build_dpt_beit_base_384",
    "build_dpt_beit_large_384",
    "build_dpt_beit_large_512",
    "build_dpt_hybrid_384",
    "build_dpt_large_384",
    "build_dpt_levit_224",
    "build_dpt_swin2_base_384",
    "build_dpt_swin2_large_384",
    "build_dpt_swin2_tiny_256",
    "make_vit_reassembles",
]

#: Channels of every decoder path (``features`` in MiDaS).
DECODER_FEATURES = 256


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
        x = x.transpose(1, 2).unflatten(2, grid)
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
# Backbone modules import the shared blocks above, so they are imported here, when building.


def build_dpt_hybrid_384() -> DPTDepthModel:
    """MiDaS v3.0 DPT-Hybrid (ResNet-50 + ViT-B/16, 384 px); random init, eval mode."""
    from face3d_core.models.dpt_vit import VitBackbone

    backbone = VitBackbone("vit_base_r50_s16_384", hooks=(0, 1, 8, 11), channels=(256, 512, 768, 768), hybrid=True)
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_large_384() -> DPTDepthModel:
    """MiDaS v3.0 DPT-Large (ViT-L/16, 384 px); random init, eval mode."""
    from face3d_core.models.dpt_vit import VitBackbone

    backbone = VitBackbone("vit_large_patch16_384", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_large_512() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-L/16 at 512 px; random init, eval mode."""
    from face3d_core.models.dpt_beit import BeitBackbone

    backbone = BeitBackbone("beit_large_patch16_512", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_large_384() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-L/16 at 384 px; random init, eval mode."""
    from face3d_core.models.dpt_beit import BeitBackbone

    backbone = BeitBackbone("beit_large_patch16_384", hooks=(5, 11, 17, 23), channels=(256, 512, 1024, 1024))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_beit_base_384() -> DPTDepthModel:
    """MiDaS v3.1 BEiT-B/16 at 384 px; random init, eval mode."""
    from face3d_core.models.dpt_beit import BeitBackbone

    backbone = BeitBackbone("beit_base_patch16_384", hooks=(2, 5, 8, 11), channels=(96, 192, 384, 768))
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_tiny_256() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 tiny (window 16, 256 px); random init, eval mode."""
    from face3d_core.models.dpt_swin2 import SWIN2_CONFIGS, Swin2Backbone

    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_tiny_window16_256"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_base_384() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 base (window 12 to 24, 384 px); random init, eval mode."""
    from face3d_core.models.dpt_swin2 import SWIN2_CONFIGS, Swin2Backbone

    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_base_window12to24_192to384"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_swin2_large_384() -> DPTDepthModel:
    """MiDaS v3.1 Swin-V2 large (window 12 to 24, 384 px); random init, eval mode."""
    from face3d_core.models.dpt_swin2 import SWIN2_CONFIGS, Swin2Backbone

    backbone = Swin2Backbone(SWIN2_CONFIGS["swinv2_large_window12to24_192to384"])
    return DPTDepthModel(backbone, backbone.out_channels).eval()


def build_dpt_levit_224() -> DPTDepthModel:
    """MiDaS v3.1 LeViT-384 at 224 px; random init, eval mode."""
    from face3d_core.models.dpt_levit import LevitBackbone, make_stem_transpose

    backbone = LevitBackbone()
    return DPTDepthModel(
        backbone,
        backbone.out_channels,
        head_features=(64, 8),
        refinenet3_size=7,
        stem_transpose=make_stem_transpose(DECODER_FEATURES, 128),
    ).eval()
