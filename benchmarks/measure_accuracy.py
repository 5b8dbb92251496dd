"""Measurement accuracy in any pose and framing, on the open head scans (known answers), and its cost.

The scans of ``../shared/data/3d`` are rendered by the project's renderer in the issue's grid
(:mod:`tests.harness.scan_views`): 11 head poses (yaw 0, ±15, ±30, ±45; pitch ±10, ±15) x 3
framings (face about 120, 250, 400 pixels wide) x 2 kinds of depth: **metric** (exact depth in
mm) and **relative** (exact inverse depth with an unknown scale and shift: a flawless network;
compared after the 63 mm eye assumption). The truth is each scan's own distances, measured
once on its frontal view at 600 pixels (its points fixed once on the scan).

Prints (Markdown, for ``docs/measurement.md``):

1. the cost of measuring one face, before (``main``'s :mod:`face3d_core.measure`, read with
   ``git show``) and after, interleaved medians, and of comparing two faces;
2. a summary per pose and framing: the largest error of any distance, and how many were refused;
3. one table per scan: every distance's error per pose and framing (``m`` = mirrored from the
   visible side, ``–`` = refused), metric / relative;
4. with ``--before``, the same grid measured by ``main``'s code (each method against its own
   frontal truth).

Run: ``.venv/bin/python benchmarks/measure_accuracy.py [--before]`` (needs ../shared, or ``$FACE3D_SHARED_DIR``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import interleaved_times, machine_description, print_table  # noqa: E402
from face3d_core.measure import MEASUREMENTS, measure_face  # noqa: E402
from tests.harness import scan_views as sv  # noqa: E402
from tests.harness.paths import SCANS_DIR  # noqa: E402

TARGET = {"metric": 3.0, "relative": 8.0}
SHORT = {
    "eye_distance": "eyes",
    "nose_width": "nose w",
    "nose_height": "nose h",
    "nose_depth": "nose d",
    "nose_protrusion": "protr.",
    "mouth_width": "mouth",
    "face_width_eyes": "face w",
}


def main_measure_module():
    """``main``'s ``face3d_core/measure.py`` as a module (None where git or main is not there)."""
    try:
        text = subprocess.run(
            ["git", "show", "main:face3d_core/measure.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "measure_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("face3d_measure_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def timing(before) -> None:
    cases = [
        ("Lee Perry-Smith frontal, 250 px, relative", ("lee_perry_smith", 0, 0, 250), "relative"),
        ("Lee Perry-Smith yaw 20, 250 px, relative", ("lee_perry_smith", 20, 0, 250), "relative"),
        ("ICT yaw 20, 400 px, metric", ("ict", 20, 0, 400), "metric"),
        ("MediaPipe pitch 10, 120 px, relative", ("mediapipe", 0, 10, 120), "relative"),
    ]
    rows = []
    for label, key, kind in cases:
        params = sv.METRIC_PARAMS.replace(smoothing_sigma=2.0, depth_kind="metric" if kind == "metric" else "inverse")
        model = sv.render_view(*key).model(kind, params)
        fns = {"after": lambda model=model: measure_face(model)}
        if before is not None:
            fns["before"] = lambda model=model: before.measure_face(model)
        times = interleaved_times(fns, repeats=15, warmup=2)
        after = statistics.median(times["after"])
        if before is not None:
            old = statistics.median(times["before"])
            rows.append([label, f"{old:.1f} ms", f"{after:.1f} ms", f"+{after - old:.1f} ms"])
        else:
            rows.append([label, "–", f"{after:.1f} ms", "–"])
    print("Measuring one face (`measure_face`, default smoothing, median of 15 interleaved runs):\n")
    print_table(["face", "before (main)", "after", "added"], rows)
    print()


def compare_timing() -> None:
    from face3d_core.compare import align_face, align_face_3d, compare_pair

    a, b = sv.render_view("lee_perry_smith", 0, 0, 250), sv.render_view("lee_perry_smith", 20, 0, 250)
    ma, mb = a.model("relative"), b.model("relative")

    def flat():
        return compare_pair(*(align_face(v.inverse_depth, v.seeds_uv, mask=np.isfinite(v.depth_mm)) for v in (a, b)))

    def frame():
        return compare_pair(align_face_3d(ma), align_face_3d(mb))

    times = interleaved_times({"2d": flat, "3d": frame}, repeats=10, warmup=1)
    print("Comparing two faces (the same scan at yaw 0 and 20, relative depth, reconstructions given):\n")
    print_table(
        ["alignment", "median", "correlation of the two"],
        [
            ["2D by landmarks (before)", f"{statistics.median(times['2d']):.0f} ms", f"{flat().correlation:.3f}"],
            ["3D in the face frame (after)", f"{statistics.median(times['3d']):.0f} ms", f"{frame().correlation:.3f}"],
        ],
    )
    print()


def grid(measure) -> dict:
    """``(scan, yaw, pitch, px, kind) -> {name: (error %, status)}`` for the whole grid."""
    out = {}
    for name in sv.SCAN_NAMES:
        frontal = measure(sv.render_view(name, 0, 0, 600).model("metric"))
        truth = {m.name: m.value_mm for m in frontal.measurements}
        k = 63.0 / truth["eye_distance"]
        for px in sv.FRAMINGS:
            for yaw, pitch in sv.POSES:
                view = sv.render_view(name, yaw, pitch, px)
                for kind in ("metric", "relative"):
                    cells = {}
                    try:
                        result = measure(view.model(kind))
                    except ValueError:  # main's code: a profile's model without landmarks
                        out[name, yaw, pitch, px, kind] = {n: (float("nan"), "refused") for n, *_ in MEASUREMENTS}
                        continue
                    for m in result.measurements:
                        t = truth[m.name] * (k if kind == "relative" else 1.0)
                        status = getattr(m, "status", "reference" if m.reference else "measured")
                        if m.reference:
                            cells[m.name] = (0.0, "reference")
                        elif not np.isfinite(m.value_mm) or status == "refused" or not np.isfinite(t):
                            cells[m.name] = (float("nan"), "refused")
                        else:
                            cells[m.name] = (100.0 * (m.value_mm / t - 1.0), status)
                    out[name, yaw, pitch, px, kind] = cells
    return out


def cell(value: tuple[float, str]) -> str:
    error, status = value
    if status == "reference":
        return "ref"
    if status == "refused":
        return "–"
    return f"{error:+.1f}{'m' if status == 'mirrored' else ''}"


def summary(results: dict, title: str) -> None:
    rows = []
    for yaw, pitch in sv.POSES:
        row = [f"yaw {yaw:+g}, pitch {pitch:+g}"]
        for px in sv.FRAMINGS:
            parts = []
            for kind in ("metric", "relative"):
                errors, refused, total = [], 0, 0
                for name in sv.SCAN_NAMES:
                    for value in results[name, yaw, pitch, px, kind].values():
                        if value[1] == "reference":
                            continue
                        total += 1
                        if value[1] == "refused":
                            refused += 1
                        else:
                            errors.append(abs(value[0]))
                worst = f"{max(errors):.1f} %" if errors else "–"
                parts.append(f"{worst} ({refused}/{total} refused)")
            row.append(" / ".join(parts))
        rows.append(row)
    print(f"{title}: the largest |error| of any distance of the three scans, metric / relative:\n")
    print_table(["pose", *[f"face {px} px" for px in sv.FRAMINGS]], rows)
    inside = {"metric": [0, 0, 0], "relative": [0, 0, 0]}  # within target, outside, refused
    for (_name, yaw, pitch, _px, kind), cells in results.items():
        if abs(yaw) > 30 or abs(pitch) > 15:
            continue
        for error, status in cells.values():
            if status == "reference":
                continue
            if status == "refused":
                inside[kind][2] += 1
            else:
                inside[kind][0 if abs(error) <= TARGET[kind] else 1] += 1
    for kind, (ok, bad, refused) in inside.items():
        print(f"\n|yaw| <= 30, |pitch| <= 15, {kind}: {ok} within {TARGET[kind]:g} %, {bad} outside, {refused} refused")
    print()


def per_scan(results: dict) -> None:
    for name in sv.SCAN_NAMES:
        rows = []
        for yaw, pitch in sv.POSES:
            for px in sv.FRAMINGS:
                m, r = results[name, yaw, pitch, px, "metric"], results[name, yaw, pitch, px, "relative"]
                rows.append(
                    [f"{yaw:+g} / {pitch:+g}", str(px), *[f"{cell(m[n])} / {cell(r[n])}" for n, *_ in MEASUREMENTS]]
                )
        truth = sv.truth(name)
        print(f"{name} (truth: " + ", ".join(f"{SHORT[k]} {v:.1f}" for k, v in truth.items()) + " mm):\n")
        print_table(["yaw / pitch", "px", *[SHORT[n] for n, *_ in MEASUREMENTS]], rows)
        print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", action="store_true", help="also measure the grid with main's code")
    args = parser.parse_args()
    if not SCANS_DIR.exists():
        print(f"{SCANS_DIR} is absent: nothing to measure")
        return 0
    print(machine_description(), time.strftime("(%Y-%m-%d)"), "\n")
    before = main_measure_module()
    timing(before)
    compare_timing()
    results = grid(measure_face)
    summary(results, "After (this branch)")
    per_scan(results)
    if args.before and before is not None:
        summary(grid(before.measure_face), "Before (main)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
