"""Decoding inside a budget (issue 16, item 1): what the decoder process costs, before and after.

Before: photos were decoded in the caller's process (``decoder: in process``: the same code,
:attr:`DecodeSandbox.enabled` off). After: in a forked child of the decoder process with its
limits, pixels handed back through a sealed ``memfd`` (:mod:`face3d_core.decode_sandbox`).
Interleaved rounds (load from other work hits both alike), medians, on

* **decode**: ordinary photos, 1 to 12 megapixels, JPEG and PNG;
* **upload**: the dashboard's upload of a photo (:meth:`Uploads.ingest`: decode, face detection,
  thumbnail; the stored copy is reused, so no disk write);
* **first decode** of a process (the decoder process starts) and **after a kill** (the next
  decode after the decoder process was killed with SIGKILL: a new one starts);
* **the attack** of issue 16 (a 3000x3000 progressive JPEG of 4,000 scans with one junk byte):
  time to the refusal, and the CPU the calling process spent;
* ``--cli``: a whole ``face3d depth photo`` process (warm compiled-model cache), both ways.

Usage::

    python benchmarks/decode_speed.py                 # ../shared photos
    python benchmarks/decode_speed.py --repeats 21 --cli 7 --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from PIL import Image  # noqa: E402

from benchmarks._common import SHARED_DIR, machine_description, print_table  # noqa: E402
from face3d_core import decode_sandbox, images  # noqa: E402

FACES = SHARED_DIR / "data" / "faces"
YUNET = SHARED_DIR / "models" / "face_detection_yunet.onnx"
FILL_PY = SHARED_DIR / "reference" / "fill.py"
MODEL = "midas_v21_small_256"
_CLI = (
    "import sys; import face3d_core.decode_sandbox as d; d.SANDBOX.enabled = sys.argv.pop(1) == 'on'; "
    "from face3d_core.cli import console_main; console_main()"  # as the face3d command runs
)


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photos() -> dict[str, bytes]:
    """Name -> bytes of ordinary photos from 1 to 12 megapixels (real faces, resized where needed)."""
    big = Image.open(FACES / "max_angry_bw.jpg").convert("RGB")  # 1280 x 1920
    return {
        "1.0 MP JPEG": (FACES / "interfaces_016.jpg").read_bytes(),
        "2.2 MP JPEG, EXIF orientation 6": (FACES / "exif_portrait6_noface.jpg").read_bytes(),
        "2.5 MP JPEG": (FACES / "max_angry_bw.jpg").read_bytes(),
        "5 MP progressive JPEG": _encoded(big.resize((1830, 2745)), "JPEG", quality=92, progressive=True),
        "12 MP JPEG (a phone's)": _encoded(big.resize((3000, 4000)), "JPEG", quality=90),
        "0.75 MP RGBA PNG": (FACES / "fr_obama_speech_rgba.png").read_bytes(),
        "2 MP PNG": _encoded(big.resize((1160, 1740)), "PNG"),
    }


def _decoder_cpu_s() -> float:
    """CPU seconds used so far by the decoder process's workers (Linux ``/proc``, clock ticks)."""
    zygote = decode_sandbox.SANDBOX.zygote_pid
    total = 0.0
    if zygote is None:
        return total
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == zygote:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _timed(fn) -> tuple[float, float]:
    """``(wall ms, CPU ms of this process and the decoder workers)`` of ``fn()``."""
    cpu, workers, started = time.process_time(), _decoder_cpu_s(), time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    return wall * 1000.0, (time.process_time() - cpu + _decoder_cpu_s() - workers) * 1000.0


def _ms(fn) -> float:
    return _timed(fn)[0]


def _both(fn, cpu: dict[str, list[float]] | None = None) -> dict[str, float]:
    """``fn()`` timed with the decoder in this process, then in the decoder process (wall ms).

    ``cpu`` (if given) collects the CPU ms of each way (this process plus the decoder workers).
    """
    out = {}
    for way, enabled in (("in process", False), ("decoder process", True)):
        decode_sandbox.SANDBOX.enabled = enabled
        out[way], used = _timed(fn)
        if cpu is not None:
            cpu.setdefault(way, []).append(used)
    decode_sandbox.SANDBOX.enabled = True
    return out


