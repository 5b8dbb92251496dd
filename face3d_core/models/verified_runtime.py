"""A fast inference runtime that checks itself against PyTorch, once per input shape, across processes.

:class:`VerifiedNetwork` behaves like the network (``(B, 3, h, w)`` float32 in, ``(B, h, w)``
float32 out, numpy) but runs a compiled runtime (OpenVINO, ONNX Runtime). The first time an
input shape is seen at a precision, the runtime's answer is compared with the PyTorch fp32
network's; the result (deviation as a fraction of the reference's std, accepted or not) is
stored in the :class:`~face3d_core.models.compiled_store.CompiledStore`, so every later process
knows it without torch. A shape/precision that deviates more than its :class:`Tolerance` is
never served: the next precision in the chain is tried (bf16 -> fp32), then PyTorch itself.
So a runtime can only change how fast users get a depth map, not what it is (beyond the stated
tolerance of the precision they chose).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from face3d_core.models.compiled_store import CompiledStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """Accept a runtime's output when ``max|y - ref| <= max_dev * std(ref)`` and likewise the mean."""

    max_dev: float
    mean_dev: float


#: fp32: float rounding only (the reference tolerance of ``shared/reference`` is 1e-2 / 1e-3).
FP32_TOLERANCE = Tolerance(max_dev=1e-3, mean_dev=1e-4)
#: bf16 (opt-in fast mode): 8-bit mantissas; measured 0.09-0.4 max / 0.009-0.02 mean of std on the
#: MiDaS, LeViT, Swin2 and Depth Anything networks. The mean bound rejects a broken result.
BF16_TOLERANCE = Tolerance(max_dev=1.0, mean_dev=0.05)
TOLERANCES = {"fp32": FP32_TOLERANCE, "bf16": BF16_TOLERANCE}


