"""UI speed of the face3d dashboard: slider updates, cache hit versus miss, figure sizes, a real browser.

The first part goes through the real Dash app in this process (Flask test client, the same JSON
a browser gets):

* **slider update**: server time of the 3D view's callback (``/_dash-update-component``) for
  every slider position, first visit (reconstruction) and revisit (memory cache);
* **cache hit vs miss**: the depth network's first computation versus the same request again
  (from the memory tier and from the disk cache);
* **figure sizes**: JSON bytes of every figure the app sends.

Targets for a ~1 MP photo on this CPU: slider update < 150 ms server time, a 3D figure
< 3 MB, a cache hit at least 50x faster than the first computation.

The **browser** part (``--browser-rounds``, default 3; needs Playwright and ``/usr/bin/chromium``,
software WebGL as in the e2e tests) starts ``python -m dashboard`` for each round with a fresh
results cache but the compiled-model cache of a first, untimed start (a warm server on a machine
that ran face3d before), waits until it has loaded its network in the background, then times the
user's waits with :func:`tests.harness.browser_speed.run_flow`: the first depth map, the 3D model
of a new face, the 3D model of a cached depth map, the density slider up and back, a comparison
with a new face. Each: click to figure data, click to drawn, ``Plotly.react`` alone (medians over
the rounds), points drawn; plus the server's time from start to its network ready and its peak
memory after the flow.

The **live** part (``--live-seconds``, default 10; 0: skip) measures the camera's live depth in
the same headless Chromium, whose camera plays the photo (a y4m written by
:mod:`tests.harness.fake_camera`), against a warm ``python -m dashboard``: one stream in each
precision this CPU offers (Exact fp32, Fast bf16 where native), then three streams at once while
an upload and a depth job run (their times are compared with the same work with no stream). Per
stream: depth frames drawn a second, the time from taking a camera frame to its depth drawn
(median and 90th percentile over the window), the network's time on the server; for the server:
process CPU time per depth frame (all threads) and peak RSS. Targets on this 2-core CPU: >= 8
frames/s Exact, >= 15 frames/s Fast, <= 250 ms median from frame to depth drawn (one stream).

Usage::

    python benchmarks/ui_speed.py                      # fill.py weights, ../shared photo
    python benchmarks/ui_speed.py --live-only --live-seconds 20   # only the camera's live depth
    python benchmarks/ui_speed.py --photo me.jpg --json out.json
    python benchmarks/ui_speed.py --fake-network --browser-rounds 0   # no network, no browser
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

from benchmarks._common import machine_description, print_table  # noqa: E402
from tests.harness.service_calls import compute_depth, ingest_upload  # noqa: E402

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
    parser.add_argument(
        "--browser-rounds", type=int, default=3, help="rounds of the real-browser flow (0: skip; default 3)"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run the browser flow against the app in this source folder (e.g. `git archive main`), "
        "given 10 s after its start where it has no /face3d/warmup",
    )
    parser.add_argument(
        "--live-seconds", type=float, default=10.0, help="seconds measured per live depth row (0: skip; default 10)"
    )
    parser.add_argument("--live-only", action="store_true", help="run only the live depth part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="face3d-ui-speed-"))
    os.environ.setdefault("FACE3D_CACHE_DIR", str(work / "cache"))  # compiled models too: nothing in ~/.cache

    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.controls import DENSITY_POINTS
    from face3d_core.compare import ComparisonItems
    from face3d_core.pipeline import DepthRef
    from tests.doubles import FakeEstimator, write_fill_checkpoint
    from tests.harness import flows
    from tests.harness.dash_client import DashHttp

    os.environ.setdefault("FACE3D_OFFLINE", "1")
    if YUNET.is_file():
        os.environ.setdefault("FACE3D_YUNET_PATH", str(YUNET))
    estimator_factory = None
    if args.fake_network:
        fake = FakeEstimator()
        estimator_factory = lambda *_: fake  # noqa: E731
    elif "FACE3D_WEIGHTS_DIR" not in os.environ:
        if not FILL_PY.is_file():
            parser.error("no FACE3D_WEIGHTS_DIR and no ../shared/reference/fill.py: use --fake-network")
        write_fill_checkpoint(work / "weights", FILL_PY, args.model)
        os.environ["FACE3D_WEIGHTS_DIR"] = str(work / "weights")

    if args.live_only:
        results = {"live": live_section(args.live_seconds, Path(os.environ["FACE3D_WEIGHTS_DIR"]), work / "live")}
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        return 0

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
    compute_depth(service, sha, args.model, face)
    first = time.perf_counter() - start
    start = time.perf_counter()
    compute_depth(service, sha, args.model, face)
    hit_memory = time.perf_counter() - start
    service.depth_maps.memory.clear()
    start = time.perf_counter()
    compute_depth(service, sha, args.model, face)
    hit_disk = time.perf_counter() - start
    warm_network = None
    if SECOND_PHOTO.is_file() and SECOND_PHOTO != args.photo:
        other = ingest_upload(service, SECOND_PHOTO.read_bytes(), SECOND_PHOTO.name)
        start = time.perf_counter()
        compute_depth(service, other.sha256, args.model, 0 if other.face_count else None)
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
    moves += [(ids.MODEL3D_DENSITY, v) for v in sorted(DENSITY_POINTS)]
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
    for density in sorted(DENSITY_POINTS):
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
            key = service.comparisons.compute(ComparisonItems(refs)).key
            response = flows.view_comparison(dash, key, 2)
            results["compare_render_ms"] = ms(dash.last.seconds)
            response = {
                **response,
                "response": {**response["response"], **flows.view_difference(dash, key, 2)["response"]},
            }
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
    app.face3d.runner.shutdown()
    if args.browser_rounds > 0 and not args.fake_network:
        weights = Path(os.environ["FACE3D_WEIGHTS_DIR"])
        if args.baseline_src is not None:
            results["browser_baseline"] = browser_rounds(
                args.browser_rounds, weights, work / "baseline", src=args.baseline_src.resolve()
            )
        results["browser"] = browser_rounds(args.browser_rounds, weights, work / "ours")
    if args.live_seconds > 0 and not args.fake_network:
        results["live"] = live_section(args.live_seconds, Path(os.environ["FACE3D_WEIGHTS_DIR"]), work / "live")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0 if (all(checks.values()) or not args.strict) else 1


#: Browser steps in the order of the flow, with what issue 9 calls them.
BROWSER_STEPS = {
    "first_depth": "first depth map (a job)",
    "model3d_new_face": "3D model of a new face (a job)",
    "model3d_cached": "3D model of a cached depth map",
    "slider_full": "density slider up (every pixel)",
    "slider_back": "density slider back (default)",
    "compare_one_new": "compare 2 faces, one new (a job)",
}


def browser_rounds(rounds: int, weights: Path, work: Path, src: Path | None = None) -> dict | None:
    """The real-browser part (see the module doc); None where Chromium or Playwright is missing.

    Args:
        rounds: Timed rounds (a server each).
        weights: Folder of the checkpoint.
        work: Scratch folder (caches, logs).
        src: Run the app of this source folder instead of this repository's (a baseline); a
            server without ``/face3d/warmup`` is used 10 s after it answers.
    """
    import shutil

    import requests

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.harness.browser_speed import FLOW_PHOTOS, new_page, run_flow, wait_for_warm_server
    from tests.harness.processes import child_env
    from tests.harness.servers import WebServer

    faces = DEFAULT_PHOTO.parent
    if not Path(CHROMIUM).is_file() or not all((faces / name).is_file() for name in FLOW_PHOTOS):
        print(f"\n(browser part skipped: {CHROMIUM} or the flow's photos are missing)")
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("\n(browser part skipped: Playwright is not installed)")
        return None

    work.mkdir(parents=True, exist_ok=True)
    extra = {"PYTHONPATH": str(src)} if src is not None else {}

    def server(cache: Path, name: str) -> WebServer:
        env = child_env(FACE3D_CACHE_DIR=str(cache), FACE3D_WEIGHTS_DIR=str(weights), **extra)
        return WebServer.dashboard(env, work / f"{name}.log", cwd=src, start_timeout=120.0)

    def wait_until_ready(web: WebServer, started: float, timeout_s: float = 180.0) -> None:
        answer = requests.get(web.url + "face3d/warmup", timeout=10)
        if "json" not in answer.headers.get("Content-Type", ""):  # an app without a background start-up
            time.sleep(max(0.0, started + 10.0 - time.perf_counter()))
        else:
            wait_for_warm_server(web.url, timeout_s=timeout_s)

    steps: dict[str, list[dict]] = {name: [] for name in BROWSER_STEPS}
    ready_s, peak_mb = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # round 0, untimed: the first run on a machine exports and verifies the network for these
            # photos (either app); later rounds start with a fresh results cache and that compiled one
            for index in range(rounds + 1):
                cache = work / f"browser-cache-{index}"
                if index and (work / "browser-cache-0" / "compiled").is_dir():
                    shutil.copytree(work / "browser-cache-0" / "compiled", cache / "compiled")
                web = server(cache, f"server-{index}")
                started = time.perf_counter()
                web.start()
                try:
                    wait_until_ready(web, started, timeout_s=600)
                    if index:
                        ready_s.append(time.perf_counter() - started)
                    page = new_page(browser, web.url)
                    try:
                        timings = run_flow(page, faces)
                    finally:
                        page.context.close()
                    if index:
                        for name, timing in timings.items():
                            steps[name].append(timing.to_dict())
                        rss = web.peak_rss_bytes()
                        peak_mb.append(rss / 2**20 if rss else float("nan"))
                    assert requests.get(web.url + "face3d/health", timeout=10).ok
                finally:
                    web.stop()
        finally:
            browser.close()

    def summary(values: list[float], digits: int = 0) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    which = f"the app in {src}" if src is not None else "this branch"
    print(
        f"\n# Real browser, {which}: headless Chromium, software WebGL (SwiftShader), {rounds} rounds, "
        "medians (min-max)"
    )
    print(machine_description())
    print_table(
        ["step", "click -> figure data ms", "click -> drawn ms", "Plotly.react ms", "points drawn", "polls"],
        [
            [
                label,
                summary([s["input_to_data_ms"] for s in steps[name]]),
                summary([s["input_to_drawn_ms"] for s in steps[name]]),
                summary([s["react_ms"] for s in steps[name]]),
                " + ".join(str(n) for n in steps[name][0]["points"] if n) or "-",
                summary([s["polls"] for s in steps[name]]),
            ]
            for name, label in BROWSER_STEPS.items()
        ],
    )
    print(
        f"server start to ready (network loaded in the background, or 10 s): {summary(ready_s, 1)} s; "
        f"server peak RSS after the flow: {summary(peak_mb)} MB"
    )
    return {"steps": steps, "server_ready_s": ready_s, "server_peak_rss_mb": peak_mb, "machine": machine_description()}


#: Targets of the live view on this 2-core CPU (issue 18).
TARGET_LIVE_FPS = {"fp32": 8.0, "bf16": 15.0}
TARGET_LIVE_LATENCY_MS = 250.0
LIVE_FRAMES_JS = "() => +document.getElementById('live-depth').getAttribute('data-frames')"


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_server_steps(work: Path, rounds: int = 40) -> dict:
    """The server's work per live frame, in this process: each step's median milliseconds, per precision.

    One 640 x 480 JPEG frame of the photo through :meth:`~dashboard.services.live.LiveStreams.frame`
    (decode, detection, crop, network, colours, encoding) on the app's own estimators, the precisions
    interleaved round by round so that a change of load hits all alike; plus the process's CPU time
    per frame (all threads).
    """
    import cv2

    from dashboard.services import Face3DService
    from dashboard.services.live import LiveLimits
    from dashboard.services.model_status import precision_choices_here
    from face3d_core.cache import ResultCache
    from face3d_core.images import decode_image

    photo = decode_image(DEFAULT_PHOTO.read_bytes())
    frame = cv2.resize(photo, (640, round(640 * photo.shape[0] / photo.shape[1])), interpolation=cv2.INTER_AREA)
    frame = frame[:480] if frame.shape[0] >= 480 else frame
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    service = Face3DService(ResultCache(work / "steps-cache"), detector_path=YUNET if YUNET.is_file() else None)
    live = service.live
    live.limits = LiveLimits(max_fps=1e6, burst=10**6)
    precisions = list(precision_choices_here().options)
    for precision in precisions:  # load, compile and verify, untimed
        service.depth_maps.estimator_factory(live.model, precision).load()
        for _ in range(3):
            live.frame(f"warm-{precision}", jpeg.tobytes(), precision=precision)
    steps: dict[str, dict[str, list[float]]] = {p: {} for p in precisions}
    cpu: dict[str, float] = dict.fromkeys(precisions, 0.0)
    for _ in range(rounds):
        for precision in precisions:
            cpu0, started = time.process_time(), time.perf_counter()
            answer = live.frame(f"steps-{precision}", jpeg.tobytes(), precision=precision)
            total = (time.perf_counter() - started) * 1000.0
            cpu[precision] += time.process_time() - cpu0
            for step, value in [*answer.timings_ms.items(), ("total", total)]:
                steps[precision].setdefault(step, []).append(value)
    return {
        precision: {
            **{step: statistics.median(values) for step, values in steps[precision].items()},
            "cpu_ms_per_frame": 1000.0 * cpu[precision] / rounds,
        }
        for precision in precisions
    }


def live_section(seconds: float, weights: Path, work: Path, streams: int = 3) -> dict | None:
    """The camera's live depth in a real browser (see the module doc); None where it cannot run here.

    Args:
        seconds: Length of each measured window.
        weights: Folder of the checkpoint.
        work: Scratch folder (cache, log, the camera's video).
        streams: Pages streaming at once in the last row.
    """
    from dashboard.services.model_status import precision_choices_here
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.harness import flows
    from tests.harness.browser_speed import wait_for_warm_server
    from tests.harness.dash_client import DashHttp, output
    from tests.harness.fake_camera import fake_camera_args, write_y4m
    from tests.harness.processes import child_env
    from tests.harness.servers import WebServer
    from tests.harness.users import photo_variant

    if seconds <= 0 or not Path(CHROMIUM).is_file() or not DEFAULT_PHOTO.is_file():
        print(f"\n(live part skipped: no time given, or {CHROMIUM} or {DEFAULT_PHOTO} is missing)")
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("\n(live part skipped: Playwright is not installed)")
        return None
    from dashboard import ids

    work.mkdir(parents=True, exist_ok=True)
    video = write_y4m(DEFAULT_PHOTO, work / "camera.y4m")
    env = child_env(FACE3D_CACHE_DIR=str(work / "cache"), FACE3D_WEIGHTS_DIR=str(weights))
    web = WebServer.dashboard(env, work / "server.log", start_timeout=180.0)
    precisions = list(precision_choices_here().options)

    def open_live(browser, precision: str):
        context = browser.new_context(viewport={"width": 1440, "height": 900}, permissions=["camera"])
        page = context.new_page()
        page.goto(web.url)
        page.wait_for_selector(f"#{ids.CAMERA_START}", timeout=120_000)
        page.click(f"#{ids.CAMERA_START}")
        page.wait_for_function(
            "() => window.face3dCamera.active() && document.getElementById('camera-video').videoWidth"
        )
        page.check(f"#{ids.LIVE_PRECISION} input[value={precision}]")
        page.click(f"#{ids.LIVE_START}")
        # the first frames of a precision may wait for its network to load, compile and verify
        page.wait_for_function(f"() => ({LIVE_FRAMES_JS})() >= 5", timeout=600_000)
        return page

    def upload_and_depth(variant: int) -> tuple[float, float]:
        dash = DashHttp(web.url)
        flows.open_page(dash)
        started = time.perf_counter()
        response = flows.upload(dash, photo_variant(DEFAULT_PHOTO, 18, variant), f"bench {variant}.jpg")
        uploaded = time.perf_counter()
        store = output(response, ids.UPLOADS_STORE, "data")
        flows.generate_depth(dash, store, store["items"][-1]["sha"], timeout_s=600)
        return uploaded - started, time.perf_counter() - uploaded

    def measure(pages: list, during=None) -> dict:
        for page in pages:
            page.evaluate("window.face3dCamera.clearHistory()")
        frames0 = [page.evaluate(LIVE_FRAMES_JS) for page in pages]
        cpu0, started = process_cpu_s(web.process.pid), time.perf_counter()
        extra = during() if during is not None else None
        time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
        frames1 = [page.evaluate(LIVE_FRAMES_JS) for page in pages]
        cpu1, elapsed = process_cpu_s(web.process.pid), time.perf_counter() - started
        drawn = [b - a for a, b in zip(frames0, frames1, strict=True)]
        per_stream = []
        for page, count in zip(pages, drawn, strict=True):
            history = page.evaluate("window.face3dCamera.history()")
            latencies = sorted(h["latency_ms"] for h in history)
            networks = [h["network_ms"] for h in history if h["network_ms"] is not None]
            per_stream.append(
                {
                    "fps": count / elapsed,
                    "latency_ms_median": statistics.median(latencies) if latencies else float("nan"),
                    "latency_ms_p90": latencies[int(0.9 * (len(latencies) - 1))] if latencies else float("nan"),
                    "network_ms_median": statistics.median(networks) if networks else float("nan"),
                }
            )
        return {
            "streams": per_stream,
            "seconds": elapsed,
            "server_cpu_ms_per_frame": 1000.0 * (cpu1 - cpu0) / max(1, sum(drawn)),
            "server_cpu_share": (cpu1 - cpu0) / elapsed / len(os.sched_getaffinity(0)),
            "during": extra,
        }

    results: dict = {"machine": machine_description(), "seconds": seconds}
    results["server_steps"] = steps = live_server_steps(work)
    print(f"\n# Live depth, the server's work per frame (in process, {len(steps)} precisions interleaved, medians)")
    print(machine_description())
    names = list(next(iter(steps.values())))
    print_table(
        ["precision", *[f"{name} ms" if name != "cpu_ms_per_frame" else "CPU ms / frame" for name in names]],
        [[precision, *[f"{row[name]:.1f}" for name in names]] for precision, row in steps.items()],
    )
    web.start()
    try:
        wait_for_warm_server(web.url, timeout_s=600)
        results["alone"] = dict(zip(("upload_s", "depth_s"), upload_and_depth(0), strict=True))
        with sync_playwright() as playwright:
            args = [*CHROMIUM_ARGS, *fake_camera_args(video)]
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
            try:
                for precision in precisions:
                    page = open_live(browser, precision)
                    results[precision] = measure([page])
                    page.context.close()
                pages = [open_live(browser, "fp32") for _ in range(streams)]
                results["streams"] = measure(
                    pages, during=lambda: dict(zip(("upload_s", "depth_s"), upload_and_depth(1), strict=True))
                )
                for page in pages:
                    page.context.close()
            finally:
                browser.close()
        rss = web.peak_rss_bytes()
        results["server_peak_rss_mb"] = rss / 2**20 if rss else None
    finally:
        web.stop()

    print(
        f"\n# Camera live depth: headless Chromium, fake camera 640x480 ({DEFAULT_PHOTO.name}), {seconds:g} s windows"
    )
    print(results["machine"])
    rows = []
    for name in [*precisions, "streams"]:
        run = results[name]
        for index, stream in enumerate(run["streams"]):
            label = f"{streams} streams, #{index + 1} (fp32)" if name == "streams" else f"1 stream, {name}"
            target = f">= {TARGET_LIVE_FPS[name]:g} /s, <= {TARGET_LIVE_LATENCY_MS:g} ms" if name != "streams" else "-"
            rows.append(
                [
                    label,
                    f"{stream['fps']:.1f}",
                    f"{stream['latency_ms_median']:.0f} ({stream['latency_ms_p90']:.0f})",
                    f"{stream['network_ms_median']:.0f}",
                    f"{run['server_cpu_ms_per_frame']:.0f}" if index == 0 else "",
                    target,
                ]
            )
    print_table(
        [
            "live depth",
            "frames/s",
            "frame -> depth drawn ms, median (p90)",
            "network ms",
            "server CPU ms / frame",
            "target",
        ],
        rows,
    )
    alone, during = results["alone"], results["streams"]["during"]
    print(
        f"upload + depth job (a new 1 MP photo): {alone['upload_s']:.2f} s + {alone['depth_s']:.2f} s alone, "
        f"{during['upload_s']:.2f} s + {during['depth_s']:.2f} s while {streams} streams run; "
        f"server peak RSS {results['server_peak_rss_mb']:.0f} MB"
    )
    return results


if __name__ == "__main__":
    sys.exit(main())
