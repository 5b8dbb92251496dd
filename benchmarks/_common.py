"""Shared helpers of the benchmark scripts: timing and the reference weights."""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

SHARED_DIR = Path(os.environ.get("FACE3D_SHARED_DIR", Path(__file__).resolve().parent.parent.parent / "shared"))
#: CPU flags worth naming next to a table.
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def machine_description() -> str:
    """One line naming the CPU, its CPUs for this process, the flags of :data:`SHOWN_FLAGS` it has and the load."""
    from face3d_core.models.cpu_info import cpu_flags, cpu_name

    flags = cpu_flags()
    shown = " ".join(f for f in SHOWN_FLAGS if f in flags) or "unknown"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (
        f"CPU: {cpu_name()} ({platform.machine()}), {len(os.sched_getaffinity(0))} CPUs for this process; "
        f"flags: {shown}; load average {load}"
    )


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Return the median wall time of ``fn()`` in milliseconds after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def load_fill():
    """Import ``shared/reference/fill.py`` or return None where shared/ is absent."""
    path = SHARED_DIR / "reference" / "fill.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("face3d_reference_fill", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table (pasteable into docs/)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time several functions in rounds (each once per round), so load changes hit all alike.

    Returns:
        Name -> ``repeats`` wall times in milliseconds (after ``warmup`` untimed calls each).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times
