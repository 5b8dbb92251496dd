"""Depth inference: device, runtime and precision choice, lazy thread-safe loading, prediction.

A :class:`DepthEstimator` turns an RGB photo into relative inverse depth at the photo's
size, exactly like the official pipeline (preprocess -> network -> interpolate back) but
faster. On the CPU it runs a compiled runtime (OpenVINO, else ONNX Runtime where the registry
lists it) that checks itself against the PyTorch network once per input shape and precision
(:mod:`face3d_core.models.verified_runtime`); exports, compiled models and the checks are kept
in the cache folder (:mod:`face3d_core.models.compiled_store`), so a later process with a warm
cache predicts without importing torch or timm. PyTorch (inference mode, channels-last,
Conv+BatchNorm folding) is the fallback, and the runtime on GPUs (fp16 autocast on CUDA).

Precision: fp32 by default; ``bf16`` (the "Fast (bf16)" mode) only where the CPU has native
bfloat16 (:func:`native_bf16_available`), never emulated; its deviation from fp32 is measured
and reported by :meth:`DepthEstimator.runtime_report`.

:func:`get_estimator` returns one estimator per (model, weights, device, precision, backend) per
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
import platform
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from face3d_core.config import get_settings
from face3d_core.errors import WeightsUnavailableError
from face3d_core.models.acceleration import accelerate_for_cpu
from face3d_core.models.compiled_store import CompiledStore, checkpoint_sha256
from face3d_core.models.cpu_info import cpu_flags_known, cpu_has_bf16_flags
from face3d_core.models.onnx_backend import (
    OnnxRuntimeRuntime,
    export_onnx,
    onnx_export_available,
    onnxruntime_available,
    onnxruntime_version,
)
from face3d_core.models.openvino_backend import (
    MAX_COMPILED,
    OpenVinoRuntime,
    convert_to_openvino,
    openvino_available,
    openvino_native_bf16,
    openvino_version,
)
from face3d_core.models.registry import DEFAULT_MODEL, ModelSpec, get_spec
from face3d_core.models.transforms import face_crop_input_sizes, prepare_array, upsample_depth
from face3d_core.models.verified_runtime import RuntimeReport, VerifiedNetwork
from face3d_core.weights import ProgressFn, resolve_weights

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")

#: What the UI can offer for each precision.
PRECISION_LABELS = {"fp32": "Exact (fp32)", "bf16": "Fast (bf16)", "fp16": "Fast (fp16)"}


@dataclass(frozen=True)
class Device:
    """Where a network runs: ``type`` (``cpu``, ``cuda``, ``mps``) and an optional index."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _gpu_possible() -> bool:
    """Return False where no GPU torch could use can exist (so torch need not be imported to ask)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"  # Apple MPS
    if sys.platform.startswith("linux"):
        # NVIDIA driver, ROCm, WSL2's GPU bridge: without one of them torch finds no GPU.
        markers = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
        return any(Path(marker).exists() for marker in markers)
    return True


def select_device(device: str = "auto") -> Device:
    """Return the device to run on: ``auto`` picks CUDA, then Apple MPS, then the CPU.

    ``FACE3D_DEVICE`` overrides ``auto``. Where no GPU can exist, ``auto`` is the CPU without
    importing torch.
    """
    if device == "auto":
        device = get_settings().device
    if device == "auto":
        if not _gpu_possible():
            return Device("cpu")
        import torch

        if torch.cuda.is_available():
            return Device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return Device("mps")
        return Device("cpu")
    kind, _, index = str(device).partition(":")
    return Device(kind, int(index) if index else None)


def _torch_cpu_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def native_bf16_available(backend: str = "auto") -> bool:
    """Return True where bf16 inference on this CPU is native (never emulated).

    Needs the CPU flags (``avx512_bf16`` or ``amx_bf16``, where ``/proc/cpuinfo`` can be read) and
    the runtime's own report: OpenVINO's ``OPTIMIZATION_CAPABILITIES`` containing ``BF16`` (when it
    is installed and ``backend`` is ``auto`` or ``openvino``), else PyTorch's oneDNN check.
    """
    if cpu_flags_known() and not cpu_has_bf16_flags():
        return False
    if backend in {"auto", "openvino"} and openvino_available():
        return openvino_native_bf16()
    return _torch_cpu_bf16()


def precision_choices(device: str = "auto") -> dict[str, str]:
    """Return the precisions this machine can offer, value -> label (fp32 first).

    On the CPU: ``fp32`` ("Exact (fp32)") and, where it is native, ``bf16`` ("Fast (bf16)");
    on CUDA: ``fp32`` and ``fp16``.
    """
    kind = select_device(device).type
    choices = {"fp32": PRECISION_LABELS["fp32"]}
    if kind == "cuda":
        choices["fp16"] = PRECISION_LABELS["fp16"]
    elif kind == "cpu" and native_bf16_available():
        choices["bf16"] = PRECISION_LABELS["bf16"]
    return choices


def resolve_precision(precision: str, device, backend: str = "auto") -> Literal["fp32", "bf16", "fp16"]:
    """Return the concrete precision: ``auto`` is fp16 on CUDA and fp32 elsewhere.

    ``FACE3D_PRECISION`` overrides ``auto``. On the CPU, fp16 is not supported (slow and
    inaccurate there) and bf16 is used only where it is native (:func:`native_bf16_available`):
    otherwise both fall back to fp32 with a warning.
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
    if precision == "bf16" and device.type == "cpu" and not native_bf16_available(backend):
        logger.warning(
            "bf16 was asked for, but this CPU has no native bfloat16 (AVX512-BF16 or AMX): "
            "emulated bf16 would be slower than fp32, so fp32 is used"
        )
        return "fp32"
    return precision  # type: ignore[return-value]


