"""Swin Transformer V2 backbones of MiDaS v3.1 (``dpt_swin2_tiny_256``, ``dpt_swin2_{base,large}_384``).

Written here rather than taken from timm: timm >= 0.9 moved each stage's patch merging to the
start of the next stage, works in NHWC and no longer stores the shifted-window attention masks,
while the official checkpoints were saved from timm 0.6. This module keeps the timm 0.6 layout
(``layers.{i}.blocks.{j}``, ``layers.{i}.downsample`` at the end of stage ``i``, persistent
``attn_mask`` buffers) and reuses timm's :class:`~timm.layers.Mlp`.

Swin V2 specifics: scaled cosine attention (learned per-head ``logit_scale``), continuous
relative-position bias from a small MLP over log-spaced coordinates (``cpb_mlp``), post-norm
residual blocks. Windows that would be larger than a stage's feature map are shrunk to it and
then not shifted (e.g. the 12x12 last stage of the 384 px models with their 24x24 windows).

The networks run at their fixed square size only (256 or 384 px).

The features used by DPT are the outputs of the last block of each stage (before patch merging)
at strides 4, 8, 16 and 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from timm.layers import Mlp
from torch import nn
from torch.nn import functional as F

__all__ = ["SWIN2_CONFIGS", "Swin2Backbone", "Swin2Config", "SwinTransformerV2"]

_LOGIT_SCALE_MAX = math.log(1.0 / 0.01)
_MASK_VALUE = -100.0


@dataclass(frozen=True)
class Swin2Config:
    """Hyper-parameters of one Swin V2 variant (as timm's ``swinv2_*`` model functions).

    Attributes:
        img_size: Fixed square input size in pixels.
        window_size: Attention window in patches (shrunk per stage to the feature map if larger).
        embed_dim: Channels of stage 0 (doubled at every stage).
        depths: Blocks per stage.
        num_heads: Attention heads per stage.
        pretrained_window_sizes: Window the relative-position MLP was pre-trained with, per stage
            (0: the window itself); it scales the relative coordinates.
        patch_size: Side of the patches of the stem in pixels.
        mlp_ratio: Hidden width of the MLPs relative to the token width.
        num_classes: Outputs of the (unused) classifier.
    """

    img_size: int
    window_size: int
    embed_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    pretrained_window_sizes: tuple[int, int, int, int] = (0, 0, 0, 0)
    patch_size: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 1000


SWIN2_CONFIGS: dict[str, Swin2Config] = {
    "swinv2_tiny_window16_256": Swin2Config(
        img_size=256, window_size=16, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)
    ),
    "swinv2_base_window12to24_192to384": Swin2Config(
        img_size=384,
        window_size=24,
        embed_dim=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        pretrained_window_sizes=(12, 12, 12, 6),
    ),
    "swinv2_large_window12to24_192to384": Swin2Config(
        img_size=384,
        window_size=24,
        embed_dim=192,
        depths=(2, 2, 18, 2),
        num_heads=(6, 12, 24, 48),
        pretrained_window_sizes=(12, 12, 12, 6),
    ),
}


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """Split ``(B, H, W, C)`` into ``(B * nW, window * window, C)`` non-overlapping windows."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, window * window, C)`` -> ``(B, H, W, C)``."""
    channels = windows.shape[-1]
    x = windows.reshape(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def _relative_coords_table(window: int, pretrained_window: int) -> torch.Tensor:
    """Log-spaced relative coordinates ``(2w-1, 2w-1, 2)`` fed to the bias MLP."""
    coords = torch.arange(-(window - 1), window, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1)
    table = table / max((pretrained_window if pretrained_window > 0 else window) - 1, 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def _relative_position_index(window: int) -> torch.Tensor:
    """``(w*w, w*w)`` index into the flattened ``(2w-1) x (2w-1)`` relative-position table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return rel[0] * (2 * window - 1) + rel[1]


def _shifted_window_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """Attention mask ``(nW, w*w, w*w)`` of shifted windows: 0 within a region, -100 across."""
    region = torch.zeros(size, size)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[rows, cols] = label
            label += 1
    windows = window_partition(region[None, :, :, None], window).squeeze(-1)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, _MASK_VALUE)


class WindowAttention(nn.Module):
    """Swin V2 window attention: scaled cosine attention + continuous relative-position bias.

    Args:
        dim: Token width.
        window: Window side in patches.
        num_heads: Attention heads.
        pretrained_window: Window the bias MLP was pre-trained with (0: ``window``).
    """

    def __init__(self, dim: int, window: int, num_heads: int, pretrained_window: int = 0) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.register_buffer(
            "relative_coords_table", _relative_coords_table(window, pretrained_window), persistent=False
        )
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, w*w, w*w)`` relative-position bias in ``(0, 16)``."""
        table = self.cpb_mlp(self.relative_coords_table).reshape(-1, self.num_heads)
        area = self.window * self.window
        bias = table[self.relative_position_index.reshape(-1)].reshape(area, area, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Attend within windows.

        Args:
            x: ``(B * nW, N, C)`` windows of ``N = w*w`` tokens, image-major.
            mask: ``(nW, N, N)`` additive mask of shifted windows, or ``None``.
            batch: ``B``.

        Returns:
            ``(B * nW, N, C)`` tokens.
        """
        windows, tokens, channels = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))  # no key bias
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.reshape(windows, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        scale = torch.clamp(self.logit_scale, max=_LOGIT_SCALE_MAX).exp()
        q = F.normalize(q, dim=-1) * scale.to(q.dtype)
        k = F.normalize(k, dim=-1)
        bias = self.position_bias()
        if mask is not None:
            # (nW, heads, N, N), broadcast over the batch: attend as (B, nW, heads, N, d).
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)
            q, k, v = (t.reshape(batch, -1, *t.shape[1:]) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
        out = out.reshape(windows, self.num_heads, tokens, -1).transpose(1, 2).reshape(windows, tokens, channels)
        return self.proj(out)


class SwinTransformerV2Block(nn.Module):
    """(Shifted) window attention and MLP, each followed by LayerNorm then added (post-norm).

    Args:
        dim: Token width.
        resolution: Side of the (square) feature map in patches.
        num_heads: Attention heads.
        window: Requested window side; shrunk to ``resolution`` if larger (then no shift).
        shift: Cyclic shift (``window // 2`` on odd blocks, else 0).
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        pretrained_window: See :class:`WindowAttention`.
    """

    def __init__(
        self,
        dim: int,
        resolution: int,
        num_heads: int,
        window: int,
        shift: int,
        mlp_ratio: float,
        pretrained_window: int,
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.window = window
        self.shift = shift
        self.resolution = resolution
        mask = _shifted_window_mask(resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask)  # persistent: part of the official checkpoint
        self.attn = WindowAttention(dim, window, num_heads, pretrained_window)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(B, H, W, C)`` tokens (``H = W = resolution``)."""
        batch, height, width, _ = x.shape
        shifted = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2)) if self.shift else x
        windows = self.attn(window_partition(shifted, self.window), self.attn_mask, batch)
        shifted = window_reverse(windows, self.window, height, width)
        attended = torch.roll(shifted, (self.shift, self.shift), dims=(1, 2)) if self.shift else shifted
        x = x + self.norm1(attended)
        return x + self.norm2(self.mlp(x))


class PatchMerging(nn.Module):
    """2x2 patch merging: ``(B, H, W, C)`` -> ``(B, H/2, W/2, 2C)`` (Linear 4C -> 2C, LayerNorm).

    Args:
        dim: Input channels ``C``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Merge; the 4 neighbours are concatenated in the order (0,0), (1,0), (0,1), (1,1) (row, col)."""
        batch, height, width, channels = x.shape
        x = x.reshape(batch, height // 2, 2, width // 2, 2, channels).permute(0, 1, 3, 4, 2, 5)
        return self.norm(self.reduction(x.flatten(3)))


class SwinStage(nn.Module):
    """Blocks of one resolution, then (except the last stage) patch merging.

    Args:
        dim: Token width.
        resolution: Feature-map side in patches.
        depth: Number of blocks.
        num_heads: Attention heads.
        window: Window side.
        mlp_ratio: MLP hidden ratio.
        pretrained_window: See :class:`WindowAttention`.
        downsample: Add the patch merging.
    """

    def __init__(
        self,
        dim: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        pretrained_window: int,
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerV2Block(
                dim,
                resolution,
                num_heads,
                window,
                0 if index % 2 == 0 else window // 2,
                mlp_ratio,
                pretrained_window,
            )
            for index in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None


class _PatchEmbed(nn.Module):
    """Non-overlapping patch projection + LayerNorm, ``(B, 3, H, W)`` -> ``(B, H/p, W/p, C)``."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformerV2(nn.Module):
    """Swin Transformer V2 with the parameter names of timm 0.6 (classifier kept for the keys).

    Args:
        config: Variant hyper-parameters.
    """

    def __init__(self, config: Swin2Config) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = _PatchEmbed(config.patch_size, config.embed_dim)
        resolution = config.img_size // config.patch_size
        layers = []
        for stage, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
            layers.append(
                SwinStage(
                    config.embed_dim * 2**stage,
                    resolution // 2**stage,
                    depth,
                    heads,
                    config.window_size,
                    config.mlp_ratio,
                    config.pretrained_window_sizes[stage],
                    downsample=stage < 3,
                )
            )
        self.layers = nn.ModuleList(layers)
        self.num_features = config.embed_dim * 8
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, config.num_classes)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the stages and return their outputs before patch merging.

        Args:
            x: ``(B, 3, S, S)`` normalised image, ``S = img_size``.

        Returns:
            Four ``(B, C_i, S / s, S / s)`` maps, strides ``s`` = 4, 8, 16, 32.
        """
        if tuple(x.shape[-2:]) != (self.config.img_size,) * 2:
            raise ValueError(
                f"this Swin-V2 network needs a {self.config.img_size}x{self.config.img_size} input, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        x = self.patch_embed(x)
        feats = []
        for layer in self.layers:
            for block in layer.blocks:
                x = block(x)
            feats.append(x.permute(0, 3, 1, 2))
            if layer.downsample is not None:
                x = layer.downsample(x)
        return feats


class Swin2Backbone(nn.Module):
    """DPT backbone wrapper (``pretrained.model``) of a Swin V2 network.

    The official ``act_postprocess`` blocks of Swin only reshape tokens to maps (no weights).

    Args:
        config: Variant hyper-parameters.
    """

    def __init__(self, config: Swin2Config) -> None:
        super().__init__()
        self.model = SwinTransformerV2(config)
        self.out_channels = tuple(config.embed_dim * 2**stage for stage in range(4))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode ``(B, 3, S, S)`` into four maps at strides 4, 8, 16, 32."""
        return self.model.forward_stages(x)
