"""Shared fixtures: the read-only reference material in ``../shared``, test servers and small helpers.

Tests that need ``../shared`` skip cleanly where it is absent (for example in a clone
without the shared folder beside it).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest

from tests.harness.model_tiers import MODEL_OPTION
from tests.harness.paths import FACES_DIR, FILL_PY, MODEL, PHOTO, REFERENCE_DIR, SCANS_DIR, YUNET_PATH, require
from tests.harness.processes import install_termination_handlers
from tests.harness.servers import fake_network_server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        MODEL_OPTION,
        action="append",
        default=[],
        metavar="NAME",
        help="run only this network's `models` tests (repeatable; `make test-models` runs one network per process)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A run ended by SIGTERM/SIGHUP (a CI time limit, `timeout make test`) stops the servers it started.
    install_termination_handlers()


def _network_names(item: pytest.Item) -> set[str]:
    callspec = getattr(item, "callspec", None)
    return {value for value in callspec.params.values() if isinstance(value, str)} if callspec else set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full-size network tests (marker ``models``) and system runs (``system``) run only when asked for.

    ``-m system`` (any marker expression naming ``system``) asks for the system runs: load,
    scale-out, restarts in a container, the worst file's memory, every window size
    (``make test-system``).

    ``-m models`` (or any marker expression naming ``models``) or ``--face3d-model NAME`` asks for
    them; with ``--face3d-model`` only the named networks' ``models`` tests are kept. Plain
    ``pytest`` and ``make test`` leave them out (``make test-models`` runs them).
    """
    wanted = set(config.getoption(MODEL_OPTION))
    markexpr = config.getoption("markexpr") or ""
    asked = bool(wanted) or "models" in markexpr
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("system") is not None and "system" not in markexpr:
            drop.append(item)  # multi-process system runs: `make test-system` (-m system)
        elif item.get_closest_marker("models") is None:
            keep.append(item)
        elif asked and (not wanted or wanted & _network_names(item)):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _require(path: Path) -> Path:
    require(path)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder with ``<model>.layout.json`` / ``.output.npy`` ...; skips if absent."""
    return _require(REFERENCE_DIR)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """Folder with the 20 real face photos; skips if absent."""
    return _require(FACES_DIR)


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    """The YuNet ONNX face detector; skips if absent."""
    return _require(YUNET_PATH)


@pytest.fixture(scope="session")
def scene_photos(tmp_path_factory) -> list[tuple[Path, Path]]:
    """Two photos with known depth: the Lee Perry-Smith scan rendered facing the camera and turned 20°.

    Each is ``(JPEG with EXIF focal length, relative inverse depth .npy)`` (see
    :mod:`tests.harness.scenes`); skips where ``../shared/data/3d`` is absent.
    """
    require(SCANS_DIR / "lee_perry_smith")
    from tests.harness.scenes import write_scene

    folder = tmp_path_factory.mktemp("scenes")
    return [write_scene(SCANS_DIR, folder, yaw_deg=yaw) for yaw in (0.0, 20.0)]


@pytest.fixture(scope="session")
def fill_weights(tmp_path_factory) -> Path:
    """A weights folder holding a real ``midas_v21_small_256`` checkpoint with ``fill.py``'s weights.

    The real network code runs on it, offline (no download). Made once per test session; skips
    where ``../shared/reference/fill.py`` is absent.
    """
    require(FILL_PY)
    from tests.doubles import write_fill_checkpoint

    folder = tmp_path_factory.mktemp("fill-weights")
    write_fill_checkpoint(folder, FILL_PY, MODEL)
    return folder


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    """A running :func:`~tests.harness.servers.fake_network_server`, one per test module.

    Its folder (working folder, HOME, TMPDIR, log) is ``fake_server.cache_dir.parent``.
    """
    require(PHOTO, YUNET_PATH)
    root = tmp_path_factory.mktemp("fake-server")
    server = fake_network_server(root)
    try:
        yield server.start()
    finally:
        server.stop()


def load_fill_module():
    """Import ``../shared/reference/fill.py`` (deterministic weights); skips if absent."""
    from tests.doubles import load_fill_module as load_from

    return load_from(_require(FILL_PY))


def filled_state_dict(model_name: str) -> dict:
    """``fill.py``'s weights for a registered network, built with no network in memory; skips if absent."""
    from tests.doubles import filled_state_dict as fill_from

    return fill_from(_require(FILL_PY), model_name)


def fill_in_place(network) -> None:
    """Give a built network ``fill.py``'s weights, tensor by tensor; skips if absent."""
    from tests.doubles import fill_in_place as fill_with

    fill_with(network, _require(FILL_PY))


def load_layout(model_name: str) -> dict:
    """Return the official layout dict (keys ``state_dict``, ``net_size`` ...) of one model."""
    return json.loads(_require(REFERENCE_DIR / f"{model_name}.layout.json").read_text())


