"""ONNX Runtime backend for fp32 CPU inference, verified against the PyTorch network.

On CPUs, ONNX Runtime runs the default MiDaS small network about twice as fast as PyTorch
eager mode (see ``benchmarks/depth_speed.py``) with the same output to float rounding.
:func:`build_onnx_network` exports the loaded PyTorch network once to an ONNX file in the
cache folder (keyed by model, weights file, torch and onnxruntime versions; written to a
temporary name and renamed atomically) and wraps an inference session in
:class:`VerifiedOnnxNetwork`, which behaves like the network (``(B, 3, h, w)`` tensor in,
``(B, h, w)`` tensor out) and checks itself: the first time it sees an input shape, it
runs the PyTorch network too and compares; a shape whose output deviates by more than
``RTOL * std`` is served by PyTorch from then on. So the fast path can never change what
users get, only how fast they get it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from face3d_core.models.acceleration import RTOL

logger = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    """Return True when both ``onnx`` (export) and ``onnxruntime`` (inference) import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _cache_key(model_name: str, weights_path: Path) -> str:
    import onnxruntime

    stat = weights_path.stat()
    text = (
        f"{model_name}|{weights_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{torch.__version__}|"
        f"{onnxruntime.__version__}|v1"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def export_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export ``net`` to ``path`` with dynamic height/width, atomically.

    Args:
        net: Eval-mode network, ``(B, 3, h, w) -> (B, h, w)``.
        example: ``(1, 3, h, w) float32`` input used for tracing.
        path: Destination ``.onnx`` file (its folder is created).

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
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
                dynamic_axes={
                    "x": {0: "batch", 2: "height", 3: "width"},
                    "depth": {0: "batch", 1: "height", 2: "width"},
                },
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class VerifiedOnnxNetwork:
    """An ONNX Runtime session that behaves like the PyTorch network and checks itself per shape.

    Args:
        session: The ``onnxruntime.InferenceSession``.
        torch_net: The PyTorch network (kept for verification and as the fallback).
    """

    def __init__(self, session, torch_net: torch.nn.Module) -> None:
        self.session = session
        self.torch_net = torch_net
        self._verified: dict[tuple[int, ...], bool] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ``(B, h, w)`` relative inverse depth from ``(B, 3, h, w)`` float32 input."""
        shape = tuple(x.shape)
        ok = self._verified.get(shape)
        if ok is False:
            return self.torch_net(x)
        x_np = np.ascontiguousarray(x.detach().to(torch.float32).contiguous().numpy())
        out = torch.from_numpy(self.session.run(None, {"x": x_np})[0])
        if ok is None:
            reference = self.torch_net(x.contiguous())
            spread = float(reference.std()) or 1.0
            deviation = float((out - reference).abs().max()) / spread
            self._verified[shape] = deviation <= RTOL
            if deviation > RTOL:
                logger.warning("ONNX Runtime deviates by %.2e x std at shape %s; using PyTorch", deviation, shape)
                return reference
            logger.debug("ONNX Runtime verified at shape %s (max deviation %.2e x std)", shape, deviation)
        return out


def build_onnx_network(
    net: torch.nn.Module,
    model_name: str,
    weights_path: Path,
    example: torch.Tensor,
    cache_folder: Path,
    num_threads: int | None = None,
) -> VerifiedOnnxNetwork | None:
    """Return an ONNX Runtime version of ``net`` (exported once, cached), or None if that fails.

    Args:
        net: Eval-mode PyTorch network with its weights loaded.
        model_name: Registry name (part of the cache key).
        weights_path: The checkpoint file (its path, size and mtime are part of the cache key).
        example: ``(1, 3, h, w)`` input for the export.
        cache_folder: Folder for the exported ``.onnx`` files.
        num_threads: Intra-op threads (default: ``torch.get_num_threads()``).
    """
    try:
        import onnxruntime as ort

        path = cache_folder / f"{model_name}-{_cache_key(model_name, weights_path)}.onnx"
        if not path.is_file():
            logger.info("Exporting %s to ONNX (once) at %s", model_name, path)
            export_onnx(net, example, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that spin between runs compete with PyTorch's own pool in the same process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure falls back to PyTorch
        logger.warning("ONNX Runtime not used for %s: %s", model_name, exc)
        return None
    return VerifiedOnnxNetwork(session, net)
