"""Child program: the cache folder of a running server turns read-only under it, for real.

Run as ``python -m tests.harness.readonly_cache_server ROOT PHOTO_A PHOTO_B PHOTO_C`` inside a
private mount namespace (``unshare --mount --propagation private``, root; started by
:func:`run_readonly_cache_server`). It starts the dashboard with a stand-in network (cache in
``ROOT/cache``), uploads two photos, generates a depth map and a comparison over HTTP, then puts
a read-only bind mount over the cache folder while the server runs. Every request of the
read-only phase is timed (wall clock) together with the CPU time the server process used for it
(``/proc/<pid>/stat``); the mount is removed at the end and an upload must work again.

It prints one line ``READONLY_RESULT <json>``; the test asserts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "READONLY_RESULT"
#: Longest wait for one request of the read-only phase (the defect made them hang for minutes).
REQUEST_TIMEOUT_S = 20.0


def run_readonly_cache_server(root: Path, photos: list[Path], env: dict[str, str]) -> dict[str, Any]:
    """Run this program in a private mount namespace and return its findings."""
    command = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", __name__, str(root)]
    command += [str(path) for path in photos]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    match = re.search(rf"{MARKER} (\{{.*\}})", completed.stdout)
    log = (root / "server.log").read_text(errors="replace")[-4000:] if (root / "server.log").exists() else ""
    assert match, f"rc {completed.returncode}\n{completed.stdout[-3000:]}\n{completed.stderr[-4000:]}\n{log}"
    return json.loads(match.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, in seconds (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> None:
    """Run the scenario and print the findings."""
    root, photo_a, photo_b, photo_c = Path(argv[0]), *map(Path, argv[1:4])
    from dashboard import ids
    from tests.harness import flows
    from tests.harness.dash_client import DashHttp, alert_texts, output
    from tests.harness.servers import fake_network_server

    out: dict[str, Any] = {}
    server = fake_network_server(root).start()
    cache_dir = str(server.cache_dir)
    try:
        client = DashHttp(server.url, timeout=REQUEST_TIMEOUT_S)
        defaults = flows.open_page(client)
        store = None
        for name, path in (("a.png", photo_a), ("b.jpg", photo_b)):
            store = output(flows.upload(client, path.read_bytes(), name, store), ids.UPLOADS_STORE, "data")
        sha_a, sha_b = (item["sha"] for item in store["items"])
        depth_a = flows.generate_depth(client, store, sha_a, timeout_s=60)
        comparison = flows.generate_comparison(client, store, [sha_a, sha_b], timeout_s=60)
        running = flows.start_depth(client, store, sha_b, model="dpt_levit_224")  # a job record to poll later
        assert running.job, running.response
        running_result = flows.wait_for_depth(client, running, timeout_s=60)

        subprocess.run(["mount", "--bind", cache_dir, cache_dir], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", cache_dir], check=True)
        pid = server.process.pid
        cpu_start = cpu_seconds(pid)
        requests_out: list[dict[str, Any]] = []

        def timed(label: str, request: Callable[[], Any], check: Callable[[Any], Any]) -> None:
            cpu_before, started = cpu_seconds(pid), time.perf_counter()
            entry: dict[str, Any] = {"request": label}
            try:
                entry["result"] = check(request())
            except Exception as exc:  # noqa: BLE001 - a timeout or failed request is the finding
                entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            entry["seconds"] = round(time.perf_counter() - started, 3)
            entry["server_cpu_s"] = round(cpu_seconds(pid) - cpu_before, 3)
            requests_out.append(entry)

        def texts(response: Any) -> str:
            return json.dumps(response)[:2000] + " ".join(alert_texts(response))

        def one_round(client: DashHttp, suffix: str) -> None:
            for label, sha in (("thumbnail a", sha_a), ("thumbnail b", sha_b)):
                timed(
                    label + suffix,
                    lambda sha=sha: flows.thumbnail(client, sha),
                    lambda reply: {"status": reply.status_code, "jpeg": reply.content[:2] == b"\xff\xd8"},
                )
            timed(
                "gallery" + suffix,
                lambda: flows.gallery(client, store),
                lambda response: output(response, ids.GALLERY_COUNT, "children"),
            )
            timed(
                "depth view" + suffix,
                lambda: flows.view_depth(client, depth_a),
                lambda response: str(output(response, ids.DEPTH_CAPTION, "children", "")),
            )
            timed(
                "3D view" + suffix,
                lambda: flows.view_3d(client, flows.model3d_values(depth_a, defaults)),
                lambda response: str(output(response, ids.MODEL3D_STATS, "children", ""))[:200],
            )
            timed(
                "comparison view" + suffix,
                lambda: flows.view_comparison(client, comparison["key"], comparison["count"]),
                lambda response: output(response, ids.COMPARE_RESULTS, "hidden"),
            )
            timed(
                "job poll" + suffix,
                lambda: flows.poll_depth(client, running, 99),
                lambda response: output(response, ids.DEPTH_RESULT_STORE, "data") == running_result or texts(response),
            )
            timed(
                "upload" + suffix,
                lambda: flows.upload(client, photo_c.read_bytes(), "c.jpg", store),
                texts,
            )
            timed(
                "generate" + suffix,
                lambda: flows.start_depth(client, store, sha_a, model="dpt_swin2_tiny_256").response,
                texts,
            )

        for round_number in (1, 2):  # the second round: new connections, new server threads
            one_round(DashHttp(server.url, client.session, timeout=REQUEST_TIMEOUT_S), f"#{round_number}")
        out["requests"] = requests_out
        time.sleep(2.0)  # anything still spinning in the server shows up here
        out["server_cpu_read_only_s"] = round(cpu_seconds(pid) - cpu_start, 3)
        out["server_alive"] = server.alive()

        subprocess.run(["umount", "-l", cache_dir], check=True)
        client = DashHttp(server.url, client.session, timeout=60)
        response = flows.upload(client, photo_c.read_bytes(), "c.jpg", store)
        out["writable_again_items"] = len(output(response, ids.UPLOADS_STORE, "data", {}).get("items", []))
    finally:
        server.stop()
    print(f"{MARKER} {json.dumps(out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
