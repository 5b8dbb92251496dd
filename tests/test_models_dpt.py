"""The DPT networks (MiDaS v3.0 / v3.1) against the official reference in ``../shared``.

For every model, with one instance per model (module-scoped fixture):

* its ``state_dict()`` has exactly the official keys and shapes (so the official checkpoint
  loads with ``strict=True``);
* with the deterministic weights of ``fill.py``, its output on ``<model>.input.npy`` matches
  ``<model>.output.npy`` within the reference tolerance;
* where the reference has it, the end-to-end pattern (network on the official preprocessing of
  ``pattern_480x640.png``, then bicubic upsampling to 480x640) matches too; for the ViT and BEiT
  models that input is not square (384x512, 512x672), which exercises the resizing of the
  position embeddings / relative-position tables.

Plus input checks, batching, ``channels_last`` and bfloat16 autocast on small inputs.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from face3d_core.models import dpt
from face3d_core.models.registry import get_spec
from tests.conftest import (
    REFERENCE_DIR,
    assert_matches_reference,
    assert_state_dict_matches_layout,
    fill_in_place,
    load_layout,
    load_reference_array,
)
from tests.harness.model_tiers import SAME_CODE_AS, model_param

NAMES = (
    "dpt_swin2_tiny_256",
    "dpt_levit_224",
    "dpt_hybrid_384",
    "dpt_large_384",
    "dpt_beit_large_512",
    "dpt_beit_large_384",
    "dpt_beit_base_384",
    "dpt_swin2_base_384",
    "dpt_swin2_large_384",
)
#: Models that take any input whose sides are multiples of 32 (the others run at a fixed size).
FLEXIBLE = (
    "dpt_hybrid_384",
    "dpt_large_384",
    "dpt_beit_large_512",
    "dpt_beit_large_384",
    "dpt_beit_base_384",
)

#: With the untrained ``fill.py`` weights, the hybrid's ResNet amplifies the bf16 rounding: each
#: bottleneck alone keeps a 0.99997 correlation with float32, the 16 chained ones about 0.9.
BF16_MIN_CORRELATION = {"dpt_hybrid_384": 0.8}

#: The lean ones in ``make test`` (the hybrid and BEiT-B are marked slow), the full-size ones in
#: ``make test-models`` (:mod:`tests.harness.model_tiers`).
MODELS = [
    pytest.param(*param.values, id=param.id, marks=(*param.marks, pytest.mark.slow))
    if param.values[0] in ("dpt_hybrid_384", "dpt_beit_base_384")
    else param
    for param in map(model_param, NAMES)
]

PATTERN_SIZE = (480, 640)


@dataclass
class Case:
    """One built model and what the tests of it share."""

    name: str
    model: torch.nn.Module = field(repr=False)
    _filled: bool = False

    @property
    def layout(self) -> dict:
        """The official layout (skips the test without ``../shared``)."""
        return load_layout(self.name)

    def filled(self) -> torch.nn.Module:
        """The model with the reference weights of ``fill.py`` (loaded once, strictly)."""
        if not self._filled:
            fill_in_place(self.model)
            self._filled = True
        return self.model


@pytest.fixture(scope="module", params=MODELS)
def case(request: pytest.FixtureRequest):
    torch.manual_seed(0)
    built = Case(request.param, getattr(dpt, f"build_{request.param}")())
    yield built
    built.model = None  # free the weights (up to 1.4 GB) before the next model is built
    gc.collect()


def _run(model: torch.nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.as_tensor(x))


def test_registry_builds_these_networks(case: Case) -> None:
    spec = get_spec(case.name)
    assert spec.builder == f"face3d_core.models.dpt:build_{case.name}"


def test_builder_returns_eval_module(case: Case) -> None:
    assert isinstance(case.model, torch.nn.Module)
    assert not case.model.training
    assert all(not m.training for m in case.model.modules())


def test_state_dict_layout_is_official(case: Case) -> None:
    assert_state_dict_matches_layout(case.model.state_dict(), case.name)


def test_output_matches_reference(case: Case) -> None:
    model = case.filled()
    x = load_reference_array(case.name, "input")
    reference = load_reference_array(case.name, "output")
    out = _run(model, x)
    assert out.dtype == torch.float32
    assert_matches_reference(out.numpy(), reference)


def test_pattern_end_to_end_matches_reference(case: Case) -> None:
    model = case.filled()  # skips without ../shared
    if not (REFERENCE_DIR / f"{case.name}.pattern.net_input.npy").exists():
        pytest.skip(f"no pattern reference for {case.name}")
    net_input = load_reference_array(case.name, "pattern.net_input")
    reference = load_reference_array(case.name, "pattern.depth")
    pred = _run(model, net_input[None])
    depth = F.interpolate(pred.unsqueeze(1), size=PATTERN_SIZE, mode="bicubic", align_corners=False)
    assert_matches_reference(depth[0, 0].numpy(), reference)


def test_rejects_unsupported_input_size(case: Case) -> None:
    height, width = get_spec(case.name).net_size
    bad = (height + 16, width) if case.name in FLEXIBLE else (height + 32, width)
    with pytest.raises(ValueError, match="input"):
        _run(case.model, torch.zeros(1, 3, *bad))


def test_channels_last_and_bfloat16_autocast(case: Case) -> None:
    """Small (non-square where allowed) input: same result with channels_last; bf16 stays close."""
    if case.name in SAME_CODE_AS:
        pytest.skip(f"same code path as {SAME_CODE_AS[case.name]}, checked there")
    model = case.filled()
    # bf16 convolutions are very slow on CPUs without AVX512-BF16/AMX: keep the input small.
    size = (64, 96) if case.name in FLEXIBLE else get_spec(case.name).net_size
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 3, *size)).astype(np.float32))
    reference = _run(model, x)
    assert reference.shape == (1, *size)
    channels_last = _run(model, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, reference, rtol=1e-3, atol=1e-3 * float(reference.std()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = _run(model, x.contiguous(memory_format=torch.channels_last))
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert torch.isfinite(low).all()
    corr = np.corrcoef(low.numpy().ravel(), reference.numpy().ravel())[0, 1]
    assert corr > BF16_MIN_CORRELATION.get(case.name, 0.99), corr


@pytest.mark.parametrize("case", ["dpt_swin2_tiny_256"], indirect=True)
def test_batch_matches_reference(case: Case) -> None:
    """A batch of two (Swin-V2 shifted-window masks broadcast over it) gives each image's reference."""
    model = case.filled()
    single = load_reference_array(case.name, "input")[0]
    pattern = load_reference_array(case.name, "pattern.net_input")
    batched = _run(model, np.stack((single, pattern)))
    assert_matches_reference(batched[:1].numpy(), load_reference_array(case.name, "output"))
    depth = F.interpolate(batched[1:].unsqueeze(1), size=PATTERN_SIZE, mode="bicubic", align_corners=False)
    assert_matches_reference(depth[0, 0].numpy(), load_reference_array(case.name, "pattern.depth"))
