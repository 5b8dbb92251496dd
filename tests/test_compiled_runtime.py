"""The compiled CPU runtime across processes: warm cache without torch, nothing written elsewhere.

Plus the pieces it rests on: the numpy upsampling that replaces ``F.interpolate``, the CPU flag
reading behind the bf16 decision and the checkpoint hash memo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from face3d_core.models import cpu_info
from face3d_core.models.compiled_store import checkpoint_sha256
from face3d_core.models.openvino_backend import openvino_available
from face3d_core.models.registry import get_spec
from face3d_core.models.transforms import upsample_depth
from tests.conftest import assert_matches_reference, load_fill_module, load_reference_array
from tests.harness.paths import REPO_ROOT

MODEL = "midas_v21_small_256"

_PREDICT = """
import json, sys
import numpy as np
from face3d_core.images import load_image
from face3d_core.models.estimator import DepthEstimator

estimator = DepthEstimator(sys.argv[1], device="cpu")
depth_rel = estimator.predict(load_image(sys.argv[2]))
np.save(sys.argv[3], depth_rel)
report = estimator.runtime_report()
print(json.dumps({
    "torch": "torch" in sys.modules,
    "timm": "timm" in sys.modules,
    "backend": report.backend,
    "precision": report.precision,
    "deviation_max": report.deviation_max,
}))
"""


def _predict_in_subprocess(home: Path, weights: Path, image: Path, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE3D_", "XDG_"))}
    env.update(HOME=str(home), FACE3D_WEIGHTS_DIR=str(weights), FACE3D_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _PREDICT, MODEL, str(image), str(out)],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_warm_cache_predicts_without_torch_and_writes_only_its_cache(tmp_path, reference_dir):
    """Process 1 exports, compiles and verifies; process 2 finds it all and never imports torch or timm.

    Both run with ``HOME`` in a fresh folder (the cache goes to ``~/.cache/face3d``): nothing
    may appear there outside the face3d cache folder (no ONNX Runtime or OpenVINO telemetry).
    """
    fill = load_fill_module()
    weights = tmp_path / "weights"
    weights.mkdir()
    spec = get_spec(MODEL)
    torch.save(fill.fill_state_dict(spec.build().state_dict()), weights / spec.file_name)
    home = tmp_path / "home"
    home.mkdir()
    image = reference_dir / "pattern_480x640.png"

    cold = _predict_in_subprocess(home, weights, image, tmp_path / "cold.npy")
    assert cold["torch"] is True  # it had to export and verify
    assert (cold["backend"], cold["precision"]) == ("openvino", "fp32")
    assert cold["deviation_max"] <= 1e-3
    cache = home / ".cache" / "face3d"
    stored = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    warm = _predict_in_subprocess(home, weights, image, tmp_path / "warm.npy")
    assert warm == {**cold, "torch": False, "timm": False}
    np.testing.assert_array_equal(np.load(tmp_path / "warm.npy"), np.load(tmp_path / "cold.npy"))
    assert_matches_reference(np.load(tmp_path / "warm.npy"), load_reference_array(MODEL, "pattern.depth"))
    # Nothing exported, converted or verified again.
    assert {p: p.stat().st_mtime_ns for p in stored} == stored
    assert {p for p in cache.rglob("*") if p.is_file()} == set(stored)

    outside = sorted(str(p.relative_to(home)) for p in home.rglob("*") if cache not in (p, *p.parents))
    assert outside == [".cache"], outside


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(("size_in", "size_out"), [((192, 256), (480, 640)), ((37, 49), (500, 13)), ((1, 5), (7, 3))])
def test_upsample_depth_equals_torch_interpolate(mode, align_corners, size_in, size_out):
    depth = np.random.default_rng(0).normal(size=size_in).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(depth)[None, None], size=size_out, mode=mode, align_corners=align_corners)
    got = upsample_depth(depth, size_out, mode=mode, align_corners=align_corners)
    assert got.dtype == np.float32 and got.shape == size_out
    np.testing.assert_allclose(got, expected[0, 0].numpy(), rtol=0, atol=1e-4)


def test_upsample_depth_keeps_constants_and_samples():
    """Known answers: a constant stays constant; at scale 1 the input comes back."""
    flat = np.full((4, 6), 2.5, np.float32)
    np.testing.assert_allclose(upsample_depth(flat, (9, 13)), 2.5, rtol=1e-6)
    ramp = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(upsample_depth(ramp, (3, 4)), ramp, atol=1e-6)
    with pytest.raises(ValueError):
        upsample_depth(ramp, (3, 4), mode="nearest")  # type: ignore[arg-type]


def test_cpu_flags_decide_native_bf16(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    )
    monkeypatch.setattr(cpu_info, "_CPUINFO", fake)
    cpu_info._cpuinfo_fields.cache_clear()
    try:
        assert cpu_info.cpu_name() == "Test CPU 9000"
        assert cpu_info.cpu_has_bf16_flags() and "avx2" in cpu_info.cpu_flags()
        fake.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu avx2 avx512f\n")
        cpu_info._cpuinfo_fields.cache_clear()
        assert cpu_info.cpu_flags_known() and not cpu_info.cpu_has_bf16_flags()
        from face3d_core.models.estimator import native_bf16_available

        assert native_bf16_available() is False  # the flags alone veto it, whatever the runtime says
    finally:
        cpu_info._cpuinfo_fields.cache_clear()


def test_checkpoint_hash_is_remembered_and_renewed(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "net.pt"
    checkpoint.write_bytes(b"first weights")
    import hashlib

    assert checkpoint_sha256(checkpoint) == hashlib.sha256(b"first weights").hexdigest()
    memo = json.loads((tmp_path / "cache" / "compiled" / "checkpoints.json").read_text())
    assert list(memo.values()) == [hashlib.sha256(b"first weights").hexdigest()]
    checkpoint.write_bytes(b"other weights, other size")
    assert checkpoint_sha256(checkpoint) == hashlib.sha256(b"other weights, other size").hexdigest()
    memo = json.loads((tmp_path / "cache" / "compiled" / "checkpoints.json").read_text())
    assert len(memo) == 1  # the old entry of that path is gone
