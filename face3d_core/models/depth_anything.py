"""Depth Anything V2 Small (``depth_anything_v2_vits``): DINOv2 ViT-S/14 encoder and DPT head.

The transformer blocks, patch embedding and final norm come from timm's
``vit_small_patch14_dinov2`` (random init, nothing downloaded); the token preparation (with
DINOv2's own position-embedding interpolation) and the DPT depth head are written here.
Module names follow the official ``DepthAnythingV2(encoder="vits")`` so that
``depth_anything_v2_vits.pth`` loads with ``strict=True``:

* ``pretrained``: the DINOv2 encoder (``cls_token``, ``pos_embed`` for a 37x37 grid,
  ``mask_token``, ``patch_embed``, 12 ``blocks``, ``norm``).
* ``depth_head``: the DPT head (``projects``, ``resize_layers``, ``scratch``).

Example:
    >>> import torch
    >>> from face3d_core.models.depth_anything import build_depth_anything_v2_vits
    >>> net = build_depth_anything_v2_vits().eval()
    >>> with torch.inference_mode():
    ...     net(torch.zeros(1, 3, 140, 182)).shape
    torch.Size([1, 140, 182])
"""

from __future__ import annotations

import math

import timm
import torch
from torch import nn
from torch.nn import functional as F

from face3d_core.models.blocks import ResidualConvUnit

__all__ = ["DepthAnythingV2", "build_depth_anything_v2_vits"]

#: Patch size of the encoder; input sides must be a multiple of it.
PATCH_SIZE = 14

_EMBED_DIM = 384
_HEAD_FEATURES = 64
_HEAD_CHANNELS = (48, 96, 192, 384)
_TAPPED_BLOCKS = (2, 5, 8, 11)
# DINOv2 adds this to the target grid size before deriving the interpolation scale factor.
_POS_EMBED_OFFSET = 0.1


