"""Every network through the app's own runtime (export, OpenVINO, verification) on the reference inputs.

The reference input and, where the reference has it, the pattern input (a second shape, non-square
for the ViT and BEiT models: the export must follow the input size) go through ``DepthEstimator``
exactly as the app runs it, from a checkpoint file with ``fill.py``'s weights; the outputs must
match the official ones and no silent fallback to PyTorch may happen (:func:`run_as_the_app`).
Depth Anything V2 gets a 518x686 input (480x640 at "lower_bound") compared with PyTorch instead.

The default network, MiDaS small, is checked this way in ``make test``
(:mod:`tests.test_models_midas_small`); here are the others, each a minute or more of export and
compilation and up to several GB: ``make test-models``, one network per process. The networks that
share their code with another (:data:`~tests.harness.model_tiers.SAME_CODE_AS`) are covered by that
one; the app also verifies every runtime against PyTorch per input size before use, whatever the
model (:mod:`face3d_core.models.verified_runtime`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from face3d_core.models.registry import get_spec
from face3d_core.models.transforms import upsample_depth
from tests.conftest import (
    REFERENCE_DIR,
    assert_matches_reference,
    filled_state_dict,
    load_reference_array,
    run_as_the_app,
)
from tests.harness.model_tiers import ONE_COMPILED_AT_A_TIME, SAME_CODE_AS, model_param

NAMES = (
    "dpt_swin2_tiny_256",
    "dpt_levit_224",
    "dpt_hybrid_384",
    "dpt_large_384",
    "dpt_beit_large_512",
    "depth_anything_v2_vits",
)
PATTERN_SIZE = (480, 640)
#: Depth Anything's second shape: 480x640 resized at "lower_bound" to multiples of 14.
DA_WIDE_INPUT = (1, 3, 518, 686)


@pytest.mark.parametrize("name", [model_param(name, lean=False) for name in NAMES])
def test_reference_through_the_app_runtime(name: str, run_weights_dir) -> None:
    assert name not in SAME_CODE_AS
    inputs = [load_reference_array(name, "input")]
    state_dict = filled_state_dict(name)  # the checkpoint's contents: one copy of the weights, no network
    expected_wide = None
    if name == "depth_anything_v2_vits":  # small (25 M parameters): its PyTorch output is the reference
        model = get_spec(name).build()
        model.load_state_dict(state_dict, strict=True)
        wide = torch.randn(*DA_WIDE_INPUT, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected_wide = model.eval()(wide).numpy()
        inputs.append(wide.numpy())
        del model
    elif (REFERENCE_DIR / f"{name}.pattern.net_input.npy").exists():
        inputs.append(load_reference_array(name, "pattern.net_input")[None])
    one_at_a_time = name in ONE_COMPILED_AT_A_TIME  # the largest networks: see model_tiers
    outputs = run_as_the_app(name, state_dict, inputs, run_weights_dir, estimator_per_input=one_at_a_time)
    assert_matches_reference(outputs[0], load_reference_array(name, "output"))
    if expected_wide is not None:
        assert_matches_reference(outputs[1], expected_wide)
    elif len(outputs) > 1:
        depth = upsample_depth(outputs[1][0], PATTERN_SIZE, mode="bicubic", align_corners=False)
        assert_matches_reference(np.asarray(depth), load_reference_array(name, "pattern.depth"))
