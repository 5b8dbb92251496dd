"""Depth Anything V2 Small: official layout, official output, position embedding, sizes, autocast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face3d_core.models.depth_anything import build_depth_anything_v2_vits
from tests.conftest import (
    assert_matches_reference,
    assert_state_dict_matches_layout,
    load_fill_module,
    load_reference_array,
)

MODEL = "depth_anything_v2_vits"


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """The bare network (random init), in eval mode."""
    return build_depth_anything_v2_vits().eval()


@pytest.fixture(scope="module")
def filled_net(net: torch.nn.Module) -> torch.nn.Module:
    """The network with the reference weights of ``fill.py`` (strict load); skips without ../shared."""
    fill = load_fill_module()
    net.load_state_dict(fill.fill_state_dict(net.state_dict()), strict=True)
    return net


@pytest.fixture(scope="module")
def reference_input() -> torch.Tensor:
    return torch.from_numpy(load_reference_array(MODEL, "input"))


def test_state_dict_matches_official_layout(net: torch.nn.Module) -> None:
    assert_state_dict_matches_layout(net.state_dict(), MODEL)


@pytest.mark.slow
def test_output_matches_reference(filled_net: torch.nn.Module, reference_input: torch.Tensor) -> None:
    with torch.inference_mode():
        depth = filled_net(reference_input)
    assert depth.dtype == torch.float32
    reference = load_reference_array(MODEL, "output")
    assert_matches_reference(depth.numpy(), reference)
    # The final ReLU zeroes most of this output: the zeros must be the same ones.
    assert abs(float((depth.numpy() == 0).mean()) - float((reference == 0).mean())) < 1e-3


@pytest.mark.slow
def test_channels_last_matches_reference(filled_net: torch.nn.Module, reference_input: torch.Tensor) -> None:
    with torch.inference_mode():
        depth = filled_net(reference_input.contiguous(memory_format=torch.channels_last))
    assert_matches_reference(depth.numpy(), load_reference_array(MODEL, "output"))


@pytest.mark.slow
def test_lower_bound_size_gives_input_size(filled_net: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 518, 686, generator=torch.Generator().manual_seed(0))  # 480x640 at "lower_bound"
    with torch.inference_mode():
        depth = filled_net(x)
    assert depth.shape == (1, 518, 686)
    assert depth.dtype == torch.float32
    assert bool(torch.isfinite(depth).all()) and bool((depth >= 0).all())


def _keys_cubic_resample(values: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """1-D bicubic resampling as DINOv2 asks of ``F.interpolate``: Keys kernel (A=-0.75),
    half-pixel centres, source step ``1 / scale``, edge samples repeated."""

    def kernel(d: float) -> float:
        a, d = -0.75, abs(d)
        if d <= 1:
            return ((a + 2) * d - (a + 3)) * d * d + 1
        if d < 2:
            return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return 0.0

    out = np.empty(out_len)
    for i in range(out_len):
        src = (i + 0.5) / scale - 0.5
        base = math.floor(src)
        taps = range(base - 1, base + 3)
        out[i] = sum(kernel(src - k) * values[min(max(k, 0), len(values) - 1)] for k in taps)
    return out


def test_position_embedding_follows_dinov2_rule(net: torch.nn.Module) -> None:
    """For a 37x49 token grid (518x686 input) the 37x37 table is resized with the scale
    factor ``(grid + 0.1) / 37`` (not to the target size), rows included."""
    encoder = net.pretrained
    rng = np.random.default_rng(0)
    row_values, col_values = rng.normal(size=37), rng.normal(size=37)
    table = (row_values[:, None, None] + col_values[None, :, None]) * np.ones((1, 1, 384))
    cls_value = rng.normal(size=384)
    probe = np.concatenate([cls_value[None], table.reshape(-1, 384)])[None]
    saved = encoder.pos_embed.detach().clone()
    try:
        with torch.no_grad():
            encoder.pos_embed.copy_(torch.from_numpy(probe).float())
            resized = encoder.interpolate_pos_embed(1 + 37 * 49, 518, 686).clone()
            unchanged = encoder.interpolate_pos_embed(1 + 37 * 37, 518, 518)
    finally:
        with torch.no_grad():
            encoder.pos_embed.copy_(saved)
    assert resized.shape == (1, 1 + 37 * 49, 384)
    np.testing.assert_allclose(resized[0, 0].numpy(), cls_value, rtol=1e-6)
    # Separable input and kernels summing to one: output = resampled rows + resampled columns.
    expected = (
        _keys_cubic_resample(row_values, 37, 37.1 / 37)[:, None]
        + _keys_cubic_resample(col_values, 49, 49.1 / 37)[None, :]
    )
    grid = resized[0, 1:].reshape(37, 49, 384).numpy()
    np.testing.assert_allclose(grid[..., 0], expected, atol=1e-5)
    np.testing.assert_allclose(grid[..., 383], expected, atol=1e-5)
    assert unchanged is encoder.pos_embed  # the 518x518 grid is used as stored


@pytest.mark.parametrize("shape", [(1, 3, 518, 520), (1, 3, 500, 518), (1, 4, 518, 518), (3, 518, 518)])
def test_rejects_unsupported_input(net: torch.nn.Module, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        net(torch.zeros(shape))


def test_bfloat16_autocast_runs_close_to_float32(filled_net: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = filled_net(x).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            depth = filled_net(x.contiguous(memory_format=torch.channels_last))
    assert depth.shape == (1, 70, 98)
    assert depth.dtype == torch.float32
    assert bool((depth >= 0).all())
    err = np.abs(depth.numpy() - expected)
    assert float(err.mean()) <= 0.1 * float(expected.std())
