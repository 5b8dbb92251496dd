"""A one-photo ``face3d mesh photo.jpg -o out.ply`` as a whole process: wall time, imports, peak memory.

Every row is a real child process (``python -m face3d_core.cli``, the entry point of the ``face3d``
script), timed from start to exit; the warm variants run in interleaved rounds (so load from other
work on a shared machine hits them alike), medians:

* ``python -c pass``: the interpreter alone;
* **warm** compiled-model cache (what every run after the first one on a machine is): OpenVINO
  loads the compiled network, no torch or timm, and the process ends with ``os._exit`` after
  flushing (:func:`face3d_core.cli.console_main`);
* warm, but with the interpreter's ordinary exit (``sys.exit(main(...))``): the teardown saved;
* warm, PyTorch runtime (``FACE3D_BACKEND=torch``), with the fast and with the ordinary exit: a run
  that imports torch and timm, as every run did before the compiled-model cache;
* **cold**: a fresh cache folder each time (export to ONNX and OpenVINO, the check against PyTorch).

Then where the time of a warm and a cold run goes: ``-X importtime`` parsed (self time per top-level
package, and the cumulative time of the heavy imports as they were first imported), and the peak
resident memory (``ru_maxrss``) of each kind of run.

Usage::

    python benchmarks/cli_speed.py                      # ../shared photo and fill.py weights
    python benchmarks/cli_speed.py --repeats 10 --cold-repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import SHARED_DIR, machine_description, print_table  # noqa: E402

PHOTO = SHARED_DIR / "data" / "faces" / "fr_obama_official_portrait.jpg"
FILL_PY = SHARED_DIR / "reference" / "fill.py"
YUNET = SHARED_DIR / "models" / "face_detection_yunet.onnx"
MODEL = "midas_v21_small_256"
#: Packages whose import time is shown on its own (the rest is "other").
PACKAGES = ("torch", "timm", "torchvision", "onnx", "onnxruntime", "openvino", "numpy", "cv2", "PIL", "face3d_core")
#: Modules whose cumulative import time (when first imported) is shown.
CHAINS = ("torch", "timm", "torchvision", "torch._dynamo", "onnx", "openvino", "cv2", "numpy")

_ORDINARY_EXIT = "import sys; from face3d_core.cli import main; sys.exit(main(sys.argv[1:]))"
_PEAK = "import resource, sys\nfrom face3d_core.cli import main\ncode = main(sys.argv[1:])\n" + (
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)"
)


#: Seconds from each run's last output to its exit (the interpreter's teardown), by :func:`_kind_key`.
EXIT_SECONDS: dict[tuple[str, ...], list[float]] = collections.defaultdict(list)


def _kind_key(argv: list[str], env: dict[str, str]) -> tuple[str, ...]:
    return (*argv, env.get("FACE3D_BACKEND", ""), env.get("FACE3D_CACHE_DIR", ""))


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run a child process; return ``(wall seconds, completed)`` (raises on a non-zero exit).

    Also records in :data:`EXIT_SECONDS` how long the process took to end after its last line
    of output (the result line of ``face3d mesh``): what the interpreter's exit costs.
    """
    with tempfile.TemporaryFile("w+") as errors:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=errors)
        chunks, last = [], start
        while chunk := os.read(child.stdout.fileno(), 65536):  # returns as soon as output arrives
            chunks.append(chunk)
            last = time.perf_counter()
        child.wait(timeout=900)
        end = time.perf_counter()
        child.stdout.close()
        errors.seek(0)
        done = subprocess.CompletedProcess(argv, child.returncode, b"".join(chunks).decode(), errors.read())
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if chunks:
        EXIT_SECONDS[_kind_key(argv, env)].append(end - last)
    return end - start, done


