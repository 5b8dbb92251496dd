"""The whole official pipeline through DepthEstimator: photo -> preprocess -> network -> upsample.

With ``fill.py`` weights saved as a real checkpoint file and loaded through the weights
resolution (``FACE3D_WEIGHTS_DIR``, ``torch.load(weights_only=True)``), the estimator's
prediction for ``pattern_480x640.png`` must equal the official end-to-end result.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from face3d_core.errors import WeightsUnavailableError
from face3d_core.images import load_image
from face3d_core.models.estimator import (
    DepthEstimator,
    clear_estimators,
    get_estimator,
    resolve_precision,
    select_device,
)
from face3d_core.models.registry import get_spec
from tests.conftest import assert_matches_reference, load_fill_module, load_reference_array

FAST = ["midas_v21_small_256", "dpt_swin2_tiny_256", "dpt_levit_224"]
SLOW = ["dpt_hybrid_384", "dpt_large_384", "dpt_beit_large_512"]


def _write_checkpoint(model_name: str, folder) -> None:
    fill = load_fill_module()
    spec = get_spec(model_name)
    torch.save(fill.fill_state_dict(spec.build().state_dict()), folder / spec.file_name)


@pytest.fixture()
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    return tmp_path


def _check_pattern(model_name: str, weights_dir, reference_dir) -> DepthEstimator:
    _write_checkpoint(model_name, weights_dir)
    est = DepthEstimator(model_name, device="cpu", precision="fp32")
    depth_rel = est.predict(load_image(reference_dir / "pattern_480x640.png"))
    assert depth_rel.dtype == np.float32 and depth_rel.shape == (480, 640)
    assert_matches_reference(depth_rel, load_reference_array(model_name, "pattern.depth"))
    return est


@pytest.mark.parametrize("model_name", FAST)
def test_pipeline_matches_official(model_name, weights_dir, reference_dir):
    _check_pattern(model_name, weights_dir, reference_dir)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", SLOW)
def test_pipeline_matches_official_large(model_name, weights_dir, reference_dir):
    _check_pattern(model_name, weights_dir, reference_dir)


@pytest.mark.parametrize(("backend", "accelerate"), [("torch", False), ("torch", True), ("onnxruntime", True)])
def test_every_backend_matches_official(backend, accelerate, weights_dir, reference_dir):
    _write_checkpoint("midas_v21_small_256", weights_dir)
    est = DepthEstimator("midas_v21_small_256", device="cpu", precision="fp32", accelerate=accelerate, backend=backend)
    assert est.backend == backend
    depth_rel = est.predict(load_image(reference_dir / "pattern_480x640.png"))
    assert est.backend == backend  # no silent fallback
    assert_matches_reference(depth_rel, load_reference_array("midas_v21_small_256", "pattern.depth"))


def test_onnx_export_is_cached_on_disk(weights_dir, reference_dir):
    _write_checkpoint("midas_v21_small_256", weights_dir)
    image = load_image(reference_dir / "pattern_480x640.png")
    DepthEstimator("midas_v21_small_256", device="cpu", backend="onnxruntime").predict(image)
    exported = list((weights_dir / "cache" / "onnx").glob("midas_v21_small_256-*.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    DepthEstimator("midas_v21_small_256", device="cpu", backend="onnxruntime").predict(image)
    assert exported[0].stat().st_mtime_ns == mtime  # reused, not exported again


def test_onnx_network_falls_back_when_it_deviates():
    from face3d_core.models.onnx_backend import VerifiedOnnxNetwork

    class WrongSession:  # an ONNX session whose answer is off: must be caught, never served
        def run(self, outputs, feeds):
            return [np.zeros((1, 8, 8), np.float32) + 5.0]

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Flatten(0, 1))
    wrapped = VerifiedOnnxNetwork(WrongSession(), net)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        np.testing.assert_allclose(wrapped(x).numpy(), expected.numpy())
        np.testing.assert_allclose(wrapped(x).numpy(), expected.numpy())  # shape remembered as bad


def test_bf16_on_cpu_stays_close(weights_dir):
    """bf16 is optional on the CPU (slow where it is emulated): small input, same depth ordering."""
    _write_checkpoint("midas_v21_small_256", weights_dir)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fp32 = DepthEstimator("midas_v21_small_256", device="cpu", precision="fp32", backend="torch").infer(x)
    bf16 = DepthEstimator("midas_v21_small_256", device="cpu", precision="bf16").infer(x)
    corr = np.corrcoef(fp32.numpy().ravel(), bf16.numpy().ravel())[0, 1]
    assert bf16.dtype == torch.float32 and corr > 0.98, corr


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
    monkeypatch.setenv("FACE3D_DEVICE", "cpu")
    assert select_device("auto").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp16", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError):
        resolve_precision("int4", cpu)
