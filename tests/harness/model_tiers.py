"""Which network checks run in which test tier.

``make test`` proves, for every registered network, its state-dict layout at full size (built on
PyTorch's ``meta`` device: shapes only, no memory; :mod:`tests.test_model_layouts`), and runs each
network *code path* against the stored official outputs on one representative:

* MiDaS v2.1 small (EfficientNet-Lite), Swin2-T (Swin V2), LeViT, Depth Anything V2 S (DINOv2),
  DPT-Hybrid (the DPT ViT path: reassembly, readout, fusion, position-embedding resize on a
  non-square input) and BEiT-B 384 (the BEiT path: relative-position tables);
* the app's compiled runtime (export, OpenVINO, verification at two input shapes) on the default
  network, MiDaS small.

``make test-models`` runs the full-size checks that need GB of memory or minutes each, one network
per process (:mod:`tests.model_tier`): the reference outputs of ViT-L, BEiT-L 512/384 (its
non-square pattern too) and Swin2-B/L, and every network through the app's runtime at two shapes.
"""

from __future__ import annotations

import pytest

#: Networks whose reference outputs are checked in ``make test`` (one per code family, all small).
LEAN_REFERENCE = (
    "midas_v21_small_256",
    "dpt_swin2_tiny_256",
    "dpt_levit_224",
    "depth_anything_v2_vits",
    "dpt_hybrid_384",
    "dpt_beit_base_384",
)

#: Networks that share their code with another one: checks beyond the reference output (memory
#: formats, bf16, the app's runtime) are run on the one named.
SAME_CODE_AS = {
    "dpt_beit_large_384": "dpt_beit_large_512",
    "dpt_beit_base_384": "dpt_beit_large_512",
    "dpt_swin2_base_384": "dpt_swin2_tiny_256",
    "dpt_swin2_large_384": "dpt_swin2_tiny_256",
}

#: Networks checked through the app's runtime with a new estimator per input size (one compiled
#: network in memory at a time): both sizes compiled in one estimator peak at 7.7 GB (ViT-L) and
#: 12.7 GB (BEiT-L 512). The change of input size inside one estimator is checked on the others.
ONE_COMPILED_AT_A_TIME = frozenset({"dpt_large_384", "dpt_beit_large_512"})

#: Networks allowed more than the tier's budget, in GB, and why (``tests.model_tier`` prints it).
BUDGET_EXCEPTIONS_GB = {
    # OpenVINO folds each of BEiT-L's 24 relative-position biases into a (16, 1025, 1025) float32
    # constant while compiling (1.6 GB at 512x512), on top of the weights held by PyTorch, the ONNX
    # export and the compiled network: 8.1 GB measured with one compiled network at a time (12.7 GB
    # with both input sizes in one estimator).
    "dpt_beit_large_512": 9.0,
    # ViT-L through the app's runtime, one compiled network at a time: 5.95 GB measured (7.66 GB
    # with both input sizes in one estimator); PyTorch's ONNX exporter holds a second copy of the
    # 1.3 GB of weights while it writes the file. The margin covers the allocator's variation.
    "dpt_large_384": 6.5,
}

#: The option of :mod:`tests.conftest` that keeps one network's ``models`` tests (the tier runner sets it).
MODEL_OPTION = "--face3d-model"


def model_param(name: str, *, lean: bool | None = None):
    """A ``pytest.param`` for network ``name``: in ``make test`` when lean, else marked ``models``.

    Args:
        name: Registry name (also the test id).
        lean: Override; default: ``name in LEAN_REFERENCE``.
    """
    in_lean_tier = name in LEAN_REFERENCE if lean is None else lean
    return pytest.param(name, id=name, marks=() if in_lean_tier else (pytest.mark.models,))
