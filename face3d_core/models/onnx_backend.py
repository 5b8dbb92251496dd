"""ONNX export of the depth networks, and ONNX Runtime as a fallback CPU runtime.

:func:`export_onnx` writes a network to an ONNX file (atomically): with dynamic height and
width where the network's graph follows the input size (``dynamic=True``), else for one input
shape. OpenVINO converts that file (:mod:`face3d_core.models.openvino_backend`); where OpenVINO
is not installed, :class:`OnnxRuntimeRuntime` runs it with ONNX Runtime. Either way the
runtime is wrapped in :class:`~face3d_core.models.verified_runtime.VerifiedNetwork`, which
checks it against PyTorch per input shape.

ONNX Runtime keeps a device id and a telemetry database under ``~/.cache/Microsoft`` unless
``ORT_DISABLE_TELEMETRY`` is set; :func:`import_onnxruntime` sets it (when the caller has not
chosen) before the import, so face3d writes nothing outside its cache folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from face3d_core.config import set_default_env
from face3d_core.models.openvino_backend import cpu_threads

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)


def onnx_export_available() -> bool:
    """Return True when ``onnx`` (needed by ``torch.onnx.export``) is installed (not imported)."""
    return importlib.util.find_spec("onnx") is not None


def onnxruntime_available() -> bool:
    """Return True when ``onnxruntime`` is installed (without importing it)."""
    return "onnxruntime" in sys.modules or importlib.util.find_spec("onnxruntime") is not None


def import_onnxruntime() -> ModuleType:
    """Import ``onnxruntime`` with its telemetry (and the files it keeps in ``~/.cache``) off."""
    set_default_env("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    try:
        onnxruntime.disable_telemetry_events()
    except AttributeError:  # pragma: no cover - builds without telemetry
        pass
    return onnxruntime


def onnxruntime_version() -> str:
    """Return the installed ONNX Runtime version, read from the package metadata."""
    import importlib.metadata

    return importlib.metadata.version("onnxruntime")


def export_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path, dynamic: bool = True) -> Path:
    """Export ``net`` to ``path`` atomically.

    Args:
        net: Eval-mode network, ``(B, 3, h, w) -> (B, h, w)``.
        example: ``(1, 3, h, w) float32`` input used for tracing.
        path: Destination ``.onnx`` file (its folder is created).
        dynamic: Batch, height and width as dynamic axes; otherwise the graph is valid for
            ``example``'s shape only.

    Returns:
        ``path``.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    axes = (
        {"x": {0: "batch", 2: "height", 3: "width"}, "depth": {0: "batch", 1: "height", 2: "width"}}
        if dynamic
        else None
    )
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                tmp,
                dynamo=False,
                opset_version=17,
                input_names=["x"],
                output_names=["depth"],
                dynamic_axes=axes,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class OnnxRuntimeRuntime:
    """ONNX Runtime inference (fp32 only), one session per ONNX file.

    Args:
        model_path: Function returning the ``.onnx`` file for an input shape (it may export it).
        num_threads: Intra-op threads (default: every CPU this process may use).
    """

    name = "onnxruntime"

    def __init__(self, model_path: Callable[[tuple[int, ...]], Path], num_threads: int | None = None) -> None:
        self.version = onnxruntime_version()
        self.model_path = model_path
        self.num_threads = num_threads or cpu_threads()
        self._sessions: dict[Path, object] = {}

    def _session(self, shape: tuple[int, ...]):
        path = self.model_path(shape)
        session = self._sessions.get(path)
        if session is None:
            ort = import_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Threads that spin between runs compete with other work in the same process.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._sessions[path] = session
        return session

    def run(self, x: np.ndarray, precision: str) -> np.ndarray:
        """``(B, 3, h, w) float32 -> (B, h, w) float32`` (``precision`` must be ``fp32``)."""
        if precision != "fp32":
            raise ValueError("ONNX Runtime is only used in fp32")
        session = self._session(tuple(int(s) for s in x.shape))
        return np.asarray(session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0], dtype=np.float32)