class DinoV2Encoder(nn.Module):
    """DINOv2 ViT-S/14 returning normalised patch tokens of four intermediate blocks.

    Args:
        tapped_blocks: Indices of the blocks whose outputs are returned.
    """

    def __init__(self, tapped_blocks: tuple[int, ...] = _TAPPED_BLOCKS) -> None:
        super().__init__()
        vit = timm.create_model(
            "vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=518, init_values=1.0
        )
        self.tapped_blocks = tuple(tapped_blocks)
        self.cls_token = vit.cls_token
        self.pos_embed = vit.pos_embed  # (1, 1 + 37 * 37, 384)
        # Used by DINOv2's masked training only; kept so the official checkpoint loads.
        self.mask_token = nn.Parameter(torch.zeros(1, vit.embed_dim))
        self.patch_embed = vit.patch_embed
        self.blocks = vit.blocks
        self.norm = vit.norm
        # Embeddings computed eagerly for an input size about to be exported (see prepare_export).
        self.frozen_pos_embed: dict[tuple[int, int], torch.Tensor] = {}

    def interpolate_pos_embed(self, num_tokens: int, height: int, width: int) -> torch.Tensor:
        """Return the position embedding for a ``height`` x ``width`` input, as DINOv2 does.

        The stored 37x37 grid is resized bicubically with a scale factor derived from the
        target grid plus 0.1 (not from the target size), exactly like the official code, so
        results match it bit for bit in the interpolation.

        Args:
            num_tokens: Number of tokens including the class token.
            height: Input height in pixels (a multiple of 14).
            width: Input width in pixels (a multiple of 14).

        Returns:
            ``(1, num_tokens, 384)`` float32 position embedding.
        """
        if torch.jit.is_tracing():
            frozen = self.frozen_pos_embed.get((int(height), int(width)))
            if frozen is not None:
                return frozen
        num_stored = self.pos_embed.shape[1] - 1
        if num_tokens - 1 == num_stored and height == width:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
        dim = pos_embed.shape[-1]
        side = int(math.sqrt(num_stored))
        # int(): while tracing for export the sizes are tensors; the resize factors must be Python
        # floats (so this network is exported once per input size).
        grid_h = int(height) // PATCH_SIZE + _POS_EMBED_OFFSET
        grid_w = int(width) // PATCH_SIZE + _POS_EMBED_OFFSET
        sqrt_stored = math.sqrt(num_stored)
        patch_pos = F.interpolate(
            patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2),
            scale_factor=(grid_h / sqrt_stored, grid_w / sqrt_stored),
            mode="bicubic",
            antialias=False,
        )
        if patch_pos.shape[-2:] != (int(grid_h), int(grid_w)):  # pragma: no cover - float guard
            raise RuntimeError(f"position embedding resized to {tuple(patch_pos.shape[-2:])}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((cls_pos, patch_pos), dim=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode an image into patch tokens.

        Args:
            x: ``(B, 3, H, W)`` normalised image, ``H`` and ``W`` multiples of 14.

        Returns:
            One ``(B, (H/14) * (W/14), 384)`` tensor per tapped block: its output after the
            final LayerNorm, without the class token, patches in row-major order.
        """
        height, width = x.shape[-2:]
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, N, 384)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_embed(tokens.shape[1], height, width).to(tokens.dtype)
        outputs = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in self.tapped_blocks:
                outputs.append(self.norm(tokens)[:, 1:])
        return outputs


class FusionBlock(nn.Module):
    """DPT fusion: add the refined skip, refine, resize (bilinear, align_corners), 1x1 conv.

    Args:
        channels: Channels in and out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(channels)  # noqa: N815 - official key name
        self.resConfUnit2 = ResidualConvUnit(channels)  # noqa: N815 - official key name

    def forward(
        self, path: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Fuse and resize.

        Args:
            path: ``(B, C, h, w)`` features from the coarser level.
            skip: ``(B, C, h, w)`` features of this level, or ``None`` for the coarsest.
            size: Output ``(height, width)``; ``None`` doubles ``h`` and ``w``.

        Returns:
            ``(B, C, *size)`` features.
        """
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class DPTHeadScratch(nn.Module):
    """The official ``depth_head.scratch``: lateral convs, fusion blocks, output convs."""

    def __init__(self, in_channels: tuple[int, ...] = _HEAD_CHANNELS, features: int = _HEAD_FEATURES) -> None:
        super().__init__()
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = (
            nn.Conv2d(c_in, features, kernel_size=3, padding=1, bias=False) for c_in in in_channels
        )
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features)
        self.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(),
        )


class DPTHead(nn.Module):
    """DPT head turning four token maps into one depth channel at the input resolution.

    Args:
        embed_dim: Token width of the encoder.
        channels: Channels of the four projected levels (strides 4, 8, 16 and 32).
        features: Channels of the fusion path.
    """

    def __init__(
        self,
        embed_dim: int = _EMBED_DIM,
        channels: tuple[int, ...] = _HEAD_CHANNELS,
        features: int = _HEAD_FEATURES,
    ) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(embed_dim, c, kernel_size=1) for c in channels)
        # From the stride-14 token grid to strides ~3.5, 7, 14 and 28.
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(channels[0], channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(channels[1], channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(channels[3], channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = DPTHeadScratch(channels, features)

    def forward(self, token_maps: list[torch.Tensor], grid_h: int, grid_w: int) -> torch.Tensor:
        """Decode the encoder tokens.

        Args:
            token_maps: Four ``(B, grid_h * grid_w, embed_dim)`` token tensors.
            grid_h: Token grid height (input height / 14).
            grid_w: Token grid width (input width / 14).

        Returns:
            ``(B, 1, 14 * grid_h, 14 * grid_w)`` non-negative relative inverse depth.
        """
        levels = []
        for tokens, project, resize in zip(token_maps, self.projects, self.resize_layers, strict=True):
            feat = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], grid_h, grid_w)
            levels.append(resize(project(feat)))
        scratch = self.scratch
        layer_1 = scratch.layer1_rn(levels[0])
        layer_2 = scratch.layer2_rn(levels[1])
        layer_3 = scratch.layer3_rn(levels[2])
        layer_4 = scratch.layer4_rn(levels[3])
        path = scratch.refinenet4(layer_4, size=layer_3.shape[2:])
        path = scratch.refinenet3(path, layer_3, size=layer_2.shape[2:])
        path = scratch.refinenet2(path, layer_2, size=layer_1.shape[2:])
        path = scratch.refinenet1(path, layer_1)
        out = scratch.output_conv1(path)
        out = F.interpolate(out, size=(grid_h * PATCH_SIZE, grid_w * PATCH_SIZE), mode="bilinear", align_corners=True)
        return scratch.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Depth Anything V2 Small: a drop-in for the official ``vits`` state dict.

    Attributes:
        pretrained: The DINOv2 ViT-S/14 encoder.
        depth_head: The DPT head.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = DinoV2Encoder()
        self.depth_head = DPTHead()

    def prepare_export(self, input_shape: tuple[int, ...]) -> None:
        """Fix the position embedding of one input size before that size is traced for export.

        ONNX Runtime and OpenVINO resample with the size ratio, not with DINOv2's scale factor
        (``(grid + 0.1) / 37``): the exported graph gets the embedding PyTorch computes, as a
        constant, so this network is exported once per input size.

        Args:
            input_shape: ``(B, 3, H, W)`` of the export.
        """
        height, width = int(input_shape[-2]), int(input_shape[-1])
        tokens = 1 + (height // PATCH_SIZE) * (width // PATCH_SIZE)
        with torch.no_grad():
            embed = self.pretrained.interpolate_pos_embed(tokens, height, width).detach().clone()
        self.pretrained.frozen_pos_embed = {(height, width): embed}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict relative inverse depth.

        Args:
            x: ``(B, 3, H, W)`` float image, RGB scaled to [0, 1] then normalised with the
                ImageNet mean and std; ``H`` and ``W`` multiples of 14 (518 nominal, e.g.
                518x686 after the "lower_bound" resize). Any memory format.

        Returns:
            ``(B, H, W)`` relative inverse depth (unitless, >= 0, larger is nearer), float32
            (also under a bfloat16/float16 autocast; float64 if the network is float64).

        Raises:
            ValueError: ``x`` is not 4-D with 3 channels, or a side is not a multiple of 14.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"input sides must be multiples of {PATCH_SIZE}, got {(height, width)}")
        token_maps = self.pretrained(x)
        depth = self.depth_head(token_maps, height // PATCH_SIZE, width // PATCH_SIZE)
        depth = F.relu(depth).squeeze(1)
        return depth.to(torch.promote_types(depth.dtype, torch.float32))


def build_depth_anything_v2_vits() -> DepthAnythingV2:
    """Build Depth Anything V2 Small with random weights (nothing is downloaded).

    Returns:
        The network in training mode; load ``depth_anything_v2_vits.pth`` into it with
        ``load_state_dict(..., strict=True)`` and call ``.eval()``.
    """
    return DepthAnythingV2()
