"""Every registered network has the official state-dict layout at full size, built with no memory.

Each builder runs under ``torch.device("meta")``: every parameter and buffer gets its shape and dtype
but no storage, so ViT-L and BEiT-L (1.4 GB of float32 each) cost nothing here. The layout (keys,
shapes, dtypes, count) is what decides whether the official checkpoint loads with ``strict=True``.
The numbers the networks compute are checked against the official outputs in the ``test_models_*``
modules (:mod:`tests.harness.model_tiers` says which network in which tier).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from face3d_core.models.registry import get_spec, list_models
from tests.conftest import assert_state_dict_matches_layout


def _build_on_meta(name: str) -> torch.nn.Module:
    module_name, _, builder = get_spec(name).builder.partition(":")
    with torch.device("meta"):
        return getattr(importlib.import_module(module_name), builder)()


@pytest.mark.parametrize("name", list_models())
def test_full_size_layout_is_official(name: str) -> None:
    model = _build_on_meta(name)
    state_dict = model.state_dict()
    assert {tensor.device.type for tensor in state_dict.values()} == {"meta"}, "some weights were allocated"
    assert_state_dict_matches_layout(state_dict, name)


def test_the_layout_check_catches_a_wrong_shape() -> None:
    """The check itself fails on a network with one wrong shape (a 64-channel stem instead of 32)."""
    state_dict = _build_on_meta("midas_v21_small_256").state_dict()
    key = next(key for key, tensor in state_dict.items() if tensor.ndim == 4)
    state_dict[key] = torch.empty((state_dict[key].shape[0] * 2, *state_dict[key].shape[1:]), device="meta")
    with pytest.raises(AssertionError):
        assert_state_dict_matches_layout(state_dict, "midas_v21_small_256")
