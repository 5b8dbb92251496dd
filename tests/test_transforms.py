"""Preprocessing equals the official transform (reference net inputs) for every model."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.images import load_image
from face3d_core.models.registry import get_spec, list_models
from face3d_core.models.transforms import network_input_size, prepare_array, prepare_input
from tests.conftest import load_layout, load_reference_array

PATTERN_MODELS = [
    "midas_v21_small_256",
    "dpt_swin2_tiny_256",
    "dpt_levit_224",
    "dpt_hybrid_384",
    "dpt_large_384",
    "dpt_beit_large_512",
]


@pytest.mark.parametrize("model_name", PATTERN_MODELS)
def test_prepare_matches_official_pattern_input(model_name, reference_dir):
    image_rgb = load_image(reference_dir / "pattern_480x640.png")
    expected = load_reference_array(model_name, "pattern.net_input")
    got = prepare_array(image_rgb, get_spec(model_name))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("model_name", list_models())
def test_net_size_agrees_with_layout(model_name, reference_dir):
    assert tuple(load_layout(model_name)["net_size"]) == get_spec(model_name).net_size


@pytest.mark.parametrize(
    ("model_name", "hw", "expected"),
    [
        ("midas_v21_small_256", (480, 640), (192, 256)),  # upper_bound: fits inside 256
        ("midas_v21_small_256", (1000, 700), (256, 192)),
        ("dpt_hybrid_384", (480, 640), (384, 512)),  # minimal: the side scaled least
        ("dpt_swin2_tiny_256", (480, 640), (256, 256)),  # square
        ("depth_anything_v2_vits", (480, 640), (518, 686)),  # lower_bound, multiple of 14
    ],
)
def test_network_input_size(model_name, hw, expected):
    assert network_input_size(*hw, get_spec(model_name)) == expected


def test_prepare_input_is_a_batch_of_one():
    image = np.full((50, 80, 3), 128, np.uint8)
    x = prepare_input(image, get_spec("midas_v21_small_256"))
    assert tuple(x.shape) == (1, 3, 160, 256)
    assert str(x.dtype) == "torch.float32"
