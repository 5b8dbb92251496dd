"""OpenVINO: the CPU runtime of face3d (fp32, and native bf16 in the opt-in fast mode).

The ONNX export of a network (see :mod:`face3d_core.models.onnx_backend`) is converted once to
OpenVINO's own format in the :class:`~face3d_core.models.compiled_store.CompiledStore`, which
loads without torch. :class:`OpenVinoRuntime` compiles it for each input shape it is given
(static shapes compile to faster code than dynamic ones) and precision, with OpenVINO's
compiled-model cache (``CACHE_DIR``) in the same folder, so a later process skips compilation
too. It runs with the LATENCY hint on all CPUs this process may use. A compiled model holds
its own copy of the weights (about 150 MB for MiDaS small), so only the most recently used few
stay compiled in a process (:data:`MAX_COMPILED`); another size is loaded again from the
compiled-model cache (a few tenths of a second) when it comes back.

OpenVINO's Python package sends a usage event and writes ``~/intel/`` when imported; face3d
writes nothing outside its cache folder, so :func:`import_openvino` imports it with that
telemetry package hidden (OpenVINO then uses its built-in no-op stub).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from face3d_core.models.cpu_info import cpu_flags_known, cpu_has_bf16_flags

logger = logging.getLogger(__name__)

_IMPORT_LOCK = threading.Lock()

#: face3d precision name -> OpenVINO ``INFERENCE_PRECISION_HINT``.
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: Compiled (input size, precision) pairs one :class:`OpenVinoRuntime` keeps, most recent first:
#: face crops give a handful of network sizes, and each compiled one costs memory (see the module doc).
MAX_COMPILED = 2


def openvino_available() -> bool:
    """Return True when the ``openvino`` package is installed (without importing it)."""
    return "openvino" in sys.modules or importlib.util.find_spec("openvino") is not None


def import_openvino() -> ModuleType:
    """Import ``openvino`` without its telemetry (no network event, nothing written to ``~/intel``).

    Raises:
        ImportError: OpenVINO is not installed.
    """
    with _IMPORT_LOCK:
        if "openvino" in sys.modules:
            return sys.modules["openvino"]
        hidden = "openvino_telemetry" not in sys.modules
        if hidden:
            sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import fails -> stub
        try:
            import openvino
        finally:
            if hidden and sys.modules.get("openvino_telemetry") is None:
                del sys.modules["openvino_telemetry"]
        return openvino


def openvino_version() -> str:
    """Return the installed OpenVINO version (``2026.4.1``), read from the package metadata."""
    import importlib.metadata

    return importlib.metadata.version("openvino")


_core = None
_CORE_LOCK = threading.Lock()


def _get_core():
    """Return the process's ``openvino.Core`` (created once)."""
    global _core
    with _CORE_LOCK:
        if _core is None:
            _core = import_openvino().Core()
        return _core


def openvino_native_bf16() -> bool:
    """Return True where bf16 runs natively: the CPU flags say so and OpenVINO's CPU plugin agrees.

    Checks ``avx512_bf16`` / ``amx_bf16`` in ``/proc/cpuinfo`` (where it can be read) and ``BF16``
    in ``core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")``.
    """
    if not openvino_available():
        return False
    if cpu_flags_known() and not cpu_has_bf16_flags():
        return False
    try:
        capabilities = _get_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # noqa: BLE001 - no CPU plugin: no OpenVINO bf16
        logger.debug("OpenVINO CPU capabilities unavailable: %s", exc)
        return False
    return "BF16" in capabilities


def cpu_threads() -> int:
    """Return how many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def convert_to_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """Convert an ONNX file to OpenVINO's format (``.xml`` + ``.bin``, fp32 weights kept), atomically.

    The ``.bin`` is renamed into place before the ``.xml``, so an existing ``.xml`` always has its
    weights beside it.
    """
    ov = import_openvino()
    model = _get_core().read_model(str(onnx_path))
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".convert-", dir=xml_path.parent))
    try:
        tmp_xml = tmp_dir / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    finally:
        for leftover in tmp_dir.glob("*"):
            leftover.unlink(missing_ok=True)
        tmp_dir.rmdir()
    return xml_path


class OpenVinoRuntime:
    """OpenVINO inference, compiled per input shape and precision (see the module doc).

    Args:
        model_path: Function returning the ``.xml`` model for an input shape (one file for all
            shapes, or one per shape for networks whose export is shape-specific); it may export
            and convert on first use.
        blob_dir: OpenVINO's compiled-model cache folder (``CACHE_DIR``; one subfolder per precision).
        num_threads: Inference threads (default: every CPU this process may use).
        max_compiled: Compiled (size, precision) pairs kept in memory, least recently used dropped.
    """

    name = "openvino"

    def __init__(
        self,
        model_path: Callable[[tuple[int, ...]], Path],
        blob_dir: Path,
        num_threads: int | None = None,
        max_compiled: int = MAX_COMPILED,
    ) -> None:
        self.version = openvino_version()
        self.model_path = model_path
        self.blob_dir = blob_dir
        self.num_threads = num_threads or cpu_threads()
        self.max_compiled = max(1, int(max_compiled))
        self._requests: OrderedDict[tuple[tuple[int, ...], str], object] = OrderedDict()

    def compiled(self) -> list[tuple[tuple[int, ...], str]]:
        """The (input shape, precision) pairs compiled in memory now, least recently used first."""
        return list(self._requests)

    def compile(self, shape: tuple[int, ...], precision: str):
        """Return an infer request of the model compiled for ``shape`` at ``precision`` (kept, see ``max_compiled``)."""
        key = (shape, precision)
        request = self._requests.get(key)
        if request is not None:
            self._requests.move_to_end(key)
        else:
            core = _get_core()
            model = core.read_model(str(self.model_path(shape)))
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            # One cache folder per precision: OpenVINO 2026.4 crashed compiling a bf16 model after the
            # f32 one of the same network (Depth Anything V2) in one process with a shared folder.
            blob_dir = self.blob_dir / precision
            blob_dir.mkdir(parents=True, exist_ok=True)
            config = {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": self.num_threads,
                # Always explicit: OpenVINO defaults to bf16 on CPUs with AMX.
                "INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision],
                "CACHE_DIR": str(blob_dir),
            }
            compiled = core.compile_model(model, "CPU", config)
            request = compiled.create_infer_request()
            self._requests[key] = request
            while len(self._requests) > self.max_compiled:
                dropped, _ = self._requests.popitem(last=False)
                logger.debug("OpenVINO model for shape %s (%s) dropped from memory", *dropped)
        return request

    def run(self, x: np.ndarray, precision: str) -> np.ndarray:
        """``(B, 3, h, w) float32 -> (B, h, w) float32``."""
        request = self.compile(tuple(int(s) for s in x.shape), precision)
        outputs = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(outputs[0], dtype=np.float32, copy=True)
