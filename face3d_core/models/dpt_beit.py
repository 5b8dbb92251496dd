"""BEiT backbones of MiDaS v3.1 (``dpt_beit_large_512``, ``dpt_beit_large_384``, ``dpt_beit_base_384``).

The transformer is timm's ``beit_{large,base}_patch16_{512,384}`` built with ``pretrained=False``
(parameter names are the official ones). Written here, as MiDaS does it:

* inputs of any size whose sides are multiples of 32: each block's relative-position bias table,
  learned for the training window (e.g. 32x32 patches), is resized bilinearly
  (``align_corners=False``) to the current patch grid ``(h, w)`` and indexed with the relative
  position index of that grid (the 3 class-token entries are kept as they are);
* the attention itself (timm's module only supports its training window);
* the hooks and :class:`~face3d_core.models.dpt_blocks.Reassemble` blocks of DPT.

The official checkpoint stores ``relative_position_index`` of every block (timm < 0.9 made it a
persistent buffer); it is registered as persistent here too so that the checkpoint loads with
``strict=True``. The forward pass does not read it: like MiDaS, it uses the index of the current
grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from timm.models.beit import gen_relative_position_index
from torch import nn
from torch.nn import functional as F

from face3d_core.models.dpt_blocks import make_vit_reassembles

__all__ = ["BeitBackbone", "resize_relative_position_bias"]

PATCH_SIZE = 16
_NUM_CLS_ENTRIES = 3  # cls->token, token->cls, cls->cls
_MAX_CACHED_GRIDS = 8  # relative position indices kept (8 MB each for a 32x32 grid)


def resize_relative_position_bias(
    table: torch.Tensor, window: tuple[int, int], grid: tuple[int, int], index: torch.Tensor
) -> torch.Tensor:
    """Relative-position bias of one attention layer for a patch grid of any size.

    Args:
        table: ``((2*wh-1) * (2*ww-1) + 3, heads)`` learned table of the training window.
        window: Training window ``(wh, ww)`` in patches.
        grid: Current patch grid ``(h, w)``.
        index: ``(h*w + 1, h*w + 1)`` int64 relative position index of ``grid``
            (class token first).

    Returns:
        ``(heads, h*w + 1, h*w + 1)`` additive attention bias.
    """
    old = (2 * window[0] - 1, 2 * window[1] - 1)
    new = (2 * grid[0] - 1, 2 * grid[1] - 1)
    if old != new:
        sub = table[:-_NUM_CLS_ENTRIES].reshape(1, old[1], old[0], -1).permute(0, 3, 1, 2)
        sub = F.interpolate(sub, size=new, mode="bilinear", align_corners=False)
        sub = sub.permute(0, 2, 3, 1).reshape(new[0] * new[1], -1)
        table = torch.cat((sub, table[-_NUM_CLS_ENTRIES:]))
    tokens = index.shape[0]
    return table[index.reshape(-1)].reshape(tokens, tokens, -1).permute(2, 0, 1)


class BeitBackbone(nn.Module):
    """BEiT encoder returning four DPT feature maps (strides 4, 8, 16, 32).

    Args:
        timm_name: timm architecture, e.g. ``beit_large_patch16_512``.
        hooks: Indices of the blocks whose outputs are used.
        channels: Channels of the four feature maps.
    """

    def __init__(self, timm_name: str, hooks: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        self.model = timm.create_model(timm_name, pretrained=False)
        if self.model.pos_embed is not None or getattr(self.model, "rel_pos_bias", None) is not None:
            raise ValueError(f"{timm_name}: expected per-block relative position bias only")
        for block in self.model.blocks:
            attn = block.attn
            attn.register_buffer("relative_position_index", attn.relative_position_index, persistent=True)
        self.hooks = tuple(hooks)
        self.out_channels = tuple(channels)
        for level, block in make_vit_reassembles(self.model.embed_dim, channels).items():
            self.add_module(f"act_postprocess{level}", block)
        self._index_cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _grid_index(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """Relative position index of ``grid`` (cached per grid and device)."""
        key = (grid[0], grid[1], str(device))
        index = self._index_cache.get(key)
        if index is None:
            if len(self._index_cache) >= _MAX_CACHED_GRIDS:
                self._index_cache.clear()
            index = gen_relative_position_index(grid).to(device)
            self._index_cache[key] = index
        return index

    @staticmethod
    def _attention(attn: nn.Module, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention of one timm BEiT ``Attention`` with an explicit bias.

        Args:
            attn: The block's attention module (its weights are used).
            x: ``(B, N, C)`` normalised tokens.
            bias: ``(heads, N, N)`` relative-position bias.

        Returns:
            ``(B, N, C)`` tokens.
        """
        batch, tokens, _ = x.shape
        qkv_bias = torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias))  # no key bias
        qkv = F.linear(x, attn.qkv.weight, qkv_bias)
        q, k, v = qkv.reshape(batch, tokens, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0).to(q.dtype))
        return attn.proj(out.transpose(1, 2).reshape(batch, tokens, -1))

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
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat((model.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        index = self._grid_index(grid, tokens.device)
        hooked: list[torch.Tensor] = []
        for block_index, block in enumerate(model.blocks[: self.hooks[-1] + 1]):
            attn = block.attn
            bias = resize_relative_position_bias(attn.relative_position_bias_table, attn.window_size, grid, index)
            tokens = tokens + block.gamma_1 * self._attention(attn, block.norm1(tokens), bias)
            tokens = tokens + block.gamma_2 * block.mlp(block.norm2(tokens))
            if block_index in self.hooks:
                hooked.append(tokens)
        return [
            getattr(self, f"act_postprocess{level}")(level_tokens, grid)
            for level, level_tokens in enumerate(hooked, start=1)
        ]
