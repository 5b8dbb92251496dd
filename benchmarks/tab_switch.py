"""No freeze at the first switch to a tab: main-thread blocking before and after the idle warm-up of plotly.js.

In headless Chromium with software WebGL (SwiftShader, as the e2e tests), a fresh page of
``python -m dashboard`` uploads two photos and clicks each tab once; the Long Tasks API adds up
the long tasks (>= 50 ms of main-thread work) from each click until the page is quiet
(:mod:`tests.harness.long_tasks`). Each round measures the page twice, interleaved on the same
server: *before* (``window.face3dWarmup = false``: plotly.js is loaded and compiled at the first
graph, as before issue 17) and *after* (the page warms it up while the browser is idle after it
loaded). A second measurement clicks *Generate* right after the first switch to the Depth tab (the
depth map served from the cache) and times the click to the depth map drawn.

Usage::

    python benchmarks/tab_switch.py                 # 10 rounds, a server of its own (fill.py weights)
    python benchmarks/tab_switch.py --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import SHARED_DIR, machine_description, print_table  # noqa: E402

FACES = SHARED_DIR / "data" / "faces"
PHOTOS = [FACES / "fr_obama_official_portrait.jpg", FACES / "skimage_astronaut.png"]
FILL_PY = SHARED_DIR / "reference" / "fill.py"
STEPS = {"depth": "first switch to Depth", "model3d": "first switch to 3D", "compare": "first switch to Compare",
         "upload": "back to Upload", "load": "page load + upload (idle)"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds (each: before and after; default 10)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from playwright.sync_api import sync_playwright

    from tests.doubles import write_fill_checkpoint
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.harness.browser_speed import wait_for_warm_server
    from tests.harness.long_tasks import first_tab_switches, generate_right_after_the_switch
    from tests.harness.processes import child_env
    from tests.harness.servers import WebServer

    if not FILL_PY.is_file() or not all(p.is_file() for p in PHOTOS):
        parser.error("needs ../shared (reference/fill.py and data/faces)")
    work = Path(tempfile.mkdtemp(prefix="face3d-tab-switch-"))
    write_fill_checkpoint(work / "weights", FILL_PY)
    env = child_env(FACE3D_CACHE_DIR=str(work / "cache"), FACE3D_WEIGHTS_DIR=str(work / "weights"))
    web = WebServer.dashboard(env, work / "server.log", start_timeout=120.0).start()
    measured: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    try:
        wait_for_warm_server(web.url, timeout_s=600)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            generate_right_after_the_switch(browser, web.url, PHOTOS[0])  # untimed: the depth map gets cached
            for _ in range(args.rounds):
                for when, warmup in (("before", False), ("after", True)):
                    steps = first_tab_switches(browser, web.url, PHOTOS, warmup=warmup)
                    for name, blocking in steps.items():
                        measured[when].setdefault(name, []).append(blocking.total_ms)
                    blocking, drawn_ms = generate_right_after_the_switch(browser, web.url, PHOTOS[0], warmup=warmup)
                    measured[when].setdefault("generate_blocking", []).append(blocking.total_ms)
                    measured[when].setdefault("generate_drawn", []).append(drawn_ms)
            browser.close()
    finally:
        web.stop()

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"

    print(
        f"\n# Main-thread blocking (ms of long tasks), headless Chromium, software WebGL, {args.rounds} rounds, "
        "median (min-max); before = plotly.js compiled at the first graph, after = warmed up while idle"
    )
    print(machine_description())
    rows = [[label, cell(measured["before"][name]), cell(measured["after"][name])] for name, label in STEPS.items()]
    rows.append(
        [
            "Depth + Generate at once: blocked",
            cell(measured["before"]["generate_blocking"]),
            cell(measured["after"]["generate_blocking"]),
        ]  # fmt: skip
    )
    rows.append(
        [
            "Depth + Generate at once: click -> depth map drawn (ms)",
            cell(measured["before"]["generate_drawn"]),
            cell(measured["after"]["generate_drawn"]),
        ]  # fmt: skip
    )
    print_table(["step", "before", "after"], rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), **measured}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
