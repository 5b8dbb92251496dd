"""Depth inference speed: our path versus plain eager fp32 ``model(x)``, same weights and input.

For each model: median milliseconds per forward pass of
  * baseline: the bare network, eval mode, fp32, NCHW, ``torch.no_grad``, ``model(x)``;
  * ours: ``DepthEstimator.infer`` as the app runs it on the CPU (fp32; ONNX Runtime where the
    registry says so, else PyTorch with BatchNorm folded and channels-last), with the max and mean
    deviation from the baseline as fractions of the output's std (reference tolerance: 1e-2 / 1e-3);
  * optional bf16 autocast, only on CPUs with native bf16 (elsewhere it is emulated and minutes slow).
Weights come from ``shared/reference/fill.py`` (deterministic; speed does not depend on the values).
Run: ``.venv/bin/python benchmarks/depth_speed.py [--models a b] [--repeats N] [--bf16]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import load_fill, median_ms, print_table  # noqa: E402
from face3d_core.models.estimator import DepthEstimator, _cpu_has_native_bf16  # noqa: E402
from face3d_core.models.registry import get_spec, list_models  # noqa: E402

DEFAULT_MODELS = [
    "midas_v21_small_256",
    "dpt_levit_224",
    "dpt_swin2_tiny_256",
    "depth_anything_v2_vits",
    "dpt_hybrid_384",
]


def bench_model(name: str, fill, repeats: int, bf16: bool, folder: Path) -> list[str]:
    spec = get_spec(name)
    net = spec.build().eval()
    state = fill.fill_state_dict(net.state_dict())
    net.load_state_dict(state, strict=True)
    weights = folder / spec.file_name
    torch.save(state, weights)
    x = torch.randn(1, 3, *spec.net_size, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        ref = net(x)
        base_ms = median_ms(lambda: net(x), repeats)
    est = DepthEstimator(name, weights=weights, device="cpu", precision="fp32")
    est.load()
    out = est.infer(x)
    ours_ms = median_ms(lambda: est.infer(x), repeats)
    std = float(ref.std())
    row = [
        name,
        f"{spec.net_size[0]}x{spec.net_size[1]}",
        f"{base_ms:.1f}",
        f"{ours_ms:.1f} ({est.backend})",
        f"{base_ms / ours_ms:.2f}x",
        f"{float((out - ref).abs().max()) / std:.1e} / {float((out - ref).abs().mean()) / std:.1e}",
    ]
    if bf16:
        est16 = DepthEstimator(name, weights=weights, device="cpu", precision="bf16")
        out16 = est16.infer(x)
        bf_ms = median_ms(lambda: est16.infer(x), repeats)
        row += [
            f"{bf_ms:.1f}",
            f"{base_ms / bf_ms:.2f}x",
            f"{float((out16 - ref).abs().max()) / std:.1e} / {float((out16 - ref).abs().mean()) / std:.1e}",
        ]
    weights.unlink()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list_models())
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 15)))
    parser.add_argument("--bf16", action="store_true", help="also bf16 (default: only with native CPU bf16)")
    args = parser.parse_args()
    fill = load_fill()
    if fill is None:
        print("shared/reference/fill.py not found: nothing to benchmark")
        return 0
    bf16 = args.bf16 or _cpu_has_native_bf16()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"native bf16: {_cpu_has_native_bf16()}"
    )
    header = ["model", "input", "eager fp32 ms", "ours fp32 ms", "speed-up", "dev max / mean (x std)"]
    if bf16:
        header += ["ours bf16 ms", "bf16 speed-up", "bf16 dev max / mean"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FACE3D_CACHE_DIR", str(Path(tmp) / "cache"))
        rows = [bench_model(name, fill, args.repeats, bf16, Path(tmp)) for name in args.models]
    print_table(header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