def load_checkpoint(path: Path, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a state dict, safely (``weights_only=True``).

    Accepts a plain state dict or one wrapped under ``"model"`` / ``"state_dict"``; strips a
    ``module.`` prefix left by DataParallel.

    Args:
        path: The checkpoint.
        mmap: Map the file instead of reading it (the tensors' pages are the file's, read when used
            and private when written); a file in PyTorch's legacy format is read as usual.

    Raises:
        WeightsUnavailableError: The file is not a readable PyTorch checkpoint.
    """
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: no mmap
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise WeightsUnavailableError(
            f"The weights file {path} could not be read as a PyTorch checkpoint ({type(exc).__name__}). "
            "It may be damaged: delete it and download it again.",
            web_message=f"The weights file {path.name} on the server could not be read; it may be damaged.",
        ) from exc
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailableError(
            f"The weights file {path} does not hold a state dict of tensors.",
            web_message=f"The weights file {path.name} on the server is not a usable checkpoint.",
        )
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
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` (native CPU bf16
            only, else fp32) or ``fp16``.
        accelerate: Fold Conv+BatchNorm and use channels-last when PyTorch runs on the CPU
            (fp32-exact up to float rounding; checked against the plain model on load).
        allow_download: Whether a missing checkpoint may be downloaded.
        backend: ``auto`` uses the first runtime of ``spec.cpu_runtimes`` that is installed
            (OpenVINO, ONNX Runtime) on the CPU, else PyTorch; ``openvino``, ``onnxruntime`` or
            ``torch`` force one (``FACE3D_BACKEND`` overrides ``auto``). Compiled runtimes
            check themselves against PyTorch for every new input shape and fall back to it.
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
        if backend == "auto":
            backend = get_settings().backend  # type: ignore[assignment]
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
        self.precision = resolve_precision(precision, self.device, backend)
        self.accelerate = accelerate
        self.allow_download = allow_download
        self.backend = self._resolve_backend(backend)
        self._net: Callable[[np.ndarray], np.ndarray] | None = None
        self._torch_net: torch.nn.Module | None = None
        self._load_lock = threading.Lock()
        self._torch_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._last_shape: tuple[int, ...] | None = None
        self.weights_path: Path | None = None

    def _resolve_backend(self, backend: str) -> str:
        if self.device.type != "cpu":
            if backend not in {"auto", "torch"}:
                logger.warning("%s runs only on the CPU here; using PyTorch on %s", backend, self.device)
            return "torch"
        if backend == "auto":
            for candidate in self.spec.cpu_runtimes:
                if self._runtime_usable(candidate):
                    return candidate
            return "torch"
        if backend != "torch" and not self._runtime_usable(backend):
            logger.warning(
                "%s cannot run %s here (not installed, or not at %s); using PyTorch",
                backend,
                self.spec.name,
                self.precision,
            )
            return "torch"
        return backend

    def _runtime_usable(self, runtime: str) -> bool:
        if runtime == "openvino":
            return openvino_available()
        if runtime == "onnxruntime":
            return self.precision == "fp32" and onnxruntime_available()
        return False

    @property
    def loaded(self) -> bool:
        """True once the network is in memory."""
        return self._net is not None

    def load(self, progress: ProgressFn | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """Resolve the weights and prepare the network (once; later calls return it at once).

        With a compiled runtime whose export is already in the cache, neither torch nor the
        network code is imported; otherwise the PyTorch network is built and its weights are
        loaded strictly (so a wrong checkpoint is reported here).

        Args:
            progress: Download progress callback ``(bytes_done, bytes_total)``.

        Returns:
            The network as a ``(B, 3, h, w) -> (B, h, w)`` float32 numpy function.

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
            self.weights_path = path
            net = None
            while net is None and self.backend != "torch":
                net = self._build_runtime(path, self.backend)
                if net is None:
                    self.backend = self._next_backend(self.backend)
            if net is None:
                net = self._torch_forward(path)
            self._net = net
            return net

    def _next_backend(self, failed: str) -> str:
        runtimes = [r for r in self.spec.cpu_runtimes if self._runtime_usable(r)]
        later = runtimes[runtimes.index(failed) + 1 :] if failed in runtimes else []
        return later[0] if later else "torch"

    # -- PyTorch ---------------------------------------------------------------------------

    def _build(self, path: Path) -> torch.nn.Module:
        """Build the PyTorch network with its weights (strict), in eval mode on the CPU."""
        logger.info("Loading %s from %s", self.spec.name, path)
        net = self.spec.build()
        # The checkpoint's tensors become the network's own where their dtypes agree: mapped from the
        # file, no second copy of the weights (1.4 GB for ViT-L) while loading, and the random
        # initial weights are freed at once.
        state = load_checkpoint(path, mmap=True)
        own = net.state_dict()
        assign = all(key in own and own[key].dtype == tensor.dtype for key, tensor in state.items())
        del own
        try:
            net.load_state_dict(state, strict=True, assign=assign)
        except RuntimeError as exc:
            raise WeightsUnavailableError(
                f"The weights file {path} does not fit the {self.spec.name} network "
                f"(is it the checkpoint of another model?). Expected {self.spec.file_name} from {self.spec.url}.",
                web_message=f"The weights file {path.name} on the server does not fit the {self.spec.name} network.",
                file_name=self.spec.file_name,
                url=self.spec.url,
            ) from exc
        return net.eval().requires_grad_(False)

    def _plain_torch(self, path: Path) -> torch.nn.Module:
        """The plain PyTorch fp32 network (built once; the reference of compiled runtimes)."""
        with self._torch_lock:
            if self._torch_net is None:
                self._torch_net = self._build(path)
            return self._torch_net

    def _torch_forward(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        """PyTorch as the runtime: accelerated on the CPU in fp32, autocast otherwise."""
        import torch

        logger.info("Running %s with PyTorch on %s (%s)", self.spec.name, self.device, self.precision)
        net = self._plain_torch(path)
        if self.device.type == "cpu" and self.accelerate and self.precision == "fp32":
            net = accelerate_for_cpu(net, torch.zeros(1, 3, *self.spec.net_size))
        else:
            net = net.to(str(self.device))
            if self.device.type != "mps":
                net = net.to(memory_format=torch.channels_last)
        device = str(self.device)
        precision = self.precision

        def forward(x: np.ndarray) -> np.ndarray:
            batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                if precision == "fp32":
                    out = net(batch)
                else:
                    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
                    with torch.autocast(device_type=batch.device.type, dtype=dtype):
                        out = net(batch)
            return out.float().cpu().numpy()

        return forward

    def _reference(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        """The plain PyTorch fp32 network as a numpy function (built on first call)."""

        def forward(x: np.ndarray) -> np.ndarray:
            import torch

            net = self._plain_torch(path)
            with torch.inference_mode():
                return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()

        return forward

    # -- compiled runtimes -----------------------------------------------------------------

    def _export(self, path: Path, target: Path, shape: tuple[int, ...] | None) -> Path:
        """Export the PyTorch network to ONNX at ``target`` (dynamic sizes where ``shape`` is None)."""
        import torch

        if not onnx_export_available():
            raise RuntimeError("the onnx package (needed to export) is not installed")
        example = torch.zeros(shape if shape is not None else (1, 3, *self.spec.net_size))
        logger.info("Exporting %s to ONNX (once) at %s", self.spec.name, target)
        net = self._plain_torch(path)
        prepare = getattr(net, "prepare_export", None)  # networks with size-dependent constants
        if prepare is not None:
            prepare(tuple(example.shape))
        return export_onnx(net, example, target, dynamic=shape is None)

    def _build_runtime(self, path: Path, runtime: str) -> VerifiedNetwork | None:
        """Return ``runtime`` wrapped in a :class:`VerifiedNetwork`, or None where it cannot run."""
        store = CompiledStore(self.spec.name, checkpoint_sha256(path))
        dynamic = self.spec.export_dynamic
        try:
            if runtime == "openvino":
                version = openvino_version()
                folder = store.runtime_folder("openvino", version)

                def model_path(shape: tuple[int, ...] | None) -> Path:
                    key = None if dynamic else shape
                    xml = folder / ("model.xml" if key is None else f"model-{'x'.join(map(str, key))}.xml")
                    if xml.is_file():
                        return xml
                    failure = store.failure("openvino", version)
                    if failure:
                        raise RuntimeError(f"export failed before: {failure}")
                    onnx = self._export(path, folder / (xml.stem + ".onnx"), key)
                    try:
                        return convert_to_openvino(onnx, xml)
                    finally:
                        onnx.unlink(missing_ok=True)

                fast = OpenVinoRuntime(model_path, folder / "blobs")
            else:
                version = onnxruntime_version()
                folder = store.runtime_folder("onnxruntime", version)

                def model_path(shape: tuple[int, ...] | None) -> Path:
                    key = None if dynamic else shape
                    onnx = folder / ("model.onnx" if key is None else f"model-{'x'.join(map(str, key))}.onnx")
                    if onnx.is_file():
                        return onnx
                    failure = store.failure("onnxruntime", version)
                    if failure:
                        raise RuntimeError(f"export failed before: {failure}")
                    return self._export(path, onnx, key)

                fast = OnnxRuntimeRuntime(model_path)
            if store.failure(runtime, version):
                raise RuntimeError(store.failure(runtime, version))
            if dynamic:
                try:
                    model_path(None)  # one export serves every input size: make it now
                except WeightsUnavailableError:
                    raise
                except Exception as exc:
                    store.save_failure(runtime, version, f"{type(exc).__name__}: {exc}")
                    raise
            elif not any(folder.glob("model-*")):
                self._plain_torch(path)  # nothing exported yet: check the checkpoint now
        except WeightsUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure falls back
            logger.warning("%s not used for %s: %s", runtime, self.spec.name, exc)
            return None
        precisions = ("bf16", "fp32") if self.precision == "bf16" else ("fp32",)
        return VerifiedNetwork(fast, store, precisions, self._reference(path), _torch_version)

    # -- inference -------------------------------------------------------------------------

    def infer_array(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a prepared batch.

        Args:
            batch: ``(B, 3, h, w) float32``, normalised network input.

        Returns:
            ``(B, h, w) float32`` relative inverse depth.
        """
        net = self.load()
        with self._run_lock:
            self._last_shape = tuple(int(s) for s in batch.shape)
            return net(batch)

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`infer_array` for a torch tensor (any device): ``(B, 3, h, w) -> (B, h, w)`` float32 CPU."""
        import torch

        return torch.from_numpy(self.infer_array(batch.detach().float().cpu().numpy()))

    def runtime_report(self) -> RuntimeReport | None:
        """What ran the latest prediction (runtime, precision, measured deviation from fp32).

        None before the first prediction.
        """
        net = self._net
        if isinstance(net, VerifiedNetwork):
            return net.last_report
        if self._last_shape is None:
            return None
        return RuntimeReport("torch", _torch_version(), self.precision, self._last_shape)

    def prepare(self, sizes: Sequence[tuple[int, int]] | None = None) -> list[RuntimeReport]:
        """Get the runtime ready for the input sizes face crops usually give, before a photo needs them.

        Servers call this in the background when they start. It loads the network, then runs it
        once on a synthetic photo-like input at each size (default: the
        :data:`~face3d_core.models.openvino_backend.MAX_COMPILED` most common of
        :func:`~face3d_core.models.transforms.face_crop_input_sizes`, the sizes a process keeps
        compiled): a size this cache folder has no verdict for is verified against PyTorch now
        (torch is imported for that, once per cache folder: the verdict is stored, so no later
        process needs torch for it), and every size is compiled (from the compiled-model cache
        where it was compiled before). Only for a compiled runtime whose export serves every
        size (``spec.export_dynamic``); otherwise it only loads.

        Returns:
            What serves each size (runtime, precision, deviation), least common size first.
        """
        net = self.load()
        if not isinstance(net, VerifiedNetwork) or not self.spec.export_dynamic:
            return []
        chosen = list(sizes) if sizes is not None else face_crop_input_sizes(self.spec)[:MAX_COMPILED]
        reports = []
        for height, width in reversed(chosen):  # the most common last: the last compiled stay in memory
            batch = prepare_array(_synthetic_photo(height, width), self.spec)[None]
            if batch.shape[2:] != (height, width):
                continue
            with self._run_lock:
                before = net.last_report
                net(batch)
                reports.append(net.last_report)
                net.last_report = before  # a preparation is no prediction
        sizes_text = ", ".join(f"{r.input_shape[2]}x{r.input_shape[3]} {r.backend} {r.precision}" for r in reports)
        logger.info("%s ready for input sizes: %s", self.spec.name, sizes_text or "none")
        return reports

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
        batch = prepare_array(image_rgb, self.spec)[None]
        if progress:
            progress("inference")
        pred = self.infer_array(batch)
        height, width = image_rgb.shape[:2]
        return upsample_depth(
            pred[0], (height, width), mode=self.spec.upsample_mode, align_corners=self.spec.upsample_align_corners
        )


def _synthetic_photo(height: int, width: int) -> np.ndarray:
    """A ``(height, width, 3) uint8`` photo-like image (smooth random blobs; the same every time)."""
    coarse = np.random.default_rng(0).integers(0, 256, size=(max(2, height // 16), max(2, width // 16), 3))
    return cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)


def _torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torch")


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
