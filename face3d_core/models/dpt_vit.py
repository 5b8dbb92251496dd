"""ViT backbones of MiDaS v3.0: DPT-Large (ViT-L/16) and DPT-Hybrid (ResNet-50 + ViT-B/16).

The transformer is timm's ``vit_large_patch16_384`` / ``vit_base_r50_s16_384`` built with
``pretrained=False``; its state-dict keys are the official ones (``pretrained.model.*``). What
MiDaS adds, written here:

* any input whose sides are multiples of 32: the learned 24x24 position embedding is resized
  bilinearly (``align_corners=False``) to the patch grid, the class-token embedding kept;
* the outputs of four transformer blocks ("hooks") are taken, and turned into feature maps at
  strides 4, 8, 16 and 32 by :class:`~face3d_core.models.dpt_blocks.Reassemble` blocks
  (``pretrained.act_postprocess{1..4}``);
* for the hybrid model, levels 1 and 2 are the ResNet stage outputs (strides 4 and 8, 256 and
  512 channels) instead of transformer tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import timm
import torch
from torch import nn
from torch.nn import functional as F

from face3d_core.models.dpt_blocks import make_vit_reassembles

__all__ = ["VitBackbone", "resize_position_embedding"]

PATCH_SIZE = 16


def resize_position_embedding(pos_embed: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1) -> torch.Tensor:
    """Resize a square learned position embedding to another patch grid (bilinear, as MiDaS).

    Args:
        pos_embed: ``(1, num_prefix + g * g, C)`` embedding of a ``g x g`` grid.
        grid: Target grid ``(h, w)``.
        num_prefix: Leading (class) tokens, kept as they are.

    Returns:
        ``(1, num_prefix + h * w, C)`` embedding.
    """
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = math.isqrt(int(patches.shape[1]))  # the stored grid: a constant, even while tracing for export
    if not torch.jit.is_tracing() and (old, old) == tuple(grid):
        # While tracing, ``grid`` follows the input size: always resize (exact at the same size), so
        # the exported graph stays right for every input size.
        return pos_embed
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=grid, mode="bilinear", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat((prefix, patches), dim=1)


class VitBackbone(nn.Module):
    """ViT (or ResNet-ViT hybrid) encoder returning four DPT feature maps.

    Args:
        timm_name: timm architecture (``vit_large_patch16_384`` or ``vit_base_r50_s16_384``).
        hooks: Indices of the transformer blocks whose outputs are used (for the hybrid, only
            the last two are).
        channels: Channels of the four feature maps.
        hybrid: Take levels 1 and 2 from the outputs of ResNet stages 0 and 1.
    """

    def __init__(self, timm_name: str, hooks: Sequence[int], channels: Sequence[int], hybrid: bool = False) -> None:
        super().__init__()
        self.model = timm.create_model(timm_name, pretrained=False)
        if self.model.num_prefix_tokens != 1:
            raise ValueError(f"{timm_name}: expected exactly one class token before the patch tokens")
        self.hybrid = hybrid
        # The hybrid's first two levels come from the ResNet, not from transformer blocks.
        self.token_hooks = tuple(hooks[2:]) if hybrid else tuple(hooks)
        self.out_channels = tuple(channels)
        dim = self.model.embed_dim
        levels = (3, 4) if hybrid else (1, 2, 3, 4)
        for level, block in make_vit_reassembles(dim, channels, levels).items():
            self.add_module(f"act_postprocess{level}", block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode.

        Args:
            x: ``(B, 3, H, W)`` normalised image, ``H`` and ``W`` multiples of 32.

        Returns:
            Four maps ``(B, C_i, H / s, W / s)`` for strides ``s`` = 4, 8, 16, 32.
        """
        height, width = x.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"input sides must be multiples of 32, got {height}x{width}")
        grid = (height // PATCH_SIZE, width // PATCH_SIZE)
        model = self.model
        feats: list[torch.Tensor] = []
        if self.hybrid:
            resnet = model.patch_embed.backbone
            x = resnet.stem(x)
            for stage in resnet.stages:
                x = stage(x)
                feats.append(x)
            feats = feats[:2]  # strides 4 and 8
            x = resnet.norm(x)
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        cls = model.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat((cls, tokens), dim=1) + resize_position_embedding(model.pos_embed, grid)
        hooked: list[torch.Tensor] = []
        for index, block in enumerate(model.blocks[: self.token_hooks[-1] + 1]):
            tokens = block(tokens)
            if index in self.token_hooks:
                hooked.append(tokens)
        first_level = 5 - len(hooked)
        for level, level_tokens in enumerate(hooked, start=first_level):
            feats.append(getattr(self, f"act_postprocess{level}")(level_tokens, grid))
        return feats
