"""Depth inference: device and precision choice, lazy thread-safe loading, prediction.

A :class:`DepthEstimator` turns an RGB photo into relative inverse depth at the photo's
size, exactly like the official pipeline (preprocess -> network -> interpolate back) but
faster: inference mode, channels-last memory format, Conv+BatchNorm folding on CPU, fp16
autocast on CUDA, optional bf16 on CPU.

:func:`get_estimator` returns one estimator per (model, weights, device, precision) per
process, so a web server loads each network once and shares it between threads.

Example:
    >>> est = get_estimator("midas_v21_small_256")          # doctest: +SKIP
    >>> depth_rel = est.predict(image_rgb)                     # doctest: +SKIP
    >>> depth_rel.shape == image_rgb.shape[:2]                 # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from face3d_core.config import get_settings
from face3d_core.errors import WeightsUnavailableError
from face3d_core.models.acceleration import accelerate_for_cpu
from face3d_core.models.onnx_backend import build_onnx_network, onnxruntime_available
from face3d_core.models.registry import DEFAULT_MODEL, ModelSpec, get_spec
from face3d_core.models.transforms import prepare_input
from face3d_core.weights import ProgressFn, cache_dir, resolve_weights

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Backend = Literal["auto", "torch", "onnxruntime"]


def select_device(device: str = "auto") -> torch.device:
    """Return the device to run on: ``auto`` picks CUDA, then Apple MPS, then the CPU.

    ``FACE3D_DEVICE`` overrides ``auto``.
    """
    if device == "auto":
        device = get_settings().device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16", "fp16"]:
    """Return the concrete precision: ``auto`` is fp16 on CUDA and fp32 elsewhere.

    ``FACE3D_PRECISION`` overrides ``auto``. fp16 on the CPU is not supported (slow and
    inaccurate there); it falls back to fp32 with a warning.
    """
    if precision == "auto":
        precision = get_settings().precision
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in {"fp32", "bf16", "fp16"}:
        raise ValueError(f"unknown precision {precision!r} (use auto, fp32, bf16 or fp16)")
    if precision == "fp16" and device.type == "cpu":
        logger.warning("fp16 is not supported on the CPU; using fp32")
        return "fp32"
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_native_bf16():
        logger.warning("This CPU has no native bfloat16 support: bf16 is emulated and much slower than fp32")
    return precision  # type: ignore[return-value]


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a state dict, safely (``weights_only=True``).

    Accepts a plain state dict or one wrapped under ``"model"`` / ``"state_dict"``; strips a
    ``module.`` prefix left by DataParallel.

    Raises:
        WeightsUnavailableError: The file is not a readable PyTorch checkpoint.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise WeightsUnavailableError(
            f"The weights file {path} could not be read as a PyTorch checkpoint ({type(exc).__name__}). "
            "It may be damaged: delete it and download it again."
        ) from exc
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailableError(f"The weights file {path} does not hold a state dict of tensors.")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class EstimatorConfig:
    """What identifies one loaded network in a process."""

    model_name: str
    weights: str | None
    device: str
    precision: str
    accelerate: bool
    backend: str


class DepthEstimator:
    """Relative inverse depth for RGB photos with one depth network.

    The network is built and its weights resolved on first use (:meth:`load`), once; all
    methods are safe to call from several threads.

    Args:
        model_name: Registry name (see ``face3d models``).
        weights: Explicit checkpoint path; otherwise the lookup order of
            :func:`face3d_core.weights.resolve_weights` applies.
        device: ``auto`` (CUDA, MPS, CPU), or a torch device string.
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` or ``fp16``.
        accelerate: Fold Conv+BatchNorm and use channels-last on the CPU (fp32-exact up to
            float rounding; checked against the plain model on load).
        allow_download: Whether a missing checkpoint may be downloaded.
        backend: ``auto`` uses ONNX Runtime for fp32 CPU inference where the spec says it is
            faster (``spec.cpu_onnx``) and it is installed, else PyTorch; ``torch`` or
            ``onnxruntime`` force one (``FACE3D_BACKEND`` overrides ``auto``). The ONNX path
            checks itself against PyTorch for every new input shape.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        precision: Precision = "auto",
        accelerate: bool = True,
        allow_download: bool = True,
        backend: Backend = "auto",
    ) -> None:
        self.spec: ModelSpec = get_spec(model_name)
        self.weights = Path(weights) if weights is not None else None
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.accelerate = accelerate
        self.allow_download = allow_download
        self.backend = self._resolve_backend(backend)
        self._net: torch.nn.Module | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.weights_path: Path | None = None

    def _resolve_backend(self, backend: str) -> str:
        if backend == "auto":
            backend = get_settings().backend
        if backend not in {"auto", "torch", "onnxruntime"}:
            raise ValueError(f"unknown backend {backend!r} (use auto, torch or onnxruntime)")
        cpu_fp32 = self.device.type == "cpu" and self.precision == "fp32"
        if backend == "auto":
            backend = "onnxruntime" if cpu_fp32 and self.spec.cpu_onnx and onnxruntime_available() else "torch"
        if backend == "onnxruntime" and not (cpu_fp32 and onnxruntime_available()):
            logger.warning("ONNX Runtime is only used for fp32 on the CPU (and must be installed); using PyTorch")
            backend = "torch"
        return backend

    @property
    def loaded(self) -> bool:
        """True once the network is in memory."""
        return self._net is not None

    def load(self, progress: ProgressFn | None = None) -> torch.nn.Module:
        """Build the network and load its weights (once; later calls return it at once).

        Args:
            progress: Download progress callback ``(bytes_done, bytes_total)``.

        Raises:
            WeightsUnavailableError: The checkpoint is missing and cannot be downloaded, or
                does not fit the architecture.
        """
        if self._net is not None:
            return self._net
        with self._load_lock:
            if self._net is not None:
                return self._net
            path = resolve_weights(
                self.spec.weights_file, self.weights, allow_download=self.allow_download, progress=progress
            )
            self._net = self._build(path)
            self.weights_path = path
            return self._net

    def _build(self, path: Path) -> torch.nn.Module:
        logger.info("Loading %s from %s on %s (%s)", self.spec.name, path, self.device, self.precision)
        net = self.spec.build()
        state = load_checkpoint(path)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsUnavailableError(
                f"The weights file {path} does not fit the {self.spec.name} network "
                f"(is it the checkpoint of another model?). Expected {self.spec.file_name} from {self.spec.url}."
            ) from exc
        net.eval().requires_grad_(False)
        if self.backend == "onnxruntime":
            example = torch.zeros(1, 3, *self.spec.net_size)
            fast = build_onnx_network(net, self.spec.name, path, example, cache_dir() / "onnx")
            if fast is not None:
                return fast  # type: ignore[return-value]
            self.backend = "torch"
        if self.device.type == "cpu" and self.accelerate and self.precision == "fp32":
            example = torch.zeros(1, 3, *self.spec.net_size)
            net = accelerate_for_cpu(net, example)
        else:
            net = net.to(self.device)
            if self.device.type != "mps":
                net = net.to(memory_format=torch.channels_last)
        return net

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on a prepared batch.

        Args:
            batch: ``(B, 3, h, w) float32``, normalised network input (any device).

        Returns:
            ``(B, h, w) float32`` relative inverse depth on the CPU.
        """
        net = self.load()
        x = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        with self._run_lock, torch.inference_mode():
            if self.precision == "fp32":
                out = net(x)
            else:
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast(device_type=self.device.type, dtype=dtype):
                    out = net(x)
        return out.float().cpu()

    def predict(self, image_rgb: np.ndarray, progress: Callable[[str], None] | None = None) -> np.ndarray:
        """Predict relative inverse depth for one photo, at the photo's size.

        Args:
            image_rgb: ``(H, W, 3) uint8`` RGB photo.
            progress: Optional callback told each stage (``"loading"``, ``"inference"``).

        Returns:
            ``(H, W) float32`` relative inverse depth (larger = nearer; unknown scale and shift).
        """
        if progress:
            progress("loading")
        self.load()
        batch = prepare_input(image_rgb, self.spec)
        if progress:
            progress("inference")
        pred = self.infer(batch)
        height, width = image_rgb.shape[:2]
        up = F.interpolate(
            pred.unsqueeze(1),
            size=(height, width),
            mode=self.spec.upsample_mode,
            align_corners=self.spec.upsample_align_corners,
        )
        return up[0, 0].numpy().astype(np.float32, copy=False)


_ESTIMATORS: dict[EstimatorConfig, DepthEstimator] = {}
_ESTIMATORS_LOCK = threading.Lock()


def get_estimator(
    model_name: str = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    precision: Precision = "auto",
    accelerate: bool = True,
    backend: Backend = "auto",
) -> DepthEstimator:
    """Return the process-wide estimator for this configuration (created on first call).

    The network itself is loaded lazily, on the first prediction.
    """
    key = EstimatorConfig(model_name, str(weights) if weights else None, device, precision, accelerate, backend)
    with _ESTIMATORS_LOCK:
        est = _ESTIMATORS.get(key)
        if est is None:
            est = DepthEstimator(model_name, weights, device, precision, accelerate, backend=backend)
            _ESTIMATORS[key] = est
        return est


def clear_estimators() -> None:
    """Forget every cached estimator (frees their networks once no one else holds them)."""
    with _ESTIMATORS_LOCK:
        _ESTIMATORS.clear()
