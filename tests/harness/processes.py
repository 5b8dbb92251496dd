"""Child processes of the tests: started in their own process group, logged to a file, always stopped.

Only 127.0.0.1 is ever used; every wait is bounded in time.

A child's life is tied to the test run's, however the run ends:

* a normal end or an error: the fixture that started it stops it (:meth:`ManagedProcess.stop`);
* SIGTERM or SIGHUP to the test process (a CI time limit, ``timeout make test``, a closed terminal):
  :func:`install_termination_handlers` (called by ``tests/conftest.py``) stops every live child's
  process group, then the run ends with the signal's usual status;
* SIGKILL of the test process (no handler can run): the kernel sends each child SIGTERM when its
  parent dies (Linux ``PR_SET_PDEATHSIG``), and the child's own children go with it (a gunicorn or
  Celery master stops its workers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.harness.paths import REPO_ROOT, YUNET_PATH

#: The interpreter running the tests (the project's venv): every Python child uses it.
PYTHON = sys.executable


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: offline, this repository first on the path, unbuffered.

    ``FACE3D_REDIS_URL`` is dropped (a child uses Redis only when a test says so) and the YuNet
    detector of ``../shared`` is used where present. ``extra`` is applied last.
    """
    env = dict(os.environ)
    env.pop("FACE3D_REDIS_URL", None)
    env.update(
        FACE3D_OFFLINE="1",
        FACE3D_REPO=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    if YUNET_PATH.is_file():
        env["FACE3D_YUNET_PATH"] = str(YUNET_PATH)
    env.update(extra)
    return env


def cache_sharing_compiled_models(cache_dir: Path, tmp_path_factory) -> Path:
    """``cache_dir``, created, whose ``compiled`` folder is the test run's one shared folder.

    Servers of the run that use the same checkpoint (``fill_weights``) then export and compile each
    network once per input size, not once per server: about 200 MB of disk and several seconds of
    CPU each. The compiled-model store is made for several processes on one folder (whole files,
    atomic renames). Tests of compiling itself keep a cache of their own.
    """
    shared = Path(tmp_path_factory.getbasetemp()) / "compiled-models-shared"
    shared.mkdir(exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    link = cache_dir / "compiled"
    if not link.is_symlink():
        link.symlink_to(shared, target_is_directory=True)
    return cache_dir


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident memory of a live process (Linux ``VmHWM``), or None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


#: ``prctl(2)`` option: the signal a process gets when its parent (thread) dies.
_PR_SET_PDEATHSIG = 1
#: Process groups of the live children, stopped by the termination handlers.
_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.Lock()


def _libc_prctl() -> Callable[..., int] | None:
    """``prctl`` of the C library, resolved here (never in a forked child), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM when the test process dies.

    Only async-signal-safe work: one call of a function resolved before the fork. Where the parent
    died before this ran, the child is already an orphan and ends itself.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        os._exit(1)


def stop_live_children(timeout_s: float = 5.0) -> None:
    """SIGTERM every live child's process group, then SIGKILL what is left after ``timeout_s``."""
    with _LIVE_LOCK:
        groups = list(_LIVE_GROUPS)
        _LIVE_GROUPS.clear()
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    for group in groups:
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def install_termination_handlers() -> None:
    """On SIGTERM or SIGHUP: stop every live child (:func:`stop_live_children`), then end as the signal asks.

    Called once by the test session (main thread only); a handler already set by someone else is
    kept and called after the children are stopped.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame, previous=previous) -> None:
            stop_live_children()
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


class ManagedProcess:
    """A subprocess in its own process group, logging to a file; :meth:`stop` ends the whole group.

    Its life is tied to the test process's (see the module's docstring).

    Args:
        argv: Command line.
        env: Environment.
        log_path: Where stdout and stderr go (appended: a restarted process adds to it).
        cwd: Working folder (default: the repository).
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd or REPO_ROOT
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        """Start the process (a new session, so its children share its process group).

        From the main thread the child also gets the parent-death signal; a thread that started it
        could end before the test run does, so from other threads only the handlers stop it.
        """
        main_thread = threading.current_thread() is threading.main_thread()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            with _LIVE_LOCK:
                self.process = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if main_thread else None,  # noqa: PLW1509 - async-signal-safe
                )
                _LIVE_GROUPS.add(self.process.pid)
        finally:
            log.close()
        return self

    def _forget(self) -> None:
        with _LIVE_LOCK:
            if self.process is not None:
                _LIVE_GROUPS.discard(self.process.pid)

    @property
    def pid(self) -> int:
        """The process id (also the process group id)."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, a power cut) and reap it."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._forget()
        self.process = None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # stray children of the group, if any
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._forget()
        self.process = None

    def peak_rss_bytes(self) -> int | None:
        """Peak resident memory of the (live) main process, or None where unavailable."""
        return peak_rss_bytes(self.pid) if self.alive() else None

    def log_text(self) -> str:
        """The process's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 120.0) -> None:
        """Wait until ``text`` appears in the output (raising early if the process died)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if not self.alive():
                raise RuntimeError(f"{self.argv[:3]} exited early:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.argv[:3]} did not log {text!r} within {timeout} s:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.3)


def wait_for_http(url: str, process: ManagedProcess, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200 (raising early if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.argv[:3]} exited early:\n{process.log_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{process.log_text()[-3000:]}")


def group_memory_bytes(pgid: int) -> int:
    """Memory of a process group now: the sum of its processes' PSS (Linux ``smaps_rollup``; RSS where absent).

    PSS counts a page shared by several processes (a server's image decoder and its workers, forked
    from one zygote) once in total, so the sum is what the group holds.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in rollup.splitlines():
            if line.startswith(("Pss:", "Rss:")):
                total += int(line.split()[1]) * 1024
                break
    return total


class MemorySampler:
    """A thread sampling a process group's memory (:func:`group_memory_bytes`) every ``period_s``.

    Args:
        pgid: The process group (a :class:`ManagedProcess` leads its own).
        period_s: Seconds between samples.
    """

    def __init__(self, pgid: int, period_s: float = 0.2):
        import threading

        self.pgid = pgid
        self.period_s = period_s
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), group_memory_bytes(self.pgid)))
            self._stop.wait(self.period_s)

    def peak(self, since: float = 0.0) -> int:
        """The largest sample taken at or after ``since`` (``time.monotonic()``)."""
        return max((value for at, value in self.samples if at >= since), default=0)