def decode_rounds(files: dict[str, bytes], repeats: int) -> tuple[dict, dict]:
    """Interleaved decode timings: ``(name -> way -> wall ms per round, name -> way -> CPU ms per round)``."""
    times: dict[str, dict[str, list[float]]] = {name: {} for name in files}
    cpu: dict[str, dict[str, list[float]]] = {name: {} for name in files}
    for data in files.values():  # warm-up (the decoder process starts here)
        _both(lambda data=data: images.decode_image(data))
    for _ in range(repeats):
        for name, data in files.items():
            for way, ms in _both(lambda data=data: images.decode_image(data), cpu[name]).items():
                times[name].setdefault(way, []).append(ms)
    return times, cpu


def upload_rounds(files: dict[str, bytes], repeats: int, work: Path) -> dict[str, dict[str, list[float]]]:
    """Interleaved timings of the dashboard's upload (decode, faces, thumbnail) of each photo."""
    from dashboard.services.uploads import Uploads
    from face3d_core.cache import ResultCache

    cache = ResultCache(work / "results")
    uploads = Uploads(cache, YUNET if YUNET.is_file() else None)
    times: dict[str, dict[str, list[float]]] = {name: {} for name in files}
    try:
        for name, data in files.items():
            _both(lambda data=data, name=name: uploads.ingest(data, name, revalidate=True))
        for _ in range(repeats):
            for name, data in files.items():
                for way, ms in _both(lambda data=data, name=name: uploads.ingest(data, name, revalidate=True)).items():
                    times[name].setdefault(way, []).append(ms)
    finally:
        cache.close()
    return times


def start_and_respawn(data: bytes, repeats: int) -> dict[str, list[float]]:
    """Decode times (ms) of a first decode (new decoder process) and of a decode after a SIGKILL of it."""
    out: dict[str, list[float]] = {"first decode (decoder process starts)": [], "decode after a kill": []}
    for _ in range(repeats):
        decode_sandbox.SANDBOX.close()
        out["first decode (decoder process starts)"].append(_ms(lambda: images.decode_image(data)))
        pid = decode_sandbox.SANDBOX.zygote_pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while decode_sandbox.SANDBOX.zygote_pid == pid and time.monotonic() < deadline:
            time.sleep(0.01)  # the reaper thread notices the death
        out["decode after a kill"].append(_ms(lambda: images.decode_image(data)))
    return out


def attack() -> dict[str, float]:
    """The scan-limit bypass of issue 16 against the decoder process: wall time and the caller's CPU."""
    from tests.harness.hostile_files import junk_byte_scan_bomb

    data = junk_byte_scan_bomb(3000, 4000)
    cpu, started = time.process_time(), time.perf_counter()
    try:
        images.decode_image(data, name="attack.jpg")
        message = "decoded (not refused)"
    except images.InvalidImageError as exc:
        message = exc.user_message
    return {
        "bytes": len(data),
        "scans counted": images.count_jpeg_scans(data),
        "wall_s": time.perf_counter() - started,
        "caller_cpu_s": time.process_time() - cpu,
        "message": message,
    }