def parse_importtime(stderr: str) -> tuple[dict[str, float], dict[str, float], float]:
    """``-X importtime`` output -> (self ms per package, cumulative ms of :data:`CHAINS`, total self ms)."""
    per_package: collections.Counter[str] = collections.Counter()
    chains: dict[str, float] = {}
    for match in re.finditer(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$", stderr, re.M):
        self_us, cumulative_us, name = int(match[1]), int(match[2]), match[4]
        top = name.split(".")[0]
        per_package[top if top in PACKAGES else "other"] += self_us / 1000.0
        if name in CHAINS and name not in chains:
            chains[name] = cumulative_us / 1000.0
    return dict(per_package), chains, sum(per_package.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--repeats", type=int, default=10, help="warm runs of each kind (median)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold runs (a fresh cache each)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not (args.photo.is_file() and FILL_PY.is_file()):
        print("../shared (photo, reference/fill.py) not found: nothing to benchmark")
        return 0
    from tests.doubles import write_fill_checkpoint

    work = Path(tempfile.mkdtemp(prefix="face3d-cli-speed-"))
    try:
        write_fill_checkpoint(work / "weights", FILL_PY, MODEL)
        (work / "home").mkdir()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE3D_", "XDG_"))}
        base_env.update(
            HOME=str(work / "home"),
            FACE3D_WEIGHTS_DIR=str(work / "weights"),
            FACE3D_OFFLINE="1",
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",  # the result line leaves when printed, so the exit after it can be timed
        )
        if YUNET.is_file():
            base_env["FACE3D_YUNET_PATH"] = str(YUNET)
        warm_env = dict(base_env, FACE3D_CACHE_DIR=str(work / "cache"))
        torch_env = dict(warm_env, FACE3D_BACKEND="torch")
        mesh = ["mesh", str(args.photo), "-o", str(work / "out.ply")]
        py = sys.executable
        kinds = {
            "python -c pass": ([py, "-c", "pass"], warm_env),
            "warm cache, fast exit": ([py, "-m", "face3d_core.cli", *mesh], warm_env),
            "warm cache, ordinary exit": ([py, "-c", _ORDINARY_EXIT, *mesh], warm_env),
            "PyTorch runtime, fast exit": ([py, "-m", "face3d_core.cli", *mesh], torch_env),
            "PyTorch runtime, ordinary exit": ([py, "-c", _ORDINARY_EXIT, *mesh], torch_env),
        }
        print(machine_description())
        print(f"photo {args.photo.name}, {MODEL} (fill.py weights); the machine is shared: compare within the table")
        run(kinds["warm cache, fast exit"][0], warm_env, work)  # fills the compiled-model cache
        for argv_, env in kinds.values():  # warm-up
            run(argv_, env, work)
        times: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.repeats):
            for name, (argv_, env) in kinds.items():
                times[name].append(run(argv_, env, work)[0])
        cold: list[float] = []
        cold_imports = None
        for index in range(args.cold_repeats):
            cache = work / f"cold-{index}"
            env = dict(base_env, FACE3D_CACHE_DIR=str(cache))
            seconds, done = run([py, "-X", "importtime", "-m", "face3d_core.cli", *mesh], env, work)
            cold.append(seconds)  # (importtime adds a little to every run alike)
            cold_imports = cold_imports or parse_importtime(done.stderr)
            shutil.rmtree(cache, ignore_errors=True)
        warm_imports = [
            parse_importtime(run([py, "-X", "importtime", "-m", "face3d_core.cli", *mesh], warm_env, work)[1].stderr)
            for _ in range(3)
        ]
        torch_imports = parse_importtime(
            run([py, "-X", "importtime", "-c", _ORDINARY_EXIT, *mesh], torch_env, work)[1].stderr
        )
        peaks = {}
        for name, env in (("warm cache", warm_env), ("PyTorch runtime", torch_env)):
            _, done = run([py, "-c", _PEAK, *mesh], env, work)
            peaks[name] = int(re.search(r"MAXRSS_KB (\d+)", done.stderr)[1]) / 1024
        cold_env = dict(base_env, FACE3D_CACHE_DIR=str(work / "cold-peak"))
        _, done = run([py, "-c", _PEAK, *mesh], cold_env, work)
        peaks["cold cache"] = int(re.search(r"MAXRSS_KB (\d+)", done.stderr)[1]) / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)

    nan = float("nan")
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["cold cache (fresh cache folder)"] = statistics.median(cold)
    spread = {name: (min(v), max(v)) for name, v in times.items()} | {
        "cold cache (fresh cache folder)": (min(cold), max(cold))
    }
    print(f"\n## Whole process, seconds (median of {args.repeats} interleaved rounds; cold: {args.cold_repeats})\n")
    exits = {
        name: statistics.median(EXIT_SECONDS[_kind_key(argv_, env)]) if EXIT_SECONDS[_kind_key(argv_, env)] else nan
        for name, (argv_, env) in kinds.items()
    }
    exits["cold cache (fresh cache folder)"] = nan
    print_table(
        ["run", "median s", "min-max s", "of which exit s (after its output)", "peak RSS MB"],
        [
            [
                name,
                f"{medians[name]:.2f}",
                f"{spread[name][0]:.2f}-{spread[name][1]:.2f}",
                "-" if exits[name] != exits[name] else f"{exits[name]:.2f}",
                peak,
            ]
            for name, peak in (
                ("python -c pass", "-"),
                ("warm cache, fast exit", f"{peaks['warm cache']:.0f}"),
                ("warm cache, ordinary exit", f"{peaks['warm cache']:.0f}"),
                ("PyTorch runtime, fast exit", f"{peaks['PyTorch runtime']:.0f}"),
                ("PyTorch runtime, ordinary exit", f"{peaks['PyTorch runtime']:.0f}"),
                ("cold cache (fresh cache folder)", f"{peaks['cold cache']:.0f}"),
            )
        ],
    )
    warm_per_package = {
        package: statistics.median(imports[0].get(package, 0.0) for imports in warm_imports)
        for package in (*PACKAGES, "other")
    }
    warm_total = statistics.median(imports[2] for imports in warm_imports)
    print("\n## Imports (`-X importtime`, self time per package, ms)\n")
    print_table(
        ["package", "warm cache (median of 3)", "cold cache", "PyTorch runtime"],
        [
            [
                package,
                f"{warm_per_package[package]:.0f}",
                f"{cold_imports[0].get(package, 0.0):.0f}",
                f"{torch_imports[0].get(package, 0.0):.0f}",
            ]
            for package in (*PACKAGES, "other")
            if warm_per_package[package] or cold_imports[0].get(package) or torch_imports[0].get(package)
        ]
        + [["all imports", f"{warm_total:.0f}", f"{cold_imports[2]:.0f}", f"{torch_imports[2]:.0f}"]],
    )
    print("\nCumulative import time where first imported (ms; torchvision pulls torch._dynamo in through timm):")
    for label, imports in (("cold cache", cold_imports), ("PyTorch runtime", torch_imports)):
        print(f"  {label}: " + ", ".join(f"{name} {ms:.0f}" for name, ms in imports[1].items()))
    print("  warm cache: " + ", ".join(f"{name} {ms:.0f}" for name, ms in warm_imports[0][1].items()))
    print(
        f"\ninterpreter exit after the output: warm {exits['warm cache, ordinary exit']:.2f} s ordinary vs "
        f"{exits['warm cache, fast exit']:.2f} s fast; with torch imported "
        f"{exits['PyTorch runtime, ordinary exit']:.2f} s vs {exits['PyTorch runtime, fast exit']:.2f} s"
    )
    print(machine_description())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "medians_s": medians,
                    "exit_after_output_s": exits,
                    "runs_s": times | {"cold": cold},
                    "peak_rss_mb": peaks,
                    "imports_ms": {"warm": warm_per_package, "cold": cold_imports[0], "torch": torch_imports[0]},
                    "chains_ms": {"cold": cold_imports[1], "torch": torch_imports[1], "warm": warm_imports[0][1]},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
