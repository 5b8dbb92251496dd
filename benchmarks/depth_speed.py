"""Depth inference speed per runtime versus plain eager fp32 ``model(x)``, same weights and input.

For each model, median milliseconds per forward pass at the network's input size of
  * eager fp32: the bare network, eval mode, fp32, NCHW, ``torch.no_grad``, ``model(x)`` (baseline);
  * ``DepthEstimator.infer_array`` forced to each backend: PyTorch (BatchNorm folded, channels-last),
    ONNX Runtime, OpenVINO fp32 and, where the CPU has native bf16, OpenVINO bf16 and PyTorch bf16
    autocast; ``auto`` marks what the app uses by default;
with the max and mean deviation from the baseline as fractions of its std (fp32 tolerance 1e-3 max,
the reference tolerance 1e-2 / 1e-3), and the share of the CPU's measured peak: the network's FLOPs
(``torch.utils.flop_counter``, a multiply-add = 2 FLOPs) per second over the best GFLOP/s of a
matmul/convolution probe at the same precision. All runtimes of a model (and the probes) are timed
in interleaved rounds, so load from other work on a shared machine hits them alike.
Weights come from ``shared/reference/fill.py`` (deterministic; speed does not depend on the values).
Run: ``.venv/bin/python benchmarks/depth_speed.py [--models a b] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import SHOWN_FLAGS, interleaved_times, load_fill, print_table  # noqa: E402
from face3d_core.models.cpu_info import BF16_FLAGS, cpu_flags, cpu_name  # noqa: E402
from face3d_core.models.estimator import DepthEstimator, native_bf16_available  # noqa: E402
from face3d_core.models.onnx_backend import onnxruntime_available  # noqa: E402
from face3d_core.models.openvino_backend import openvino_available  # noqa: E402
from face3d_core.models.registry import get_spec, list_models  # noqa: E402

DEFAULT_MODELS = [
    "midas_v21_small_256",
    "dpt_levit_224",
    "dpt_swin2_tiny_256",
    "depth_anything_v2_vits",
    "dpt_hybrid_384",
]


def peak_probes(bf16: bool) -> dict[str, tuple[object, int]]:
    """Matmul (1024^3) and 3x3 convolution (256 -> 256 channels, 56x56) probes: name -> (fn, FLOPs)."""
    probes: dict[str, tuple[object, int]] = {}
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        if label == "bf16" and not bf16:
            continue
        a, b = torch.randn(1024, 1024).to(dtype), torch.randn(1024, 1024).to(dtype)
        image = torch.randn(1, 256, 56, 56).to(dtype).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(dtype).to(memory_format=torch.channels_last).eval()
        probes[f"peak {label} matmul"] = (lambda a=a, b=b: torch.mm(a, b), 2 * 1024**3)
        probes[f"peak {label} conv"] = (lambda conv=conv, image=image: conv(image), 2 * 256 * 256 * 9 * 56 * 56)
    return probes


def count_flops(net: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass (matmuls and convolutions; a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops()


def _row(label, ms, base_ms, flops, peak, out, ref) -> list[str]:
    std = float(ref.std())
    err = np.abs(out - ref)
    gflops = flops / (ms / 1000.0) / 1e9
    return [
        label,
        f"{ms:.1f}",
        f"{base_ms / ms:.2f}x",
        f"{gflops:.0f} ({100 * gflops / peak:.0f} %)",
        f"{float(err.max()) / std:.1e} / {float(err.mean()) / std:.1e}",
    ]


def bench_model(name: str, fill, repeats: int, folder: Path, bf16: bool) -> tuple[list[list[str]], dict[str, float]]:
    """Time every runtime of one model in interleaved rounds; return the table rows and the peaks."""
    spec = get_spec(name)
    net = spec.build().eval()
    state = fill.fill_state_dict(net.state_dict())
    net.load_state_dict(state, strict=True)
    weights = folder / spec.file_name
    torch.save(state, weights)
    x = torch.randn(1, 3, *spec.net_size, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()
    flops = count_flops(net, x)
    with torch.no_grad():
        ref = net(x).numpy()
    default = DepthEstimator(name, weights=weights, device="cpu").backend
    runs = [("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32")]
    if bf16:
        runs += [("openvino", "bf16"), ("torch", "bf16")]
    fns = {"eager fp32 (baseline)": lambda: net(x)}
    outputs = {"eager fp32 (baseline)": (ref, "fp32")}
    for backend, precision in runs:
        if backend == "onnxruntime" and not onnxruntime_available():
            continue
        if backend == "openvino" and not openvino_available():
            continue
        est = DepthEstimator(name, weights=weights, device="cpu", precision=precision, backend=backend)
        out = est.infer_array(x_np)  # exports, compiles and verifies (untimed)
        report = est.runtime_report()
        label = f"{report.backend} {report.precision}"
        if (report.backend, report.precision) != (backend, precision):
            label += f" (asked {backend} {precision})"
        if backend == default and precision == "fp32":
            label += " = auto"
        fns[label] = lambda est=est: est.infer_array(x_np)
        outputs[label] = (out, report.precision)
    probes = peak_probes(bf16)
    fns.update({probe: fn for probe, (fn, _) in probes.items()})
    with torch.no_grad():
        times = interleaved_times(fns, repeats)
    peaks: dict[str, float] = {}
    for probe, (_, probe_flops) in probes.items():
        precision = probe.split()[1]
        peaks[precision] = max(peaks.get(precision, 0.0), probe_flops / (min(times[probe]) / 1000.0) / 1e9)
    base_ms = statistics.median(times["eager fp32 (baseline)"])
    size = f"{spec.net_size[0]}x{spec.net_size[1]}"
    peak_text = ", ".join(f"{p} {g:.0f}" for p, g in peaks.items())
    rows = [[f"**{name}** {size}, {flops / 1e9:.1f} GFLOP; peak GFLOP/s {peak_text}", "", "", "", ""]]
    for label, (out, precision) in outputs.items():
        ms = statistics.median(times[label])
        rows.append(_row(label, ms, base_ms, flops, peaks.get(precision, float("nan")), out, ref))
    weights.unlink()
    return rows, peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list_models())
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 15)))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    fill = load_fill()
    if fill is None:
        print("shared/reference/fill.py not found: nothing to benchmark")
        return 0
    flags = cpu_flags()
    bf16 = native_bf16_available()
    print(f"CPU: {cpu_name()} ({platform.machine()}), {len(os.sched_getaffinity(0))} CPUs for this process")
    print(f"flags: {' '.join(f for f in SHOWN_FLAGS if f in flags) or 'unknown'}")
    print(f"native bf16: {bf16} (flags {sorted(flags & BF16_FLAGS) or 'none'})")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; all runtimes of a model timed in "
        f"{args.repeats} interleaved rounds after 2 warm-up calls, medians; peak = best matmul/conv probe "
        "(PyTorch) of those rounds"
    )
    header = ["runtime", "ms", "speed-up", "GFLOP/s (% of peak)", "dev max / mean (x std)"]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACE3D_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in args.models:
            model_rows, _ = bench_model(name, fill, args.repeats, Path(tmp), bf16)
            print("\n".join(" | ".join(r) for r in model_rows), file=sys.stderr, flush=True)  # progress
            rows += model_rows
    print_table(header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
