"""Depth inference speed: our path versus plain eager fp32 ``model(x)``, same weights and input.

For each model: median milliseconds per forward pass of
  * baseline: the bare network, eval mode, fp32, NCHW, ``torch.no_grad``;
  * ours fp32: what ``DepthEstimator`` runs on the CPU (inference mode, BatchNorm folded into
    the convolutions, channels-last), with the max deviation from the baseline as a fraction
    of the output's std (the reference tolerance is 1e-2 max, 1e-3 mean);
  * ours bf16 (optional on the CPU): autocast bfloat16, with its deviation.
Weights come from ``shared/reference/fill.py`` (deterministic; the speed does not depend on the
values). Run: ``.venv/bin/python benchmarks/depth_speed.py [--models a b] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import load_fill, median_ms, print_table  # noqa: E402
from face3d_core.models.acceleration import accelerate_for_cpu  # noqa: E402
from face3d_core.models.registry import get_spec, list_models  # noqa: E402

DEFAULT_MODELS = ["midas_v21_small_256", "dpt_levit_224", "dpt_swin2_tiny_256", "depth_anything_v2_vits",
                  "dpt_hybrid_384"]


def bench_model(name: str, fill, repeats: int, bf16: bool) -> list[str]:
    spec = get_spec(name)
    net = spec.build().eval()
    net.load_state_dict(fill.fill_state_dict(net.state_dict()), strict=True)
    x = torch.randn(1, 3, *spec.net_size, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        ref = net(x)
        base_ms = median_ms(lambda: net(x), repeats)
    fast = accelerate_for_cpu(net, x)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = fast(x_cl)
        ours_ms = median_ms(lambda: fast(x_cl), repeats)
    std = float(ref.std())
    dev = float((out - ref).abs().max()) / std
    mean_dev = float((out - ref).abs().mean()) / std
    row = [name, f"{spec.net_size[0]}x{spec.net_size[1]}", f"{base_ms:.1f}", f"{ours_ms:.1f}",
           f"{base_ms / ours_ms:.2f}x", f"{dev:.1e} / {mean_dev:.1e}"]
    if bf16:
        def run_bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fast(x_cl)

        with torch.inference_mode():
            out16 = run_bf16().float()
            bf_ms = median_ms(run_bf16, repeats)
        row += [f"{bf_ms:.1f}", f"{base_ms / bf_ms:.2f}x",
                f"{float((out16 - ref).abs().max()) / std:.1e} / {float((out16 - ref).abs().mean()) / std:.1e}"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list_models())
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 10)))
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args()
    fill = load_fill()
    if fill is None:
        print("shared/reference/fill.py not found: nothing to benchmark")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    header = ["model", "input", "eager fp32 ms", "ours fp32 ms", "speed-up", "fp32 dev max/mean (x std)"]
    if not args.no_bf16:
        header += ["ours bf16 ms", "bf16 speed-up", "bf16 dev max/mean"]
    rows = [bench_model(name, fill, args.repeats, not args.no_bf16) for name in args.models]
    print_table(header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
