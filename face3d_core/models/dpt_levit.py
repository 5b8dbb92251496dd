"""LeViT-384 backbone of MiDaS v3.1 (``dpt_levit_224``) and its transposed-convolution stem.

Written here rather than taken from timm: timm >= 0.9 restructured LeViT (``stem``/``stages``
instead of the flat ``patch_embed``/``blocks`` of timm 0.6 that the official checkpoint uses).
This module rebuilds the timm 0.6 layout of ``levit_384``:

* ``patch_embed``: four 3x3 stride-2 ``ConvNorm`` (conv + BatchNorm) with Hardswish between,
  224 px -> 14x14 tokens of 384 channels;
* ``blocks``: a flat list of 28 residual attention / MLP blocks in three stages
  (384, 512, 768 channels at 14x14, 7x7, 4x4), the stages joined by attention blocks that
  subsample the queries (blocks 8 and 18) each followed by an MLP;
* ``head`` / ``head_dist``: the (unused) distillation classifier, kept for the keys.

Linear layers are ``LinearNorm`` (Linear + BatchNorm1d over all tokens). Attention adds a
learned per-head bias indexed by the (absolute) offset between the two positions; the index is
the persistent ``attention_bias_idxs`` buffer of the checkpoint.

DPT takes the outputs of blocks 3, 11 and 21 (strides 16, 32, 64) and its decoder ends with
:func:`make_stem_transpose` (two 2x transposed convolutions). The network runs at 224x224 only.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LevitBackbone", "LeVit", "make_stem_transpose"]

IMG_SIZE = 224
_EMBED_DIMS = (384, 512, 768)
_NUM_HEADS = (6, 9, 12)
_DEPTHS = (4, 4, 4)
_KEY_DIM = 32
_ATTN_RATIO = 2
_MLP_RATIO = 2
_SUBSAMPLE_ATTN_RATIO = 4
_HOOKS = (3, 11, 21)


class ConvNorm(nn.Sequential):
    """Conv2d without bias + BatchNorm2d (keys ``c``, ``bn``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)


class ConvTransposeNorm(nn.Sequential):
    """ConvTranspose2d without bias + BatchNorm2d (keys ``c``, ``bn``).

    As in MiDaS, a 3x3 stride-2 layer with padding 1 and output padding 1 exactly doubles the size.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.c = nn.ConvTranspose2d(in_chs, out_chs, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)


class LinearNorm(nn.Module):
    """Linear without bias + BatchNorm1d over all tokens (keys ``c``, ``bn``).

    Args:
        in_features: Input width.
        out_features: Output width.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.c = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``(B, N, C_in)`` tokens, giving ``(B, N, C_out)``."""
        x = self.c(x)
        return self.bn(x.flatten(0, 1)).reshape(x.shape)


class Residual(nn.Module):
    """``x + m(x)`` (key ``m``)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


def _mlp(dim: int, ratio: int) -> nn.Sequential:
    """LeViT MLP: LinearNorm, Hardswish, LinearNorm (keys ``0``, ``2``)."""
    return nn.Sequential(LinearNorm(dim, dim * ratio), nn.Hardswish(), LinearNorm(dim * ratio, dim))


def _offset_index(query_side: int, key_side: int, stride: int) -> tuple[torch.Tensor, int]:
    """Index of the absolute 2-D offset between each query and key position (first seen first).

    Args:
        query_side: Side of the query grid.
        key_side: Side of the key grid.
        stride: Query grid step in key positions.

    Returns:
        ``(query_side**2, key_side**2)`` int64 index (offsets numbered in order of appearance)
        and the number of distinct offsets.
    """
    queries = list(itertools.product(range(query_side), range(query_side)))
    keys = list(itertools.product(range(key_side), range(key_side)))
    numbering: dict[tuple[int, int], int] = {}
    index = [
        numbering.setdefault((abs(qy * stride - ky), abs(qx * stride - kx)), len(numbering))
        for qy, qx in queries
        for ky, kx in keys
    ]
    return torch.tensor(index, dtype=torch.long).reshape(len(queries), len(keys)), len(numbering)


