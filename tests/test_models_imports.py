"""Every ``face3d_core.models`` module imports on its own, with no import cycle (hidden or not).

A cycle between two modules that import each other at the top fails in one of the two import
orders; so each module is imported first, into an interpreter where no ``face3d_core`` module is
loaded. One fresh interpreter (a subprocess) does them all: it imports the third-party packages
once (torch, timm: seconds), then for each module forgets every ``face3d_core`` module and
imports that one. A second test forbids the way a cycle used to be hidden: importing another
``face3d_core`` module inside a function.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "face3d_core" / "models"
MODULES = sorted(f"face3d_core.models.{p.stem}" for p in MODELS_DIR.glob("*.py") if p.stem != "__init__")

_CHILD = """
import importlib, json, sys, traceback
import timm, torch  # third-party, imported once
failures = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "face3d_core" or m.startswith("face3d_core.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def test_each_models_module_imports_first_on_its_own():
    assert "face3d_core.models.dpt" in MODULES and "face3d_core.models.dpt_blocks" in MODULES
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, *MODULES],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    failures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"{name}:\n{text}" for name, text in failures.items())


def _function_level_imports_of_face3d(path: Path) -> list[str]:
    found = []
    for func in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("face3d_core"):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                found += [
                    f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith("face3d_core")
                ]
    return found


def test_models_modules_import_each_other_at_the_top_only():
    offenders = [hit for path in sorted(MODELS_DIR.glob("*.py")) for hit in _function_level_imports_of_face3d(path)]
    assert offenders == [], f"import these at the top of the module (a function-level import hides cycles): {offenders}"


def test_the_function_level_import_check_finds_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n\ndef build():\n    from face3d_core.models.dpt import DPTDepthModel\n    import os\n"
    )
    assert _function_level_imports_of_face3d(sample) == ["sample.py:4 from face3d_core.models.dpt"]