def cli_rounds(photo: Path, repeats: int, work: Path) -> dict[str, list[float]] | None:
    """Whole ``face3d depth photo`` processes (s), decoder in process vs decoder process, interleaved."""
    if not FILL_PY.is_file():
        return None
    from tests.doubles import write_fill_checkpoint

    write_fill_checkpoint(work / "weights", FILL_PY, MODEL)
    (work / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE3D_", "XDG_"))}
    env.update(
        HOME=str(work / "home"),
        FACE3D_WEIGHTS_DIR=str(work / "weights"),
        FACE3D_CACHE_DIR=str(work / "cache"),
        FACE3D_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    if YUNET.is_file():
        env["FACE3D_YUNET_PATH"] = str(YUNET)
    argv = ["depth", str(photo), "--out-dir", str(work / "out"), "--no-progress", "--model", MODEL]

    def run(way: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _CLI, way, *argv], env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    run("on")  # the compiled-model cache
    run("off")
    out: dict[str, list[float]] = {"in process": [], "decoder process": []}
    for _ in range(repeats):
        out["in process"].append(run("off"))
        out["decoder process"].append(run("on"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median)")
    parser.add_argument("--cli", type=int, default=0, help="whole face3d depth runs of each way (0: none)")
    parser.add_argument("--no-attack", action="store_true", help="skip the attack file (about 6 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not FACES.is_dir():
        print("../shared (photos) not found: nothing to benchmark")
        return 0
    if not decode_sandbox.supported():
        print("No decoder process on this platform (not Linux): nothing to compare")
        return 0
    files = photos()
    print(machine_description())
    print(f"{len(files)} photos, {args.repeats} interleaved rounds; the machine is shared: compare within a row")
    work = Path(tempfile.mkdtemp(prefix="face3d-decode-speed-"))
    results: dict = {"machine": machine_description(), "repeats": args.repeats}
    try:
        decode, decode_cpu = decode_rounds(files, args.repeats)
        upload = upload_rounds(files, args.repeats, work)
        rows = []
        for name in files:
            width, height = Image.open(io.BytesIO(files[name])).size
            row = [name, f"{width}x{height}"]
            for table in (decode, upload):
                before, after = (statistics.median(table[name][w]) for w in ("in process", "decoder process"))
                low_before, low_after = (min(table[name][w]) for w in ("in process", "decoder process"))
                row += [f"{before:.1f} ({low_before:.1f})", f"{after:.1f} ({low_after:.1f})", f"{after - before:+.1f}"]
            cpu_before, cpu_after = (statistics.mean(decode_cpu[name][w]) for w in ("in process", "decoder process"))
            row += [f"{cpu_before:.1f}", f"{cpu_after:.1f}"]
            rows.append(row)
        print(f"\n## Decode and upload, ms: median of {args.repeats} (fastest); decode CPU, ms (mean)\n")
        print_table(
            [
                "photo", "W x H", "decode before", "decode after", "change", "upload before", "upload after",
                "change", "decode CPU before", "decode CPU after (caller + worker)",
            ],
            rows,
        )  # fmt: skip
        results["decode_ms"] = {n: {w: statistics.median(v) for w, v in t.items()} for n, t in decode.items()}
        results["decode_cpu_ms"] = {n: {w: statistics.mean(v) for w, v in t.items()} for n, t in decode_cpu.items()}
        results["upload_ms"] = {n: {w: statistics.median(v) for w, v in t.items()} for n, t in upload.items()}
        life = start_and_respawn(files["2.5 MP JPEG"], max(3, args.repeats // 3))
        print("\n## The decoder process's life (2.5 MP JPEG), ms (median)\n")
        print_table(["decode", "median ms"], [[k, f"{statistics.median(v):.0f}"] for k, v in life.items()])
        results["life_ms"] = {k: statistics.median(v) for k, v in life.items()}
        if not args.no_attack:
            found = attack()
            results["attack"] = found
            print(
                f"\n## The attack: {found['bytes'] / 1e3:.0f} KB, {found['scans counted']} scans counted by the "
                f"segment walker\nrefused after {found['wall_s']:.1f} s, {found['caller_cpu_s']:.3f} s of the "
                f"caller's CPU: {found['message']}"
            )
        if args.cli:
            cli = cli_rounds(FACES / "fr_obama_official_portrait.jpg", args.cli, work)
            if cli:
                results["cli_s"] = {w: statistics.median(v) for w, v in cli.items()}
                print(f"\n## face3d depth (one 1 MP photo, warm cache), s (median of {args.cli})\n")
                print_table(
                    ["decoder", "median s", "min-max s"],
                    [[w, f"{statistics.median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}"] for w, v in cli.items()],
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
