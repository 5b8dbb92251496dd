"""Nothing is written outside the cache folder (issue 10, item 10).

A CLI run (``face3d depth``, ``mesh``, ``measure``) and a server run (``python -m dashboard``:
upload, depth map, 3D model, downloads) with ``HOME`` pointed at an empty temporary folder and
the default cache folder (``~/.cache/face3d``): afterwards every file under ``HOME``, ``TMPDIR``
and the working folder is listed, and the only ones allowed are in the cache folder and the
outputs the CLI was asked for. Libraries that write elsewhere by themselves (runtime telemetry,
config folders, a control socket) show up here: ONNX Runtime keeps a device id and a telemetry
database in ``~/.cache/Microsoft/DeveloperTools`` and a ``$TMPDIR/.ses`` file unless its
telemetry is off, which face3d's runtime module does (``ORT_DISABLE_TELEMETRY``; OpenVINO's
telemetry package is kept out the same way). The caller's own ``ORT_DISABLE_TELEMETRY`` is
removed, so the test sees what face3d does by itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import ids
from tests.harness import flows
from tests.harness.dash_client import DashHttp, output
from tests.harness.hostile_files import file_tree
from tests.harness.paths import FILL_PY, MODEL, PHOTO, YUNET_PATH, require
from tests.harness.processes import child_env
from tests.harness.servers import WebServer

pytestmark = pytest.mark.slow


def _sandbox(root: Path, fill_weights: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """An environment whose HOME, TMPDIR and working folder are empty folders under ``root``."""
    folders = {name: root / name for name in ("home", "tmp", "work", "out")}
    for folder in folders.values():
        folder.mkdir()
    env = child_env(HOME=str(folders["home"]), TMPDIR=str(folders["tmp"]), FACE3D_WEIGHTS_DIR=str(fill_weights))
    for name in ("FACE3D_CACHE_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        env.pop(name, None)  # the defaults: everything of face3d under ~/.cache/face3d
    env.pop("ORT_DISABLE_TELEMETRY", None)  # face3d must switch it off itself
    return env, folders


def _written_elsewhere(folders: dict[str, Path]) -> set[str]:
    cache = folders["home"] / ".cache" / "face3d"
    found = {f"~/{p}" for p in file_tree(folders["home"], exclude=cache)}
    found |= {f"$TMPDIR/{p}" for p in file_tree(folders["tmp"])}
    found |= {f"./{p}" for p in file_tree(folders["work"], exclude=folders["work"] / "server.log")}
    return found


def test_a_cli_run_writes_only_its_outputs_and_the_cache(tmp_path, fill_weights):
    require(PHOTO, YUNET_PATH, FILL_PY)
    env, folders = _sandbox(tmp_path, fill_weights)
    out = folders["out"]
    runs = [
        ["depth", "--no-progress", "--model", MODEL, "--out-dir", str(out), str(PHOTO)],
        ["mesh", str(PHOTO), "--model", MODEL, "--format", "obj", "--texture", "-o", str(out / "face.obj")],
        ["measure", str(PHOTO), "--model", MODEL, "--csv", str(out / "m.csv")],
    ]
    for argv in runs:
        done = subprocess.run(
            [sys.executable, "-m", "face3d_core.cli", *argv],
            cwd=folders["work"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0 or argv[0] == "measure", done.stderr[-2000:]
    assert (folders["home"] / ".cache" / "face3d").is_dir(), "the default cache folder was not used"
    assert _written_elsewhere(folders) == set()
    assert {"face.obj", "face.mtl", "face.png"} <= set(file_tree(out))


def test_a_server_run_writes_only_the_cache(tmp_path, fill_weights):
    require(PHOTO, YUNET_PATH, FILL_PY)
    env, folders = _sandbox(tmp_path, fill_weights)
    server = WebServer.dashboard(env, folders["work"] / "server.log", cwd=folders["work"]).start()
    try:
        client = DashHttp(server.url)
        defaults = flows.open_page(client)
        store = output(flows.upload(client, PHOTO.read_bytes(), PHOTO.name), ids.UPLOADS_STORE, "data")
        result = flows.generate_depth(client, store, store["items"][0]["sha"], timeout_s=300)
        flows.view_depth(client, result)
        values = flows.model3d_values(result, {**defaults, ids.MODEL3D_DISPLAY: "mesh"})
        flows.view_3d(client, values)
        for kind in ("png16", "npy"):
            assert output(flows.download(client, kind, {ids.DEPTH_RESULT_STORE: result}), ids.DOWNLOAD, "data")
        for kind in ("obj", "glb"):
            assert output(flows.download(client, kind, values), ids.DOWNLOAD, "data")
        flows.thumbnail(client, store["items"][0]["sha"])
    finally:
        server.stop()
    assert (folders["home"] / ".cache" / "face3d" / "results").is_dir(), "the default cache folder was not used"
    assert _written_elsewhere(folders) == set()