def deviation(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Return ``(max, mean)`` of ``|output - reference|`` as fractions of ``std(reference)``."""
    reference = np.asarray(reference, dtype=np.float64)
    if output.shape != reference.shape:
        return float("inf"), float("inf")
    err = np.abs(np.asarray(output, dtype=np.float64) - reference)
    if not np.isfinite(err).all():
        return float("inf"), float("inf")
    spread = float(reference.std()) or 1.0
    return float(err.max()) / spread, float(err.mean()) / spread


class Runtime(Protocol):
    """What :class:`VerifiedNetwork` needs of a runtime."""

    name: str
    version: str

    def run(self, x: np.ndarray, precision: str) -> np.ndarray:
        """``(B, 3, h, w) float32 -> (B, h, w) float32`` at ``precision`` (``fp32`` or ``bf16``)."""
        ...


@dataclass(frozen=True)
class RuntimeReport:
    """What ran a prediction, for logs and the UI's model note.

    Attributes:
        backend: ``openvino``, ``onnxruntime`` or ``torch``.
        backend_version: The runtime's version.
        precision: ``fp32`` or ``bf16`` (what actually ran).
        input_shape: ``(B, 3, h, w)`` of the network input.
        deviation_max: ``max|y - y_fp32| / std(y_fp32)`` against the PyTorch fp32 network at this
            input shape (None where not measured: PyTorch itself).
        deviation_mean: The same for the mean.
    """

    backend: str
    backend_version: str
    precision: str
    input_shape: tuple[int, ...]
    deviation_max: float | None = None
    deviation_mean: float | None = None

    def describe(self) -> str:
        """One line, e.g. ``OpenVINO 2026.4.1, bf16, 0.095 max / 0.018 mean of std from fp32``."""
        names = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "torch": "PyTorch"}
        text = f"{names.get(self.backend, self.backend)} {self.backend_version}, {self.precision}"
        if self.deviation_max is not None and self.deviation_mean is not None:
            text += f", {self.deviation_max:.2g} max / {self.deviation_mean:.2g} mean of std from PyTorch fp32"
        return text


class VerifiedNetwork:
    """A runtime wrapped like the network, checked per input shape and precision (see the module doc).

    Args:
        runtime: The fast runtime.
        store: Where verification records live.
        precisions: Precisions to try, best first (``("bf16", "fp32")`` or ``("fp32",)``).
        reference: The PyTorch fp32 network as ``(B, 3, h, w) -> (B, h, w)`` numpy function; called
            only to verify a new shape or to serve a shape no precision passed (it may build the
            network and import torch on its first call).
        reference_version: Returns the PyTorch version (for the records and reports).
    """

    def __init__(
        self,
        runtime: Runtime,
        store: CompiledStore,
        precisions: tuple[str, ...],
        reference: Callable[[np.ndarray], np.ndarray],
        reference_version: Callable[[], str] = lambda: "",
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.precisions = precisions
        self.reference = reference
        self.reference_version = reference_version
        self._choice: dict[tuple[int, ...], RuntimeReport] = {}
        self.last_report: RuntimeReport | None = None

    def _record(self, precision: str, shape: tuple[int, ...]) -> dict[str, Any] | None:
        return self.store.verification(self.runtime.name, self.runtime.version, precision, shape)

    def _report(self, precision: str, shape: tuple[int, ...], record: dict[str, Any]) -> RuntimeReport:
        return RuntimeReport(
            self.runtime.name,
            self.runtime.version,
            precision,
            shape,
            record.get("deviation_max"),
            record.get("deviation_mean"),
        )

    def _verify(self, x: np.ndarray, precision: str, reference: np.ndarray) -> tuple[np.ndarray | None, dict]:
        shape = tuple(x.shape)
        tolerance = TOLERANCES[precision]
        start = time.perf_counter()
        try:
            output = self.runtime.run(x, precision)
        except Exception as exc:  # noqa: BLE001 - a runtime that fails at a shape is simply not used there
            record = {"accepted": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
            logger.warning("%s %s failed at shape %s: %s", self.runtime.name, precision, shape, exc)
            return None, record
        seconds = time.perf_counter() - start
        dev_max, dev_mean = deviation(output, reference)
        accepted = dev_max <= tolerance.max_dev and dev_mean <= tolerance.mean_dev
        record = {
            "accepted": accepted,
            "deviation_max": dev_max,
            "deviation_mean": dev_mean,
            "tolerance_max": tolerance.max_dev,
            "tolerance_mean": tolerance.mean_dev,
            "reference": f"PyTorch {self.reference_version()} fp32",
            "first_run_s": round(seconds, 3),
        }
        log = logger.info if accepted else logger.warning
        log(
            "%s %s at shape %s deviates from PyTorch fp32 by %.2e max / %.2e mean of std: %s",
            self.runtime.name,
            precision,
            shape,
            dev_max,
            dev_mean,
            "accepted" if accepted else "not used",
        )
        return (output if accepted else None), record

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Predict ``(B, h, w) float32`` relative inverse depth from ``(B, 3, h, w) float32`` input."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = tuple(int(s) for s in x.shape)
        chosen = self._choice.get(shape)
        if chosen is not None:
            self.last_report = chosen
            if chosen.backend == "torch":
                return self.reference(x)
            return self.runtime.run(x, chosen.precision)
        reference: np.ndarray | None = None
        for precision in self.precisions:
            record = self._record(precision, shape)
            if record is not None and not record["accepted"]:
                continue
            if record is not None:  # verified before, maybe by another process: no torch needed
                try:
                    output = self.runtime.run(x, precision)
                except Exception as exc:  # noqa: BLE001 - e.g. a cache folder emptied by hand: next option
                    logger.warning("%s %s failed at shape %s: %s", self.runtime.name, precision, shape, exc)
                    continue
            else:
                if reference is None:
                    reference = self.reference(x)
                output, record = self._verify(x, precision, reference)
                self.store.save_verification(self.runtime.name, self.runtime.version, precision, shape, record)
                if output is None:
                    continue
            report = self._report(precision, shape, record)
            self._choice[shape] = self.last_report = report
            return output
        logger.warning("%s is not used at shape %s: PyTorch serves it", self.runtime.name, shape)
        report = RuntimeReport("torch", self.reference_version(), "fp32", shape)
        self._choice[shape] = self.last_report = report
        return reference if reference is not None else self.reference(x)
