"""MiDaS v2.1 small: official layout, official outputs, memory formats, sizes, autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from face3d_core.models.midas_small import build_midas_v21_small_256
from face3d_core.models.transforms import upsample_depth
from tests.conftest import (
    assert_matches_reference,
    assert_state_dict_matches_layout,
    load_fill_module,
    load_reference_array,
    run_as_the_app,
)

MODEL = "midas_v21_small_256"


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """The bare network (random init), in eval mode."""
    return build_midas_v21_small_256().eval()


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


def test_output_matches_reference(filled_net: torch.nn.Module, reference_input: torch.Tensor) -> None:
    with torch.inference_mode():
        depth = filled_net(reference_input)
    assert depth.dtype == torch.float32
    assert_matches_reference(depth.numpy(), load_reference_array(MODEL, "output"))


def test_pattern_end_to_end_matches_reference(filled_net: torch.nn.Module) -> None:
    net_input = torch.from_numpy(load_reference_array(MODEL, "pattern.net_input"))[None]
    assert net_input.shape == (1, 3, 192, 256)  # "upper_bound" resize of 480x640, not square
    with torch.inference_mode():
        pred = filled_net(net_input)
        depth = torch.nn.functional.interpolate(pred.unsqueeze(1), size=(480, 640), mode="bicubic", align_corners=False)
    assert_matches_reference(depth[0, 0].numpy(), load_reference_array(MODEL, "pattern.depth"))


def test_channels_last_matches_reference(filled_net: torch.nn.Module, reference_input: torch.Tensor) -> None:
    x = reference_input.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        depth_input_only = filled_net(x)
        filled_net.to(memory_format=torch.channels_last)
        try:
            depth_both = filled_net(x)
        finally:
            filled_net.to(memory_format=torch.contiguous_format)
    reference = load_reference_array(MODEL, "output")
    assert_matches_reference(depth_input_only.numpy(), reference)
    assert_matches_reference(depth_both.numpy(), reference)


def test_non_square_batch_gives_input_size(net: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 192, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        depth = net(x)
        single = net(x[1:])
    assert depth.shape == (2, 192, 256)
    assert depth.dtype == torch.float32
    assert bool((depth >= 0).all())
    torch.testing.assert_close(depth[1:], single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 250, 256), (1, 3, 256, 200), (1, 1, 256, 256), (3, 256, 256)])
def test_rejects_unsupported_input(net: torch.nn.Module, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        net(torch.zeros(shape))


@pytest.mark.slow  # this CPU has no native bfloat16 convolutions: depthwise ones take seconds
def test_bfloat16_autocast_runs_close_to_float32(filled_net: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = filled_net(x).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            depth = filled_net(x.contiguous(memory_format=torch.channels_last))
    assert depth.shape == (1, 64, 64)
    assert depth.dtype == torch.float32
    err = np.abs(depth.numpy() - expected)
    assert float(err.mean()) <= 0.1 * float(expected.std())


def test_reference_through_the_app_runtime(filled_net: torch.nn.Module, run_weights_dir) -> None:
    """The same reference inputs through DepthEstimator as the app runs it (auto backend: OpenVINO)."""
    net_input = load_reference_array(MODEL, "input")
    pattern_input = load_reference_array(MODEL, "pattern.net_input")[None]  # 192x256: a second shape
    square, pattern = run_as_the_app(MODEL, filled_net.state_dict(), [net_input, pattern_input], run_weights_dir)
    assert_matches_reference(square, load_reference_array(MODEL, "output"))
    depth = upsample_depth(pattern[0], (480, 640), mode="bicubic", align_corners=False)
    assert_matches_reference(depth, load_reference_array(MODEL, "pattern.depth"))