class Attention(nn.Module):
    """LeViT self-attention with a learned offset bias.

    Args:
        dim: Token width.
        num_heads: Heads.
        resolution: Side of the token grid.
    """

    def __init__(self, dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = _KEY_DIM
        self.value_dim = _ATTN_RATIO * _KEY_DIM
        self.qkv = LinearNorm(dim, num_heads * (2 * self.key_dim + self.value_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearNorm(num_heads * self.value_dim, dim))
        index, num_offsets = _offset_index(resolution, resolution, 1)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("attention_bias_idxs", index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over ``(B, N, C)`` tokens."""
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, self.num_heads, -1).transpose(1, 2)
        q, k, v = qkv.split((self.key_dim, self.key_dim, self.value_dim), dim=-1)
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class Subsample(nn.Module):
    """Keep every ``stride``-th token in both directions of a square grid (no weights)."""

    def __init__(self, stride: int, resolution: int) -> None:
        super().__init__()
        self.stride = stride
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, r*r, C)`` -> ``(B, ceil(r/s)**2, C)``."""
        batch, _, channels = x.shape
        x = x.reshape(batch, self.resolution, self.resolution, channels)[:, :: self.stride, :: self.stride]
        return x.reshape(batch, -1, channels)


class AttentionSubsample(nn.Module):
    """Attention whose queries come from a subsampled grid: ``(B, r*r, C_in)`` -> ``(B, r'*r', C_out)``.

    Args:
        in_dim: Input width.
        out_dim: Output width.
        num_heads: Heads.
        resolution: Input grid side ``r``.
        stride: Query subsampling.
    """

    def __init__(self, in_dim: int, out_dim: int, num_heads: int, resolution: int, stride: int = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = _KEY_DIM
        self.value_dim = _SUBSAMPLE_ATTN_RATIO * _KEY_DIM
        self.resolution_out = (resolution - 1) // stride + 1
        self.kv = LinearNorm(in_dim, num_heads * (self.key_dim + self.value_dim))
        self.q = nn.Sequential(Subsample(stride, resolution), LinearNorm(in_dim, num_heads * self.key_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearNorm(num_heads * self.value_dim, out_dim))
        index, num_offsets = _offset_index(self.resolution_out, resolution, stride)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("attention_bias_idxs", index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend from the subsampled queries over all ``(B, N, C_in)`` tokens."""
        batch, tokens, _ = x.shape
        kv = self.kv(x).reshape(batch, tokens, self.num_heads, -1).transpose(1, 2)
        k, v = kv.split((self.key_dim, self.value_dim), dim=-1)
        q = self.q(x).reshape(batch, -1, self.num_heads, self.key_dim).transpose(1, 2)
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(batch, q.shape[2], -1))


class _NormLinear(nn.Module):
    """Classifier: BatchNorm1d + Linear (keys ``bn``, ``l``); kept only for the checkpoint keys."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.l = nn.Linear(in_features, out_features)  # noqa: E741 - official key name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.bn(x))


class LeVit(nn.Module):
    """LeViT-384 with the module layout of timm 0.6 (``levit_384``)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        dims = _EMBED_DIMS
        self.patch_embed = nn.Sequential(
            ConvNorm(3, dims[0] // 8, 3, 2, 1),
            nn.Hardswish(),
            ConvNorm(dims[0] // 8, dims[0] // 4, 3, 2, 1),
            nn.Hardswish(),
            ConvNorm(dims[0] // 4, dims[0] // 2, 3, 2, 1),
            nn.Hardswish(),
            ConvNorm(dims[0] // 2, dims[0], 3, 2, 1),
        )
        resolution = IMG_SIZE // 16
        blocks: list[nn.Module] = []
        for stage, (dim, heads, depth) in enumerate(zip(dims, _NUM_HEADS, _DEPTHS, strict=True)):
            for _ in range(depth):
                blocks.append(Residual(Attention(dim, heads, resolution)))
                blocks.append(Residual(_mlp(dim, _MLP_RATIO)))
            if stage < len(dims) - 1:
                down = AttentionSubsample(dim, dims[stage + 1], dim // _KEY_DIM, resolution)
                blocks.append(down)
                resolution = down.resolution_out
                blocks.append(Residual(_mlp(dims[stage + 1], _MLP_RATIO)))
        self.blocks = nn.Sequential(*blocks)
        self.head = _NormLinear(dims[-1], num_classes)
        self.head_dist = _NormLinear(dims[-1], num_classes)


class LevitBackbone(nn.Module):
    """DPT backbone wrapper (``pretrained.model``) of LeViT-384.

    The official ``act_postprocess`` blocks only reshape tokens to maps (no weights).
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = LeVit()
        self.out_channels = _EMBED_DIMS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode.

        Args:
            x: ``(B, 3, 224, 224)`` normalised image.

        Returns:
            Maps ``(B, 384, 14, 14)``, ``(B, 512, 7, 7)``, ``(B, 768, 4, 4)``.
        """
        if tuple(x.shape[-2:]) != (IMG_SIZE, IMG_SIZE):
            raise ValueError(f"LeViT needs a {IMG_SIZE}x{IMG_SIZE} input, got {x.shape[-2]}x{x.shape[-1]}")
        tokens = self.model.patch_embed(x).flatten(2).transpose(1, 2)
        feats = []
        for index, block in enumerate(self.model.blocks[: _HOOKS[-1] + 1]):
            tokens = block(tokens)
            if index in _HOOKS:
                side = math.isqrt(int(tokens.shape[1]))  # int(): export traces shapes as tensors
                feats.append(tokens.transpose(1, 2).unflatten(2, (side, side)))
        return feats


def make_stem_transpose(in_chs: int, out_chs: int) -> nn.Sequential:
    """Decoder tail of DPT-LeViT: two 2x transposed ``ConvNorm`` with Hardswish (``in -> out -> out/2``)."""
    return nn.Sequential(
        ConvTransposeNorm(in_chs, out_chs),
        nn.Hardswish(),
        ConvTransposeNorm(out_chs, out_chs // 2),
        nn.Hardswish(),
    )
