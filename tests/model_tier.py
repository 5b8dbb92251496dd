"""``make test-models``: the full-size network checks, one network per pytest process.

Each network's ``models`` tests (:mod:`tests.harness.model_tiers`) run in a fresh process, so its
weights (up to 1.4 GB in float32, several copies while exporting) are given back to the system
before the next network starts. The peak memory of every process is measured (``wait4``) and a
process over the budget (6 GB by default) fails the tier, as a failing test does.

Usage::

    .venv/bin/python -m tests.model_tier                    # every network
    .venv/bin/python -m tests.model_tier dpt_large_384      # one network
    .venv/bin/python -m tests.model_tier --budget-gb 8 -- -x --durations=5

Arguments after ``--`` go to each pytest run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from dashboard.allocator import MMAP_THRESHOLD_BYTES  # noqa: E402
from dashboard.allocator import TRIM_THRESHOLD_BYTES as TRIM_BYTES  # noqa: E402
from tests.harness.model_tiers import BUDGET_EXCEPTIONS_GB, MODEL_OPTION  # noqa: E402

#: The modules that hold ``models`` tests.
TIER_FILES = (
    "tests/test_models_dpt.py",
    "tests/test_models_app_runtime.py",
    "tests/test_estimator.py",
)
#: pytest's exit status when nothing was selected.
NO_TESTS = 5
DEFAULT_BUDGET_GB = 6.0


@dataclass
class Run:
    """One network's pytest process."""

    model: str
    exit_code: int
    wall_s: float
    peak_rss_gb: float
    summary: str


def _registry_names() -> list[str]:
    from face3d_core.models.registry import list_models

    return list(list_models())


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\b(passed|failed|error|skipped|deselected)\b", line)]
    return lines[-1].strip("= ") if lines else ""


def run_one(model: str, pytest_args: list[str]) -> Run:
    """Run one network's ``models`` tests in a child process and measure it."""
    basetemp = Path(tempfile.mkdtemp(prefix=f"face3d-{model}-"))  # checkpoints and compiled models: GBs
    argv = [sys.executable, "-m", "pytest", "-m", "models", MODEL_OPTION, model, f"--basetemp={basetemp}"]
    argv += [*pytest_args, *TIER_FILES]
    started = time.monotonic()
    # glibc tuned as the server tunes itself (dashboard/allocator.py): freed GB-sized weights go back
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD_BYTES), MALLOC_TRIM_THRESHOLD_=str(TRIM_BYTES))
    child = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def forward(signum: int, _frame) -> None:  # the child stops its own servers, then we end alike
        child.send_signal(signum)
        child.wait()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    chunks = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            chunks.append(line)
        _pid, status, usage = os.wait4(child.pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(basetemp, ignore_errors=True)
    child.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        model=model,
        exit_code=child.returncode,
        wall_s=time.monotonic() - started,
        peak_rss_gb=usage.ru_maxrss / 2**20,  # kB on Linux
        summary=_summary("".join(chunks)),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the tier and print one row per network; non-zero if a network failed or went over budget."""
    args = sys.argv[1:] if argv is None else argv
    pytest_args: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, pytest_args = args[:split], args[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="networks to check (default: every registered one)")
    parser.add_argument("--budget-gb", type=float, default=DEFAULT_BUDGET_GB, help="peak RSS allowed per process")
    options = parser.parse_args(args)
    models = options.models or _registry_names()
    runs = []
    for model in models:
        print(f"\n=== {model}: full-size checks in a process of their own ===", flush=True)
        runs.append(run_one(model, ["-q", "-p", "no:cacheprovider", *pytest_args]))
    from benchmarks._common import machine_description

    print(f"\n## make test-models\n\n{machine_description()}\n")
    print("| network | result | wall | peak RSS |\n|---|---|---|---|")
    failed = []
    for run in runs:
        allowed = max(options.budget_gb, BUDGET_EXCEPTIONS_GB.get(run.model, 0.0))
        over = run.peak_rss_gb > allowed
        if run.exit_code not in (0, NO_TESTS) or over:
            failed.append(run.model)
        result = "no full-size checks" if run.exit_code == NO_TESTS else (run.summary or f"exit {run.exit_code}")
        budget = f" **over the {allowed:g} GB budget**" if over else ""
        if run.model in BUDGET_EXCEPTIONS_GB and options.budget_gb < run.peak_rss_gb <= allowed:
            budget = f" (allowed {allowed:g} GB: tests/harness/model_tiers.py says why)"
        print(f"| {run.model} | {result} | {run.wall_s:.0f} s | {run.peak_rss_gb:.2f} GB{budget} |")
    total = sum(run.wall_s for run in runs)
    print(f"\n{len(runs)} networks in {total / 60:.1f} min; largest process {max(r.peak_rss_gb for r in runs):.2f} GB")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
