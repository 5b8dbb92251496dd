"""The whole official pipeline through DepthEstimator: photo -> preprocess -> network -> upsample.

With ``fill.py`` weights saved as a real checkpoint file and loaded through the weights
resolution (``FACE3D_WEIGHTS_DIR``, ``torch.load(weights_only=True)``), the estimator's
prediction for ``pattern_480x640.png`` must equal the official end-to-end result, on the
runtime the app uses (the auto backend: OpenVINO where installed) and on every other backend.
"""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest
import torch

from face3d_core.errors import WeightsUnavailableError
from face3d_core.images import load_image
from face3d_core.models.compiled_store import CompiledStore
from face3d_core.models.estimator import (
    DepthEstimator,
    clear_estimators,
    get_estimator,
    native_bf16_available,
    precision_choices,
    resolve_precision,
    select_device,
)
from face3d_core.models.onnx_backend import onnxruntime_available
from face3d_core.models.openvino_backend import openvino_available
from face3d_core.models.registry import get_spec
from face3d_core.models.verified_runtime import BF16_TOLERANCE, VerifiedNetwork
from tests.conftest import app_cpu_backend, assert_matches_reference, filled_state_dict, load_reference_array
from tests.harness.model_tiers import model_param

#: The whole ``predict`` path (preprocessing, the app's runtime, upsampling) against the official
#: end-to-end pattern result: the default network in ``make test``, the other networks with a
#: pattern reference in ``make test-models`` (each is an export and a compilation). ViT-L and BEiT-L
#: are left out: their preprocessing is checked against the official net input (``test_transforms``)
#: and their network through the app's runtime on the reference inputs
#: (``test_models_app_runtime``), which together are this path.
PIPELINE_MODELS = [
    model_param(name, lean=name == "midas_v21_small_256")
    for name in ("midas_v21_small_256", "dpt_swin2_tiny_256", "dpt_levit_224", "dpt_hybrid_384")
]


def _write_checkpoint(model_name: str, folder) -> None:
    torch.save(filled_state_dict(model_name), folder / get_spec(model_name).file_name)


def _check_pattern(model_name: str, weights_dir, reference_dir) -> DepthEstimator:
    _write_checkpoint(model_name, weights_dir)
    est = DepthEstimator(model_name, device="cpu")  # as the app runs it: auto backend, default precision
    depth_rel = est.predict(load_image(reference_dir / "pattern_480x640.png"))
    assert depth_rel.dtype == np.float32 and depth_rel.shape == (480, 640)
    assert_matches_reference(depth_rel, load_reference_array(model_name, "pattern.depth"))
    report = est.runtime_report()
    assert (report.backend, report.precision) == (app_cpu_backend(model_name), "fp32"), report
    return est


@pytest.mark.parametrize("model_name", PIPELINE_MODELS)
def test_pipeline_matches_official(model_name, run_weights_dir, reference_dir):
    """In ``make test-models`` this follows the network's app-runtime test and uses its compiled models."""
    _check_pattern(model_name, run_weights_dir, reference_dir)


BACKENDS = [
    pytest.param("torch", False, id="torch-plain"),
    pytest.param("torch", True, id="torch-accelerated"),
    pytest.param(
        "onnxruntime",
        True,
        id="onnxruntime",
        marks=pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed"),
    ),
    pytest.param(
        "openvino",
        True,
        id="openvino",
        marks=pytest.mark.skipif(not openvino_available(), reason="openvino not installed"),
    ),
]


@pytest.mark.parametrize(("backend", "accelerate"), BACKENDS)
def test_every_backend_matches_official(backend, accelerate, run_weights_dir, reference_dir):
    # the run's shared folder: an export made earlier in the run by the same code is reused (the
    # export itself and its storage are checked by test_export_and_verification_are_stored_once)
    _write_checkpoint("midas_v21_small_256", run_weights_dir)
    est = DepthEstimator("midas_v21_small_256", device="cpu", precision="fp32", accelerate=accelerate, backend=backend)
    assert est.backend == backend
    depth_rel = est.predict(load_image(reference_dir / "pattern_480x640.png"))
    assert est.backend == backend  # no silent fallback
    assert est.runtime_report().backend == backend
    assert_matches_reference(depth_rel, load_reference_array("midas_v21_small_256", "pattern.depth"))


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_export_and_verification_are_stored_once(backend, weights_dir, reference_dir):
    """A second estimator (as a second process would) reuses the export and the verification."""
    if not (openvino_available() if backend == "openvino" else onnxruntime_available()):
        pytest.skip(f"{backend} not installed")
    _write_checkpoint("midas_v21_small_256", weights_dir)
    image = load_image(reference_dir / "pattern_480x640.png")
    first = DepthEstimator("midas_v21_small_256", device="cpu", backend=backend)
    depth_first = first.predict(image)
    compiled = weights_dir / "cache" / "compiled" / "midas_v21_small_256"
    (build,) = compiled.iterdir()
    (runtime_folder,) = build.glob(f"{backend}-*")
    model_file = runtime_folder / ("model.xml" if backend == "openvino" else "model.onnx")
    (record_file,) = (runtime_folder / "verified").glob("fp32-1x3x192x256.json")
    stamps = {path: path.stat().st_mtime_ns for path in (model_file, record_file)}
    record = json.loads(record_file.read_text())
    assert record["accepted"] is True and record["deviation_max"] <= 1e-3
    assert (
        record["checkpoint_sha256"] == hashlib.sha256((weights_dir / "midas_v21_small_256.pt").read_bytes()).hexdigest()
    )

    second = DepthEstimator("midas_v21_small_256", device="cpu", backend=backend)
    np.testing.assert_array_equal(second.predict(image), depth_first)
    assert second._torch_net is None  # neither exported nor verified again: no PyTorch network built
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    if backend == "openvino":
        assert any((runtime_folder / "blobs" / "fp32").iterdir())  # OpenVINO's compiled-model cache


