"""Packaging: a face detector placed in ``face3d_core/data`` travels with ``pip install -e .`` and with a wheel.

The repository never holds the ONNX file (``*.onnx`` is ignored), so each test copies the sources
to a temporary folder, puts a stand-in file under the detector's name there (packaging does not
look inside it), and builds or installs that copy, offline (``--no-index``, no build isolation:
the setuptools of this environment builds it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from face3d_core.data import DETECTOR_FILE_NAME, DETECTOR_LICENSE
from tests.harness.paths import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STAND_IN = b"\x08\x07stand-in for the YuNet ONNX file " * 64


def _source_copy(root: Path) -> Path:
    """The package sources (face3d_core, dashboard, pyproject.toml, README.md) with a detector placed."""
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.onnx", "*.egg-info")
    for package in ("face3d_core", "dashboard"):
        shutil.copytree(REPO_ROOT / package, src / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    (src / "face3d_core" / "data" / DETECTOR_FILE_NAME).write_bytes(STAND_IN)
    return src


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _fresh_venv(folder: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(folder)])
    return folder / "bin" / "python"


def _build_env() -> dict[str, str]:
    """This environment's setuptools for the build step (a fresh venv's bundled one may be too old)."""
    import sysconfig

    env = dict(os.environ)
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _packaged_file_seen_by(python: Path, cwd: Path) -> tuple[str, bytes]:
    probe = (
        "import face3d_core, face3d_core.data as d, sys; p = d.packaged_detector_path(); "
        "sys.stdout.write(face3d_core.__file__ + '\\n' + p.read_bytes().hex())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACE3D_YUNET_PATH")}
    done = _run([str(python), "-c", probe], cwd=cwd, env=env)
    module_file, data_hex = done.stdout.split("\n")
    return module_file, bytes.fromhex(data_hex)


@pytest.fixture(scope="module")
def shared_venv(tmp_path_factory) -> Path:
    """One new virtual environment for the install tests of this module."""
    return _fresh_venv(tmp_path_factory.mktemp("packaging") / "venv")


@pytest.fixture
def fresh_python(shared_venv) -> Path:
    """The module's virtual environment with no face3d in it (an earlier test's install is removed first)."""
    own_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # this venv's face3d, not ours
    _run([str(shared_venv), "-m", "pip", "uninstall", "-y", "-q", "face3d"], env=own_env)
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('face3d_core') is not None)"
    _run([str(shared_venv), "-c", probe], cwd=shared_venv.parent.parent)
    return shared_venv


def test_a_wheel_carries_the_placed_detector_and_its_licence(tmp_path, fresh_python):
    src = _source_copy(tmp_path)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), "."],
        cwd=src,
        env=_build_env(),
    )
    (wheel,) = dist.glob("face3d-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read(f"face3d_core/data/{DETECTOR_FILE_NAME}") == STAND_IN
        assert b"MIT" in archive.read(f"face3d_core/data/{DETECTOR_LICENSE}")
    assert "face3d_core/data/README.md" in names and "face3d_core/data/__main__.py" in names

    # installed from the wheel into a fresh environment, the file is where face3d looks for it
    _run([str(fresh_python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], env=_build_env())
    module_file, data = _packaged_file_seen_by(fresh_python, cwd=tmp_path)
    assert "site-packages" in module_file and data == STAND_IN


def test_an_editable_install_uses_the_file_in_the_source_tree(tmp_path, fresh_python):
    src = _source_copy(tmp_path)
    python = fresh_python
    _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-e", str(src)],
        env=_build_env(),
    )
    module_file, data = _packaged_file_seen_by(python, cwd=tmp_path)
    assert Path(module_file).resolve().is_relative_to(src.resolve()) and data == STAND_IN
    replaced = STAND_IN[::-1]
    (src / "face3d_core" / "data" / DETECTOR_FILE_NAME).write_bytes(replaced)  # vendored again: seen at once
    assert _packaged_file_seen_by(python, cwd=tmp_path)[1] == replaced


def test_the_sdist_route_of_python_m_build_keeps_the_detector(tmp_path):
    """``python -m build`` makes an sdist, then the wheel from the unpacked sdist: the file survives both."""
    import tarfile

    src = _source_copy(tmp_path)
    build = "import sys; from setuptools import build_meta as b; sys.stdout.write(getattr(b, sys.argv[1])(sys.argv[2]))"
    sdist_name = _run([sys.executable, "-c", build, "build_sdist", str(tmp_path / "sdist")], cwd=src).stdout
    sdist_name = sdist_name.splitlines()[-1]  # setuptools logs to stdout first
    with tarfile.open(tmp_path / "sdist" / sdist_name) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert (unpacked / "face3d_core" / "data" / DETECTOR_FILE_NAME).read_bytes() == STAND_IN
    wheel_name = _run([sys.executable, "-c", build, "build_wheel", str(tmp_path / "wheel")], cwd=unpacked).stdout
    wheel_name = wheel_name.splitlines()[-1]
    with zipfile.ZipFile(tmp_path / "wheel" / wheel_name) as archive:
        assert archive.read(f"face3d_core/data/{DETECTOR_FILE_NAME}") == STAND_IN
        assert f"face3d_core/data/{DETECTOR_LICENSE}" in archive.namelist()
