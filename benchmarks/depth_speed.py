"""Depth inference speed per runtime versus plain eager fp32 ``model(x)``, same weights and input.

For each model, median milliseconds per forward pass at the network's input size of
  * eager fp32: the bare network, eval mode, fp32, NCHW, ``torch.no_grad``, ``model(x)`` (baseline);
  * ``DepthEstimator.infer`` forced to each backend: PyTorch (BatchNorm folded, channels-last),
    ONNX Runtime, OpenVINO fp32 and, where the CPU has native bf16, OpenVINO bf16 and PyTorch bf16
    autocast; ``auto`` marks what the app uses by default;
with the max and mean deviation from the baseline as fractions of its std (fp32 tolerance 1e-3 max,
the reference tolerance 1e-2 / 1e-3), and the share of the CPU's measured peak: the network's FLOPs
(``torch.utils.flop_counter``, a multiply-add = 2 FLOPs) per second over the best GFLOP/s of a
matmul/convolution probe at the same precision.
Weights come from ``shared/reference/fill.py`` (deterministic; speed does not depend on the values).
Run: ``.venv/bin/python benchmarks/depth_speed.py [--models a b] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import load_fill, median_ms, print_table  # noqa: E402
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
#: Flags worth naming at the top of the table.
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def peak_gflops(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best GFLOP/s of a 1024^3 matmul and a 3x3 convolution (256 -> 256 channels, 56x56) in ``dtype``."""
    a = torch.randn(1024, 1024).to(dtype)
    b = torch.randn(1024, 1024).to(dtype)
    image = torch.randn(1, 256, 56, 56).to(dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(dtype).to(memory_format=torch.channels_last).eval()
    probes = [
        (lambda: torch.mm(a, b), 2 * 1024**3),
        (lambda: conv(image), 2 * 256 * 256 * 9 * 56 * 56),
    ]
    best = 0.0
    with torch.no_grad():
        for fn, flops in probes:
            fn()
            count, start = 0, time.perf_counter()
            times = []
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
                count += 1
            best = max(best, flops / min(times) / 1e9)
    return best


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


def bench_model(name: str, fill, repeats: int, folder: Path, peaks: dict[str, float], bf16: bool) -> list[list[str]]:
    spec = get_spec(name)
    net = spec.build().eval()
    state = fill.fill_state_dict(net.state_dict())
    net.load_state_dict(state, strict=True)
    weights = folder / spec.file_name
    torch.save(state, weights)
    x = torch.randn(1, 3, *spec.net_size, generator=torch.Generator().manual_seed(0))
    flops = count_flops(net, x)
    with torch.no_grad():
        ref = net(x).numpy()
        base_ms = median_ms(lambda: net(x), repeats)
    size = f"{spec.net_size[0]}x{spec.net_size[1]}"
    rows = [[f"{name} {size}, {flops / 1e9:.1f} GFLOP", "", "", "", ""]]
    rows.append(_row("eager fp32 (baseline)", base_ms, base_ms, flops, peaks["fp32"], ref, ref))
    default = DepthEstimator(name, weights=weights, device="cpu").backend
    runs = [("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32")]
    if bf16:
        runs += [("openvino", "bf16"), ("torch", "bf16")]
    x_np = x.numpy()
    for backend, precision in runs:
        if backend == "onnxruntime" and not onnxruntime_available():
            continue
        if backend == "openvino" and not openvino_available():
            continue
        est = DepthEstimator(name, weights=weights, device="cpu", precision=precision, backend=backend)
        out = est.infer_array(x_np)
        ms = median_ms(lambda est=est: est.infer_array(x_np), repeats)
        report = est.runtime_report()
        label = f"{report.backend} {report.precision}"
        if (report.backend, report.precision) != (backend, precision):
            label += f" (asked {backend} {precision})"
        if backend == default and precision == "fp32":
            label += " = auto"
        rows.append(_row(label, ms, base_ms, flops, peaks[report.precision], out, ref))
        print(f"{name}: {' | '.join(rows[-1])}", file=sys.stderr, flush=True)  # progress
        del est
    weights.unlink()
    return rows


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
    peaks = {"fp32": peak_gflops(torch.float32)}
    peaks["bf16"] = peak_gflops(torch.bfloat16) if bf16 else float("nan")
    print(f"CPU: {cpu_name()} ({platform.machine()}), {len(os.sched_getaffinity(0))} CPUs for this process")
    print(f"flags: {' '.join(f for f in SHOWN_FLAGS if f in flags) or 'unknown'}")
    print(
        f"native bf16: {bf16} (flags {sorted(flags & BF16_FLAGS) or 'none'}); measured peak "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (matmul/conv probe, PyTorch)"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} after 2 warm-up")
    header = ["runtime", "ms", "speed-up", "GFLOP/s (% of peak)", "dev max / mean (x std)"]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACE3D_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in args.models:
            rows += bench_model(name, fill, args.repeats, Path(tmp), peaks, bf16)
    print_table(header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