def load_reference_array(model_name: str, suffix: str) -> np.ndarray:
    """Load ``<model>.<suffix>.npy`` from the reference folder (e.g. suffix ``output``)."""
    return np.load(_require(REFERENCE_DIR / f"{model_name}.{suffix}.npy"))


def assert_state_dict_matches_layout(state_dict: dict, model_name: str) -> None:
    """Assert the same keys, shapes and dtypes as the official checkpoint (strict-load compatible)."""
    layout = load_layout(model_name)
    expected = {key: (tuple(shape), dtype) for key, (shape, dtype) in layout["state_dict"].items()}
    actual = {key: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in state_dict.items()}
    assert sorted(set(expected) - set(actual)) == [], "missing official keys"
    assert sorted(set(actual) - set(expected)) == [], "keys the official checkpoint lacks"
    mismatched = {key: (actual[key], expected[key]) for key in expected if actual[key] != expected[key]}
    assert mismatched == {}
    assert len(actual) == layout["tensors"]


def assert_matches_reference(actual: np.ndarray, reference: np.ndarray) -> None:
    """Apply the reference README's tolerance: max <= 1e-2 std, mean <= 1e-3 std."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    std = float(reference.std())
    err = np.abs(actual - reference)
    assert err.max() <= 1e-2 * std, f"max|err| {err.max():.3e} > 1e-2*std ({1e-2 * std:.3e})"
    assert err.mean() <= 1e-3 * std, f"mean|err| {err.mean():.3e} > 1e-3*std ({1e-3 * std:.3e})"


def _use_weights_dir(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    for name in ("FACE3D_PRECISION", "FACE3D_BACKEND", "FACE3D_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder (``FACE3D_WEIGHTS_DIR``) with a fresh cache folder inside, downloads off.

    The precision, backend and device variables are cleared so the estimator runs as the app
    does by default.
    """
    return _use_weights_dir(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def _run_weights_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("run-weights")


@pytest.fixture()
def run_weights_dir(_run_weights_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Like :func:`weights_dir`, but one folder for the whole test run.

    Tests of one network then share its checkpoint and its compiled models: the app exports and
    verifies a network once per input shape, as it does for users (``make test-models`` runs one
    network per process, so a process holds one network's files).
    """
    return _use_weights_dir(_run_weights_folder, monkeypatch)


def app_cpu_backend(model_name: str) -> str:
    """The runtime the app uses for ``model_name`` on the CPU in fp32, from what is installed."""
    from face3d_core.models.onnx_backend import onnxruntime_available
    from face3d_core.models.openvino_backend import openvino_available
    from face3d_core.models.registry import get_spec

    runtimes = get_spec(model_name).cpu_runtimes
    if "openvino" in runtimes and openvino_available():
        return "openvino"
    if "onnxruntime" in runtimes and onnxruntime_available():
        return "onnxruntime"
    return "torch"


def run_as_the_app(
    model_name: str,
    state_dict: dict,
    net_inputs: list[np.ndarray],
    folder: Path,
    *,
    estimator_per_input: bool = False,
) -> list[np.ndarray]:
    """Run network inputs through ``DepthEstimator`` as the app does on the CPU (auto backend, fp32).

    ``state_dict`` is saved as the model's checkpoint in ``folder`` (the ``weights_dir`` fixture)
    and loaded through the weights lookup; the dict is emptied once saved, so that where it held the
    last references to the weights they are freed before the app loads its own copy. Asserts that
    every input ran on the app's runtime (no silent fallback to PyTorch).

    Args:
        model_name: Registry name.
        state_dict: The network's weights.
        net_inputs: ``(1, 3, h, w) float32`` normalised inputs.
        folder: The weights folder.
        estimator_per_input: A new ``DepthEstimator`` for each input, the previous one freed first
            (one compiled network in memory at a time, for the largest networks); by default one
            estimator runs every input, as a server does when the input size changes.

    Returns:
        ``(1, h, w) float32`` outputs, one per input.
    """
    import torch

    from face3d_core.models.estimator import DepthEstimator
    from face3d_core.models.registry import get_spec

    torch.save(state_dict, folder / get_spec(model_name).file_name)
    state_dict.clear()
    gc.collect()
    estimator = None
    outputs = []
    for net_input in net_inputs:
        if estimator is None or estimator_per_input:
            estimator = None
            gc.collect()
            estimator = DepthEstimator(model_name, device="cpu")
        outputs.append(estimator.infer_array(np.asarray(net_input, dtype=np.float32)))
        report = estimator.runtime_report()
        assert report is not None
        assert (report.backend, report.precision) == (app_cpu_backend(model_name), "fp32"), report
    return outputs
