"""The ``face3d`` process itself: exit codes kept by the fast exit, and a warm cache without torch or timm.

The command ends with ``os._exit`` after flushing (:func:`face3d_core.cli.console_main`); these
tests run it as users do, in a child process (``python -m face3d_core.cli``, the same entry point
as the ``face3d`` script), and read what ``-X importtime`` says it imported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from face3d_core import __version__
from tests.harness.paths import PORTRAIT_PHOTO, REPO_ROOT, YUNET_PATH, require

#: Packages a warm compiled-model cache must never import (the ~3 s of issue 9).
HEAVY = ("torch", "timm", "torchvision", "onnx")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE3D_", "XDG_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        FACE3D_CACHE_DIR=str(tmp_path / "cache"),
        FACE3D_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    if YUNET_PATH.is_file():
        env["FACE3D_YUNET_PATH"] = str(YUNET_PATH)
    env.update(extra)
    return env


def face3d(args: list[str], env: dict[str, str], cwd: Path, *, importtime: bool = False):
    """Run ``python [-X importtime] -m face3d_core.cli ARGS``; return the completed process."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "face3d_core.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)$", importtime_stderr, re.M)}


def test_the_fast_exit_keeps_exit_codes_and_output(tmp_path):
    (tmp_path / "home").mkdir()
    env = _env(tmp_path)
    version = face3d(["--version"], env, tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"face3d {__version__}"
    usage = face3d(["mesh", "--no-such-option", "x.jpg"], env, tmp_path)
    assert usage.returncode == 2 and "unrecognized arguments" in usage.stderr
    missing = face3d(["mesh", str(tmp_path / "absent.jpg"), "-o", str(tmp_path / "out.ply")], env, tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("face3d: error:")
    nothing = face3d([], env, tmp_path)
    assert nothing.returncode == 2 and "usage: face3d" in nothing.stdout  # help printed, then flushed


@pytest.mark.slow
def test_a_warm_compiled_model_cache_imports_neither_torch_nor_timm(tmp_path, fill_weights):
    require(PORTRAIT_PHOTO)
    (tmp_path / "home").mkdir()
    env = _env(tmp_path, FACE3D_WEIGHTS_DIR=str(fill_weights))
    out = tmp_path / "face.ply"
    cold = face3d(["mesh", str(PORTRAIT_PHOTO), "-o", str(out)], env, tmp_path, importtime=True)
    assert cold.returncode == 0, cold.stderr[-3000:]
    first = out.read_bytes()
    cold_imports = imported_modules(cold.stderr)
    assert "torch" in cold_imports  # the first run exports the network: that needs torch
    out.unlink()
    warm = face3d(["mesh", str(PORTRAIT_PHOTO), "-o", str(out)], env, tmp_path, importtime=True)
    assert warm.returncode == 0, warm.stderr[-3000:]
    warm_imports = imported_modules(warm.stderr)
    assert "face3d_core.models.estimator" in warm_imports  # the network ran ...
    assert not {name for name in warm_imports if name.split(".")[0] in HEAVY}  # ... without torch or timm
    assert out.read_bytes() == first  # the same model as the run that exported it
    assert f"{out}:" in warm.stdout
