"""UI speed of the face3d dashboard: slider updates, cache hit versus miss, figure sizes.

Everything goes through the real Dash app (Flask test client, the same JSON a browser gets):

* **slider update**: server time of the 3D view's callback (``/_dash-update-component``) for
  every slider position, first visit (reconstruction) and revisit (memory cache);
* **cache hit vs miss**: the depth network's first computation versus the same request again
  (from the memory tier and from the disk cache);
* **figure sizes**: JSON bytes of every figure the app sends.

Targets for a ~1 MP photo on this CPU: slider update < 150 ms server time, a 3D figure
< 3 MB, a cache hit at least 50x faster than the first computation.

Usage::

    python benchmarks/ui_speed.py                      # fill.py weights, ../shared photo
    python benchmarks/ui_speed.py --photo me.jpg --json out.json
    python benchmarks/ui_speed.py --fake-network       # no torch network at all
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import print_table  # noqa: E402

SHARED = Path(os.environ.get("FACE3D_SHARED_DIR", REPO_ROOT.parent / "shared"))
DEFAULT_PHOTO = SHARED / "data" / "faces" / "fr_obama_official_portrait.jpg"
SECOND_PHOTO = SHARED / "data" / "faces" / "skimage_astronaut.png"
FILL_PY = SHARED / "reference" / "fill.py"
YUNET = SHARED / "models" / "face_detection_yunet.onnx"

TARGET_SLIDER_MS = 150.0
TARGET_FIGURE_BYTES = 3_000_000
TARGET_HIT_SPEEDUP = 50.0


def figure_bytes(response: dict, component: str) -> int:
    """JSON bytes of one figure output in a callback response."""
    return len(json.dumps(response["response"][component]["figure"], separators=(",", ":")))


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the photo (default: a 1 MP portrait)")
    parser.add_argument("--model", default="midas_v21_small_256", help="depth model")
    parser.add_argument("--fake-network", action="store_true", help="use a stand-in depth network")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--verbose", action="store_true", help="also print every figure size as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.controls import DENSITY_STRIDE
    from face3d_core.pipeline import DepthRef
    from tests.doubles import FakeEstimator, write_fill_checkpoint
    from tests.harness import flows
    from tests.harness.dash_client import DashHttp

    work = Path(tempfile.mkdtemp(prefix="face3d-ui-speed-"))
    os.environ.setdefault("FACE3D_OFFLINE", "1")
    if YUNET.is_file():
        os.environ.setdefault("FACE3D_YUNET_PATH", str(YUNET))
    estimator_factory = None
    if args.fake_network:
        fake = FakeEstimator()
        estimator_factory = lambda name: fake  # noqa: E731
    elif "FACE3D_WEIGHTS_DIR" not in os.environ:
        if not FILL_PY.is_file():
            parser.error("no FACE3D_WEIGHTS_DIR and no ../shared/reference/fill.py: use --fake-network")
        write_fill_checkpoint(work / "weights", FILL_PY, args.model)
        os.environ["FACE3D_WEIGHTS_DIR"] = str(work / "weights")

    app = create_app(work / "cache", estimator_factory=estimator_factory)
    service = app.face3d.service
    dash = DashHttp.in_process(app)  # the same requests as a browser, through Flask's test client
    results: dict = {"photo": str(args.photo), "model": args.model, "fake_network": args.fake_network}

    # -- upload (decode, detect faces, thumbnail) ---------------------------------------
    response = flows.upload(dash, args.photo.read_bytes(), args.photo.name)
    seconds = dash.last.seconds
    store = response["response"][ids.UPLOADS_STORE]["data"]
    sha = store["items"][0]["sha"]
    meta = service.uploads.meta(sha)  # the stored photo (the page sees it under its session)
    face = 0 if meta.face_count else None
    results["photo_size"] = f"{meta.width}x{meta.height} ({meta.width * meta.height / 1e6:.2f} MP)"
    results["upload_ms"] = ms(seconds)

    # -- the expensive step: miss, then hits --------------------------------------------
    start = time.perf_counter()
    service.compute_depth(sha, args.model, face)
    first = time.perf_counter() - start
    start = time.perf_counter()
    service.compute_depth(sha, args.model, face)
    hit_memory = time.perf_counter() - start
    service.depth_maps.memory.clear()
    start = time.perf_counter()
    service.compute_depth(sha, args.model, face)
    hit_disk = time.perf_counter() - start
    warm_network = None
    if SECOND_PHOTO.is_file() and SECOND_PHOTO != args.photo:
        other = service.ingest_upload(SECOND_PHOTO.read_bytes(), SECOND_PHOTO.name)
        start = time.perf_counter()
        service.compute_depth(other.sha256, args.model, 0 if other.face_count else None)
        warm_network = time.perf_counter() - start
    # the Generate button for cached work: one request, no job
    generated = flows.start_depth(dash, store, sha, args.model)
    generate_seconds = dash.last.seconds
    assert generated.result["sha"] == sha
    results["depth"] = {
        "first_computation_ms": ms(first),
        "network_with_model_loaded_ms": ms(warm_network) if warm_network else None,
        "cache_hit_memory_ms": ms(hit_memory),
        "cache_hit_disk_ms": ms(hit_disk),
        "speedup_disk_hit": round(first / max(hit_disk, 1e-9), 1),
        "speedup_vs_warm_network": round(warm_network / max(hit_disk, 1e-9), 1) if warm_network else None,
        "generate_button_cached_ms": ms(generate_seconds),
    }

    source = {"sha": sha, "model": args.model, "face": face}
    response = flows.view_depth(dash, source, "Grayscale")
    results["figure_bytes"] = {
        "depth_photo": figure_bytes(response, ids.DEPTH_ORIGINAL_GRAPH),
        "depth_map": figure_bytes(response, ids.DEPTH_MAP_GRAPH),
    }

    # -- slider updates -----------------------------------------------------------------
    view = {"camera": None, "rev": 1}
    base = {
        ids.MODEL3D_SOURCE_STORE: source,
        ids.MODEL3D_SMOOTHING: 2.0,
        ids.MODEL3D_DENSITY: 3,
        ids.MODEL3D_DEPTH_SCALE: 1.0,
        ids.MODEL3D_DISPLAY: "points",
        ids.MODEL3D_COLORS: "gray",
        ids.MODEL3D_VIEW_STORE: view,
    }
    moves = [(ids.MODEL3D_SMOOTHING, v) for v in (0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 4.0)]
    moves += [(ids.MODEL3D_DEPTH_SCALE, v) for v in (0.5, 0.75, 1.25, 1.5, 2.0)]
    moves += [(ids.MODEL3D_DENSITY, v) for v in sorted(DENSITY_STRIDE)]
    moves += [(ids.MODEL3D_DISPLAY, "mesh"), (ids.MODEL3D_COLORS, "photo")]
    flows.view_3d(dash, base)  # the first view
    first_visit, revisit, sizes = [], [], {}
    for rounds, timings in ((0, first_visit), (1, revisit)):
        for component, value in moves:
            values = dict(base, **{component: value})
            response = flows.move_control(dash, values, component)
            timings.append(dash.last.seconds)
            if rounds == 0:
                sizes[f"{component}={value}"] = figure_bytes(response, ids.MODEL3D_GRAPH)
    # every display combination at every density (the largest figures)
    for density in sorted(DENSITY_STRIDE):
        for display in ("points", "mesh"):
            for colors in ("gray", "photo"):
                values = dict(
                    base, **{ids.MODEL3D_DENSITY: density, ids.MODEL3D_DISPLAY: display, ids.MODEL3D_COLORS: colors}
                )
                response = flows.move_control(dash, values, ids.MODEL3D_COLORS)
                sizes[f"density={density} {display} {colors}"] = figure_bytes(response, ids.MODEL3D_GRAPH)
                first_visit.append(dash.last.seconds)
    results["slider_update_ms"] = {
        "first_visit_median": ms(statistics.median(first_visit)),
        "first_visit_max": ms(max(first_visit)),
        "revisit_median": ms(statistics.median(revisit)),
        "revisit_max": ms(max(revisit)),
        "count": len(first_visit) + len(revisit),
    }
    results["figure_bytes"].update({f"3d {k}": v for k, v in sizes.items()})

    # -- comparison figures -------------------------------------------------------------
    if SECOND_PHOTO.is_file() and SECOND_PHOTO != args.photo and face is not None:
        other_face = 0 if other.face_count else None
        if other_face is not None:
            refs = [DepthRef(sha, args.model, face), DepthRef(other.sha256, args.model, other_face)]
            key, _ = service.comparisons.compute(refs)
            response = flows.view_comparison(dash, key, 2)
            results["compare_render_ms"] = ms(dash.last.seconds)
            for name, component in (
                ("compare 3d", ids.COMPARE_3D_GRAPH),
                ("compare profiles", ids.COMPARE_PROFILES_GRAPH),
                ("compare difference", ids.COMPARE_DIFF_GRAPH),
            ):
                results["figure_bytes"][name] = figure_bytes(response, component)

    # -- verdict ------------------------------------------------------------------------
    largest_3d = max(v for k, v in results["figure_bytes"].items() if k.startswith("3d") or k == "compare 3d")
    checks = {
        f"slider update < {TARGET_SLIDER_MS:.0f} ms (median of first visits)": results["slider_update_ms"][
            "first_visit_median"
        ]
        < TARGET_SLIDER_MS,
        f"slider update < {TARGET_SLIDER_MS:.0f} ms (slowest revisit)": results["slider_update_ms"]["revisit_max"]
        < TARGET_SLIDER_MS,
        f"largest 3D figure < {TARGET_FIGURE_BYTES / 1e6:.0f} MB ({largest_3d / 1e6:.2f} MB)": largest_3d
        < TARGET_FIGURE_BYTES,
        f"disk cache hit >= {TARGET_HIT_SPEEDUP:.0f}x faster than the first computation": results["depth"][
            "speedup_disk_hit"
        ]
        >= TARGET_HIT_SPEEDUP,
    }
    results["checks"] = checks
    if args.verbose:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    depth, slider = results["depth"], results["slider_update_ms"]
    figures = results["figure_bytes"]
    print(
        f"# UI speed, {results['photo_size']}, {results['model']}{' (stand-in network)' if args.fake_network else ''}"
    )
    print_table(
        ["measure", "baseline", "face3d", "target"],
        [
            ["depth map, first request (ms)", "-", f"{depth['first_computation_ms']:.0f}", "-"],
            [
                "depth map again: network rerun vs cache hit (ms)",
                f"{depth['network_with_model_loaded_ms']:.0f}",
                f"{depth['cache_hit_disk_ms']:.1f}",
                "-",
            ],
            ["cache hit speed-up vs first computation", "1x", f"{depth['speedup_disk_hit']:.0f}x", ">= 50x"],
            [
                "slider update, server ms (median / max, first visit)",
                "-",
                f"{slider['first_visit_median']:.0f} / {slider['first_visit_max']:.0f}",
                "< 150",
            ],
            [
                "slider update, server ms (median / max, revisit)",
                "-",
                f"{slider['revisit_median']:.0f} / {slider['revisit_max']:.0f}",
                "< 150",
            ],
            ["3D figure, default view (MB)", "-", f"{figures['3d model3d-density=3'] / 1e6:.2f}", "< 3"],
            ["3D figure, largest (MB)", "-", f"{largest_3d / 1e6:.2f}", "< 3"],
            ["depth map figure (MB)", "-", f"{figures['depth_map'] / 1e6:.2f}", "-"],
            [
                "compare: 3D views / profiles / difference (MB)",
                "-",
                f"{figures['compare 3d'] / 1e6:.2f} / {figures['compare profiles'] / 1e6:.3f} / "
                f"{figures['compare difference'] / 1e6:.3f}",
                "-",
            ],
        ],
    )
    for label, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    app.face3d.runner.shutdown()
    return 0 if (all(checks.values()) or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
