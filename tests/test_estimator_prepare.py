"""Start-up preparation of the compiled runtime (``DepthEstimator.prepare``) and its memory bound.

Two real processes share one cache folder: the first prepares a fresh cache (export, verdicts
against PyTorch, compiled models), the second prepares from it without torch and then predicts
a real face photo whose crop has one of the prepared sizes, still without torch. A process keeps
at most ``MAX_COMPILED`` compiled sizes in memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from face3d_core.models.openvino_backend import MAX_COMPILED, openvino_available
from face3d_core.models.registry import get_spec
from face3d_core.models.transforms import face_crop_input_sizes
from tests.harness.paths import MODEL, PHOTO, REPO_ROOT, YUNET_PATH, require

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not openvino_available(), reason="openvino not installed")]

_PREPARE = """
import json, sys
from face3d_core.models.estimator import DepthEstimator
from face3d_core.models.transforms import face_crop_input_sizes

estimator = DepthEstimator(sys.argv[1], device="cpu")
sizes = [tuple(s) for s in json.loads(sys.argv[2])] if sys.argv[2] != "default" else None
reports = estimator.prepare(sizes)
out = {
    "prepared": [[r.backend, r.precision, list(r.input_shape)] for r in reports],
    "torch_after_prepare": "torch" in sys.modules,
    "compiled": [list(shape) for shape, _ in estimator.load().runtime.compiled()],
    "report_after_prepare": estimator.runtime_report() is not None,
}
if len(sys.argv) > 3:
    from face3d_core.images import load_image
    from face3d_core.pipeline import compute_face_depth

    face = compute_face_depth(load_image(sys.argv[3]), model_name=sys.argv[1], face_index=0, estimator=estimator)
    out["predicted_shape"] = list(estimator.runtime_report().input_shape)
    out["torch_after_predict"] = "torch" in sys.modules or "timm" in sys.modules
print(json.dumps(out))
"""


def _run(tmp_path: Path, weights: Path, sizes: str, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE3D_", "XDG_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        FACE3D_CACHE_DIR=str(tmp_path / "cache"),
        FACE3D_WEIGHTS_DIR=str(weights),
        FACE3D_OFFLINE="1",
        FACE3D_YUNET_PATH=str(YUNET_PATH),
        PYTHONPATH=str(REPO_ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE, MODEL, sizes, *extra],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_prepare_verifies_once_per_cache_and_later_processes_need_no_torch(tmp_path, fill_weights):
    require(PHOTO, YUNET_PATH)
    (tmp_path / "home").mkdir()
    common = face_crop_input_sizes(get_spec(MODEL))
    # a fresh cache: one size more than a process keeps compiled, least common first
    first = _run(tmp_path, fill_weights, json.dumps(common[: MAX_COMPILED + 1]))
    assert first["torch_after_prepare"]  # verdicts against PyTorch were needed
    assert [p[2][2:] for p in first["prepared"]] == [list(s) for s in reversed(common[: MAX_COMPILED + 1])]
    assert all(p[:2] == ["openvino", "fp32"] for p in first["prepared"])
    assert [c[2:] for c in first["compiled"]] == [list(s) for s in reversed(common[:MAX_COMPILED])]  # bounded
    assert not first["report_after_prepare"]  # a preparation is not a prediction
    # a later process: the default sizes are verified and compiled before, torch is never imported
    second = _run(tmp_path, fill_weights, "default", str(PHOTO))
    assert len(second["prepared"]) == MAX_COMPILED and not second["torch_after_prepare"]
    assert tuple(second["predicted_shape"][2:]) in common[:MAX_COMPILED]
    assert not second["torch_after_predict"]