class _OffRuntime:
    """A runtime whose bf16 answer is off and whose fp32 answer is right (or off too)."""

    name = "fake"
    version = "1"

    def __init__(self, net, fp32_ok: bool) -> None:
        self.net, self.fp32_ok, self.calls = net, fp32_ok, []

    def run(self, x, precision):
        self.calls.append(precision)
        with torch.no_grad():
            right = self.net(torch.from_numpy(x)).numpy()
        return right if (precision == "fp32" and self.fp32_ok) else right + 5.0 * right.std() + 1.0


@pytest.mark.parametrize("fp32_ok", [True, False])
def test_a_deviating_runtime_is_never_served(fp32_ok, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Flatten(0, 1))
    x = torch.randn(1, 3, 8, 8).numpy()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    reference_calls = []

    def reference(batch):
        reference_calls.append(batch.shape)
        with torch.no_grad():
            return net(torch.from_numpy(batch)).numpy()

    store = CompiledStore("fake", "0" * 64, root=tmp_path)
    runtime = _OffRuntime(net, fp32_ok)
    wrapped = VerifiedNetwork(runtime, store, ("bf16", "fp32"), reference)
    np.testing.assert_allclose(wrapped(x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wrapped(x), expected, rtol=1e-6, atol=1e-6)  # the choice is remembered
    assert wrapped.last_report.backend == ("fake" if fp32_ok else "torch")
    assert wrapped.last_report.precision == "fp32"
    assert store.verification("fake", "1", "bf16", x.shape)["accepted"] is False
    assert store.verification("fake", "1", "fp32", x.shape)["accepted"] is fp32_ok

    # Another process: the records decide, nothing is verified again, bf16 is not even run.
    runtime_again = _OffRuntime(net, fp32_ok)
    again = VerifiedNetwork(runtime_again, store, ("bf16", "fp32"), reference)
    calls_before = len(reference_calls)
    np.testing.assert_allclose(again(x), expected, rtol=1e-6, atol=1e-6)
    assert runtime_again.calls == (["fp32"] if fp32_ok else [])
    assert len(reference_calls) == calls_before + (0 if fp32_ok else 1)


def test_bf16_is_native_or_refused(weights_dir):
    """Fast mode runs native bf16 with its deviation measured, or falls back to fp32 (never emulated)."""
    _write_checkpoint("midas_v21_small_256", weights_dir)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fp32 = DepthEstimator("midas_v21_small_256", device="cpu", precision="fp32", backend="torch").infer(x)
    fast = DepthEstimator("midas_v21_small_256", device="cpu", precision="bf16")
    out = fast.infer(x)
    assert out.dtype == torch.float32
    report = fast.runtime_report()
    if not native_bf16_available():
        assert fast.precision == "fp32" and report.precision == "fp32"
        assert "bf16" not in precision_choices("cpu")
        return
    assert precision_choices("cpu") == {"fp32": "Exact (fp32)", "bf16": "Fast (bf16)"}
    assert fast.precision == "bf16"
    if report.backend == "openvino":
        assert report.precision == "bf16", report  # accepted at this shape
        assert 0 < report.deviation_mean <= BF16_TOLERANCE.mean_dev
        measured = np.abs(out.numpy() - fp32.numpy())
        spread = float(fp32.std())
        assert report.deviation_max == pytest.approx(float(measured.max()) / spread, rel=1e-3)
        assert "bf16" in report.describe()
    corr = np.corrcoef(fp32.numpy().ravel(), out.numpy().ravel())[0, 1]
    assert corr > 0.98, corr


def test_missing_weights_is_a_clear_error(weights_dir):
    est = DepthEstimator("midas_v21_small_256", device="cpu")
    with pytest.raises(WeightsUnavailableError) as info:
        est.predict(np.zeros((64, 64, 3), np.uint8))
    message = str(info.value)
    assert "midas_v21_small_256.pt" in message and "github.com/isl-org/MiDaS" in message


def test_wrong_checkpoint_is_a_clear_error(weights_dir):
    spec = get_spec("midas_v21_small_256")
    torch.save({"some.weight": torch.zeros(3)}, weights_dir / spec.file_name)
    with pytest.raises(WeightsUnavailableError, match="does not fit"):
        DepthEstimator(spec.name, device="cpu").load()


def test_loaded_once_and_thread_safe(weights_dir, reference_dir, monkeypatch):
    _write_checkpoint("midas_v21_small_256", weights_dir)
    spec = get_spec("midas_v21_small_256")
    builds = []
    original = type(spec).build

    def counting_build(self):
        builds.append(self.name)
        return original(self)

    monkeypatch.setattr(type(spec), "build", counting_build)
    clear_estimators()
    est = get_estimator("midas_v21_small_256", device="cpu", precision="fp32")
    assert get_estimator("midas_v21_small_256", device="cpu", precision="fp32") is est
    image = load_image(reference_dir / "pattern_480x640.png")
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.append(est.predict(image))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert builds == ["midas_v21_small_256"]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-5, atol=1e-5)


def test_device_and_precision_selection(monkeypatch):
    assert select_device("cpu").type == "cpu"
    assert str(select_device("cuda:1")) == "cuda:1"
    monkeypatch.setenv("FACE3D_DEVICE", "cpu")
    assert select_device("auto").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp16", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError):
        resolve_precision("int4", cpu)
