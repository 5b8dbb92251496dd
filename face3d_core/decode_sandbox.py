"""Untrusted image files decoded in other processes, each decode inside a hard CPU-time and memory budget.

Why: a decoder's cost is not bounded by the file's size. A 237 KB progressive JPEG of 4,000
scans held a CPU for 23 s, and the scan counter of :mod:`face3d_core.images` (which stays as a
fast first check) was defeated by one junk byte; the next trick would defeat the next counter.
So every photo the dashboard receives and every photo the CLI reads is decoded (and its EXIF
read) by a **decoder process** that the kernel stops when a decode overruns its budget:

* CPU: before each decode the worker sets its soft ``RLIMIT_CPU`` to the CPU it has used plus
  :data:`DECODE_CPU_S`; beyond it the kernel ends it with ``SIGXCPU`` (a worker is not dumpable:
  no core file), even inside C code that never returns to Python;
* wall clock: an ``alarm`` of :data:`DECODE_WALL_S` (a decode starved of CPU, or stopped);
* memory: ``RLIMIT_AS`` of :data:`DECODE_MEMORY_BYTES` above the worker's own size (an
  allocation beyond it fails, reported as ``MemoryError``);
* the user gets one sentence (:data:`TOO_SLOW_MESSAGE`, :data:`TOO_MUCH_MEMORY_MESSAGE`), and the
  caller's process never spends the CPU.

How, without slowing the common case (``benchmarks/decode_speed.py``):

* A **zygote**: one small Python process per server process (or CLI run), started once as a
  fresh interpreter (``python -I -c``: never a fork of a threaded server), with numpy, Pillow
  and its codecs loaded and warmed, and its objects frozen out of the garbage collector (so
  that forked workers do not copy its pages). It forks **workers** on request (a few ms) and
  reaps them (``wait4``): a worker that is killed never lingers as a zombie, and its requester
  is told how it ended (signal, CPU seconds).
* **Warm persistent workers** (at most :data:`MAX_PARALLEL_DECODES` per process, created on
  demand): each serves decodes one at a time, reusing its warm code and heap; after
  :data:`WORKER_MAX_REQUESTS` decodes or :data:`WORKER_MAX_CPU_S` of CPU it retires and the next
  one is forked at once. A burst of decodes reuses the worker's warm heap; once the worker has
  been idle for :data:`WORKER_TRIM_AFTER_S` it gives the memory it freed back to the system
  (``malloc_trim``). Large pages (transparent huge pages, where the kernel offers them on
  request) make the page faults of fresh buffers cheap.
* **Pixels through shared memory**: the file's bytes go to the worker in a sealed ``memfd``; the
  worker writes the pixels into another ``memfd``, seals it against writing, growing and
  shrinking, and passes it back over a Unix socket (``SCM_RIGHTS``). The caller maps it
  copy-on-write: nothing is pickled or copied through a pipe, and the worker cannot change the
  pixels after handing them over.
* **Threads**: each worker has its own socket; the request threads of ``python -m dashboard``
  or gunicorn take an idle worker (or wait their turn, at most :data:`QUEUE_WAIT_S`).
* **Life cycle**: the zygote reads from a socket only the server holds; when the server process
  ends in any way (``os._exit`` of the CLI, SIGKILL, a gunicorn or Celery worker recycled) the
  socket closes and the zygote kills its workers and exits (workers also die with the zygote:
  ``PR_SET_PDEATHSIG``). A thread of the server waits on the zygote, so a zygote that dies is
  reaped at once and replaced on the next request (a request in flight is retried once). After
  ``fork`` (a gunicorn ``--preload`` master, a Celery pool) the child process starts its own.

Where this cannot work (not Linux: no ``memfd``/``SCM_RIGHTS``/``rlimit``; or the zygote cannot
start) files are decoded in the calling process, with the size, pixel and scan checks of
:mod:`face3d_core.images` only, and a warning is logged.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import json
import logging
import math
import mmap
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from face3d_core.config import child_environment
from face3d_core.errors import InvalidImageError

logger = logging.getLogger(__name__)

#: CPU seconds one decode may use (a 40-megapixel photo needs about 1-2).
DECODE_CPU_S = 5
#: Wall-clock seconds one decode may take.
DECODE_WALL_S = 30
#: Address space a decode may add to its worker's own (the worst photo inside the limits of
#: :mod:`face3d_core.images`, a 40-megapixel grey+alpha PNG turned by its EXIF orientation, peaks at 0.7 GB).
DECODE_MEMORY_BYTES = 1536 * 2**20
#: Decodes one process runs at once (workers; the other requests wait their turn).
MAX_PARALLEL_DECODES = 2
#: Longest wait for a turn to decode.
QUEUE_WAIT_S = 120.0
#: Longest wait for a new zygote to be ready (its imports).
START_TIMEOUT_S = 60.0
#: A worker retires after this many decodes ...
WORKER_MAX_REQUESTS = 500
#: ... or this much CPU (a fresh one is forked at once).
WORKER_MAX_CPU_S = 300.0
#: A worker idle this long after a decode gives the memory it freed back to the system (``malloc_trim``).
WORKER_TRIM_AFTER_S = 1.0

TOO_SLOW_MESSAGE = "This image takes too long to decode; save it again as an ordinary JPEG or PNG."
TOO_MUCH_MEMORY_MESSAGE = "This image needs too much memory to decode; save it again as an ordinary JPEG or PNG."
DECODER_FAILED_MESSAGE = "The decoder failed on this image; save it again as an ordinary JPEG or PNG."
BUSY_MESSAGE = "The server is busy decoding other photos; please try again in a minute."

_SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE")
_MAX_MESSAGE = 1 << 16
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
#: A worker's work: ``(kind, file object, format, name) -> (header dict, pixels or None)``.
Work = Callable[[str, Any, str, str], tuple[dict, np.ndarray | None]]


@dataclass(frozen=True)
class DecodeBudget:
    """What one decode may cost (see the module docstring).

    Attributes:
        cpu_s: CPU seconds (whole seconds: the kernel's unit).
        wall_s: Wall-clock seconds.
        memory_bytes: Address space above the worker's own.
    """

    cpu_s: int = DECODE_CPU_S
    wall_s: int = DECODE_WALL_S
    memory_bytes: int = DECODE_MEMORY_BYTES


class DecodeRefused(InvalidImageError):
    """The decoder was stopped (too slow, too much memory) or failed on a file: one sentence for the user."""


def supported() -> bool:
    """True where decodes can run in budgeted workers (Linux: fork, memfd seals, SCM_RIGHTS, rlimits)."""
    try:
        import fcntl
        import resource  # noqa: F401 - only its presence matters here
    except ImportError:
        return False
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and hasattr(os, "memfd_create")
        and hasattr(socket, "send_fds")
        and all(hasattr(fcntl, name) for name in (*_SEALS, "F_ADD_SEALS", "F_GET_SEALS"))
    )


# ============================================================================================
# Shared memory
# ============================================================================================


def _sealed_memfd(name: str, data: Any) -> int:
    """A memfd holding ``data`` (bytes-like), sealed: nobody can write, grow or shrink it any more."""
    import fcntl

    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])
        seals = 0
        for seal in _SEALS:
            seals |= getattr(fcntl, seal)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _map_sealed(fd: int, size: int) -> mmap.mmap:
    """Map a memfd the other side sealed (checked here) copy-on-write; ``size`` must be its size."""
    import fcntl

    needed = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
    if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & needed != needed:
        raise OSError("the decoder's pixels are not sealed")
    if os.fstat(fd).st_size != size:
        raise OSError(f"the decoder's pixels are {os.fstat(fd).st_size} bytes, not {size}")
    return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)


# ============================================================================================
# The zygote and its workers (in the decoder process)
# ============================================================================================

_LIBC: Any = None


def _address_space_bytes() -> int:
    """This process's current virtual size (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve_one(
    sock: socket.socket, message: bytes, fds: list[int], work: Work, budget: DecodeBudget, *, last: bool
) -> bool:
    """One request in a worker: the limits, the work, the reply (``last``: the worker's last one).

    Returns:
        False when the worker retires after it (it said so in the reply).
    """
    import resource

    data_fd = fds[0] if fds else -1
    for extra in fds[1:]:
        os.close(extra)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = round(_cpu_s() + max(1, int(budget.cpu_s)))  # SIGXCPU beyond: the kernel's, in any code
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    signal.alarm(max(1, int(budget.wall_s)))
    try:
        header = json.loads(message)
        if data_fd < 0:
            raise ValueError("a request without its file")
        with mmap.mmap(data_fd, 0, access=mmap.ACCESS_READ) as source:
            result, pixels = work(header["kind"], source, header["fmt"], header["name"])
    except InvalidImageError as exc:
        result, pixels = {"error": "invalid", "message": exc.user_message[:500]}, None
    except MemoryError:
        result, pixels = {"error": "memory"}, None
    except Exception as exc:  # noqa: BLE001 - a decoder bug: reported, never a hang
        result, pixels = {"error": "failed", "detail": f"{type(exc).__name__}: {exc}"[:300]}, None
    finally:
        if data_fd >= 0:
            os.close(data_fd)
    out = -1
    try:
        if pixels is not None:
            try:
                out = _sealed_memfd("face3d-pixels", np.ascontiguousarray(pixels))
            except MemoryError:
                result, pixels = {"error": "memory"}, None
        del pixels
        signal.alarm(0)
        idle = round(_cpu_s() + 60)  # between decodes (the idle trim): no decode's budget applies
        resource.setrlimit(resource.RLIMIT_CPU, (idle if hard == resource.RLIM_INFINITY else min(idle, hard), hard))
        retire = last or _cpu_s() > WORKER_MAX_CPU_S or result.get("error") in ("memory", "failed")
        result["retire"] = retire
        message = json.dumps(result).encode()
        if out >= 0:
            socket.send_fds(sock, [message], [out])
        else:
            sock.send(message)
    finally:
        if out >= 0:
            os.close(out)
    return not retire


def _worker(sock: socket.socket, work: Work, budget: DecodeBudget, zygote_pid: int) -> None:
    """A decoder worker: serves requests on ``sock`` until it is closed or the worker retires. Never returns.

    Set once: death with the zygote, not dumpable (no core file when the CPU limit ends it), no
    core files, the address space. Per request: see :func:`_serve_one`. A burst of decodes reuses
    the worker's warm heap; once it is idle for :data:`WORKER_TRIM_AFTER_S` the memory it freed
    goes back to the system.
    """
    import resource

    status = 0
    try:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        if os.getppid() != zygote_pid:  # the zygote died before the lines above
            os._exit(1)
        for sig in (signal.SIGCHLD, signal.SIGALRM, signal.SIGTERM, signal.SIGXCPU):
            signal.signal(sig, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        limit = _address_space_bytes() + int(budget.memory_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        waiting = select.poll()
        waiting.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        for served in range(1, WORKER_MAX_REQUESTS + 1):
            if served > 1 and not waiting.poll(WORKER_TRIM_AFTER_S * 1000) and _LIBC is not None:
                _LIBC.malloc_trim(0)  # idle: the freed memory of the last decodes goes back
            message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 2)
            if not message:
                break  # the server closed this worker
            if not _serve_one(sock, message, fds, work, budget, last=served == WORKER_MAX_REQUESTS):
                break
    except BaseException:  # noqa: BLE001 - the zygote reports how this worker ended
        status = 3
    finally:
        os._exit(status)


def _reap(workers: dict[int, socket.socket]) -> None:
    """Collect every ended worker and tell its server side how it ended (signal, exit code, CPU seconds)."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock = workers.pop(pid, None)
        if sock is None:
            continue
        ended = {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }
        try:
            sock.send(json.dumps({"ended": ended}).encode())
        except OSError:  # the server closed this worker already
            pass
        sock.close()


def _warm_up(work: Work) -> None:
    """Load numpy, Pillow and the JPEG/PNG codecs once, so that every forked worker starts warm."""
    import io

    from PIL import Image

    for fmt in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (90, 120, 150)).save(buffer, fmt)
        for kind in ("exif", "decode"):
            buffer.seek(0)
            work(kind, buffer, fmt, "warm-up")
    # every object alive now is shared with the workers and never collected: a worker's garbage
    # collections would otherwise write to all of them and copy every page of the heap
    gc.collect()
    gc.freeze()


def zygote_main(control_fd: int, work_name: str, budget_json: str) -> None:
    """The decoder process: fork a worker for each worker socket the server sends; reap them.

    Args:
        control_fd: This end of the server's control socket (``SOCK_SEQPACKET``).
        work_name: ``module:function`` of the workers' work (see :data:`Work`).
        budget_json: The :class:`DecodeBudget` as JSON.
    """
    global _LIBC
    import ctypes
    import importlib

    module_name, _, function = work_name.partition(":")
    work: Work = getattr(importlib.import_module(module_name), function)
    budget = DecodeBudget(**json.loads(budget_json))
    try:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - Linux always has it
        _LIBC = None
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal: the server decides
    _warm_up(work)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    workers: dict[int, socket.socket] = {}  # pid -> the zygote's copy of its socket (for the "ended" record)
    control.send(b"ready")
    me = os.getpid()
    try:
        while True:
            readable, _, _ = select.select([control, wake_r], [], [])
            if wake_r in readable:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            _reap(workers)
            if control not in readable:
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 1)
            except OSError:
                break
            if not message:
                break  # the server is gone
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                continue
            sock = socket.socket(fileno=fds[0])
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                for fd in (wake_r, wake_w):
                    os.close(fd)
                control.close()
                for other in workers.values():
                    other.close()
                _worker(sock, work, budget, me)
            workers[pid] = sock
    finally:
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while workers and time.monotonic() < deadline:
            _reap(workers)
            time.sleep(0.01)


def run_zygote(control_fd: int, work_name: str, budget_json: str) -> None:
    """:func:`zygote_main`, ending quietly when its server went away first (e.g. before it was ready)."""
    try:
        zygote_main(control_fd, work_name, budget_json)
    except (BrokenPipeError, ConnectionError, KeyboardInterrupt):
        pass
    os._exit(0)


# ============================================================================================
# The caller's side
# ============================================================================================


class _Lost(Exception):
    """A worker or the zygote ended outside a request, or stopped answering (the request may be retried)."""


class _Forked:
    """A zygote forked from a single-threaded caller (the CLI): the part of ``Popen`` the sandbox uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Zygote:
    """One running decoder process of this process, and the thread that reaps it when it ends.

    Started as a fresh interpreter (``python -I``: the default, and always for a server: never a fork
    of a threaded process), or, for a caller with one thread that asks for it (the CLI, at its
    start), forked from the caller: its numpy and Pillow are loaded already, so the decoder is ready
    at once instead of after 0.2-0.3 s of imports (it then has no large pages, which only a fresh
    interpreter can ask glibc for).
    """

    def __init__(self, work_name: str, budget: DecodeBudget, *, fork: bool = False):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        budget_json = json.dumps(dataclasses.asdict(budget))
        self.process: subprocess.Popen | _Forked
        try:
            if fork and threading.active_count() == 1:
                pid = os.fork()
                if pid == 0:  # the zygote: keep no pipe of the caller open (its output is read to the end)
                    try:
                        parent_end.close()
                        devnull = os.open(os.devnull, os.O_RDWR)
                        for fd in (0, 1):
                            os.dup2(devnull, fd)
                        run_zygote(child_end.fileno(), work_name, budget_json)
                    finally:
                        os._exit(1)
                self.process = _Forked(pid)
            else:
                env = child_environment()
                # one thread per library (no thread pools in a worker), and small malloc arenas
                env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
                # large pages for the decoders' buffers where the kernel offers them on request (transparent
                # huge pages): a fresh buffer then costs a fault per 2 MB instead of per 4 KB
                tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
                env["GLIBC_TUNABLES"] = ":".join([*tunables, "glibc.malloc.hugetlb=1"])
                boot = (
                    f"import sys; sys.path.insert(0, {_REPO_ROOT!r}); "
                    "from face3d_core.decode_sandbox import run_zygote; "
                    f"run_zygote({child_end.fileno()}, {work_name!r}, {budget_json!r})"
                )
                self.process = subprocess.Popen(
                    [sys.executable, "-I", "-c", boot],
                    pass_fds=[child_end.fileno()],
                    stdin=subprocess.DEVNULL,
                    env=env,
                    close_fds=True,
                )
        finally:
            child_end.close()
        self.control = parent_end
        self.ready = False
        self.ended = threading.Event()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._wait, name="face3d-decoder-reaper", daemon=True).start()

    @property
    def pid(self) -> int:
        """The zygote's process id."""
        return self.process.pid

    def _wait(self) -> None:
        self.process.wait()  # reaps it the moment it ends: never a zombie
        self.ended.set()

    def wait_ready(self, timeout: float) -> None:
        """Wait for the zygote's ``ready`` (its imports done).

        Raises:
            _Lost: It ended or did not say ready in time.
        """
        if self.ready:
            return
        self.control.settimeout(timeout)
        try:
            message = self.control.recv(64)
        except (OSError, TimeoutError) as exc:
            raise _Lost(f"the decoder process did not start ({exc})") from exc
        finally:
            self.control.settimeout(None)
        if message != b"ready":
            raise _Lost(f"the decoder process did not start (exit code {self.process.poll()})")
        self.ready = True

    def new_worker(self) -> _Worker:
        """Ask the zygote for a worker (forked at once; its socket can take a request right away).

        Raises:
            _Lost: The zygote is gone.
        """
        near, far = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._send_lock:
                socket.send_fds(self.control, [b"worker"], [far.fileno()])
        except OSError as exc:
            near.close()
            raise _Lost(f"the decoder process is gone ({exc})") from exc
        finally:
            far.close()
        return _Worker(near, self)

    def close(self, timeout: float = 5.0) -> None:
        """End the zygote (its workers are killed) and reap it."""
        try:
            self.control.close()
        except OSError:
            pass
        if not self.ended.wait(timeout):
            self.process.kill()
            self.ended.wait(timeout)


class _Worker:
    """The server's side of one worker: its socket (the zygote writes an ``ended`` record there too)."""

    def __init__(self, sock: socket.socket, zygote: _Zygote):
        self.sock = sock
        self.zygote = zygote
        self.requests = 0

    def idle_and_alive(self) -> bool:
        """False when something arrived while it was idle (its ``ended`` record, or the end of its socket)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        return not poller.poll(0) and not self.zygote.ended.is_set()

    def close(self) -> None:
        """Close the server's side (an idle worker then exits)."""
        try:
            self.sock.close()
        except OSError:
            pass


class DecodeSandbox:
    """The decoder processes of this process: one zygote and its workers, started on demand, replaced when they end.

    Args:
        budget: What one decode may cost.
        work_name: ``module:function`` run in the workers (see :data:`Work`); default the decoder
            of :mod:`face3d_core.images`.
        max_parallel: Decodes at once (workers; the other requests wait their turn).
    """

    def __init__(
        self,
        budget: DecodeBudget | None = None,
        *,
        work_name: str = "face3d_core.images:sandboxed_work",
        max_parallel: int = MAX_PARALLEL_DECODES,
    ):
        self.budget = budget or DecodeBudget()
        self.work_name = work_name
        self.max_parallel = max(1, int(max_parallel))
        #: False: decode in the calling process (benchmarks compare the two ways).
        self.enabled = True
        self._reset()
        _INSTANCES.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._zygote: _Zygote | None = None
        self._idle: list[_Worker] = []
        self._workers = 0  # idle and busy
        self._unavailable_until = 0.0
        self.fork = False
        #: Zygotes started by this process (tests and benchmarks read it).
        self.starts = 0

    def forget_after_fork(self) -> None:
        """In a forked child process: drop the parent's zygote and workers (this process starts its own)."""
        zygote = self._zygote
        for worker in self._idle:
            worker.close()  # this process's copies only: the parent keeps its workers
        if zygote is not None:
            try:
                zygote.control.close()
            except OSError:
                pass
        self._reset()

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's process id, or None."""
        zygote = self._zygote
        return None if zygote is None or zygote.ended.is_set() else zygote.pid

    def prestart(self, *, fork: bool = False) -> None:
        """Start the zygote now without waiting for it (servers at start, the CLI before its work).

        Args:
            fork: Fork it from this process while it has one thread (the CLI: ready at once, see
                :class:`_Zygote`); a server never asks for this.
        """
        if self.enabled and supported():
            with self._cond:
                self.fork = fork
                self._zygote_locked(wait=False)

    def _zygote_locked(self, wait: bool = True) -> _Zygote | None:
        zygote = self._zygote
        if zygote is not None and zygote.ended.is_set():
            logger.warning("The image decoder process ended (exit code %s); starting a new one", zygote.process.poll())
            self._drop_zygote_locked()
            zygote = None
        if zygote is None:
            if time.monotonic() < self._unavailable_until:
                return None
            try:
                zygote = self._zygote = _Zygote(self.work_name, self.budget, fork=self.fork)
            except OSError as exc:
                self._give_up_for_a_while(f"it could not be started ({exc})")
                return None
            self.starts += 1
        if wait:
            try:
                zygote.wait_ready(START_TIMEOUT_S)
            except _Lost as exc:
                self._drop_zygote_locked()
                self._give_up_for_a_while(str(exc))
                return None
        return zygote

    def _drop_zygote_locked(self) -> None:
        zygote, self._zygote = self._zygote, None
        for worker in self._idle:
            worker.close()
        self._workers -= len(self._idle)
        self._idle.clear()
        if zygote is not None:
            zygote.close(timeout=1.0)

    def _give_up_for_a_while(self, why: str) -> None:
        self._unavailable_until = time.monotonic() + 60.0
        logger.warning(
            "The image decoder process is not available (%s): photos are decoded in this process for the next "
            "minute, without a CPU-time or memory budget",
            why,
        )

    def close(self) -> None:
        """End the zygote and its workers (at exit; a later request starts new ones)."""
        with self._cond:
            self._drop_zygote_locked()
            self._cond.notify_all()

    def _take_worker(self) -> _Worker | None:
        """An idle worker, a new one, or (all busy) the next one freed; None: no decoder process here.

        Raises:
            DecodeRefused: No turn within :data:`QUEUE_WAIT_S` (the server is busy).
        """
        deadline = time.monotonic() + QUEUE_WAIT_S
        with self._cond:
            while True:
                zygote = self._zygote_locked()
                if zygote is None:
                    return None
                while self._idle:
                    worker = self._idle.pop()
                    if worker.zygote is zygote and worker.idle_and_alive():
                        return worker
                    worker.close()  # it ended while idle (killed, retired): never blame a file for that
                    self._workers -= 1
                if self._workers < self.max_parallel:
                    try:
                        worker = zygote.new_worker()
                    except _Lost:
                        self._drop_zygote_locked()
                        continue
                    self._workers += 1
                    return worker
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeRefused(BUSY_MESSAGE)
                self._cond.wait(left)

    def _give_back(self, worker: _Worker, usable: bool) -> None:
        with self._cond:
            if usable and worker.zygote is self._zygote:
                self._idle.append(worker)
            else:
                worker.close()
                self._workers -= 1
            self._cond.notify()

    def run(self, kind: str, data: bytes, fmt: str, name: str) -> tuple[dict, np.ndarray | None] | None:
        """Run one request in a budgeted worker.

        Args:
            kind: What the work does (``"decode"``, ``"exif"``).
            data: The file's bytes.
            fmt: Its format as sniffed (``"JPEG"``, ``"PNG"``).
            name: Its name, for log lines only.

        Returns:
            ``(header, pixels or None)`` of the work; None where no decoder process is available
            (the caller then works in its own process).

        Raises:
            DecodeRefused: The worker overran its budget or failed (one sentence for the user).
            InvalidImageError: The work refused the file (its own message).
        """
        if not (self.enabled and supported()):
            return None
        for attempt in (1, 2):
            worker = self._take_worker()
            if worker is None:
                return None
            usable = False
            try:
                reply, fds = self._exchange(worker, kind, data, fmt, name)
                usable = "ended" not in reply and reply.get("retire") is False
                try:
                    return self._answer(reply, fds, name)
                finally:
                    for fd in fds:
                        os.close(fd)
            except _Lost as exc:
                logger.warning("An image decoder process was lost during a request (%s); trying again", exc)
                if attempt == 2:
                    raise DecodeRefused(DECODER_FAILED_MESSAGE) from exc
            finally:
                self._give_back(worker, usable)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, worker: _Worker, kind: str, data: bytes, fmt: str, name: str) -> tuple[dict, list[int]]:
        """Send one request to a worker and read its answer (or the zygote's report of its end)."""
        header = json.dumps({"kind": kind, "fmt": fmt, "name": str(name)[:200]}).encode()
        data_fd = _sealed_memfd("face3d-file", data)
        try:
            socket.send_fds(worker.sock, [header], [data_fd])
        except OSError as exc:
            raise _Lost(f"the worker is gone ({exc})") from exc
        finally:
            os.close(data_fd)
        worker.requests += 1
        worker.sock.settimeout(self.budget.wall_s + 15.0)
        try:
            message, fds, _, _ = socket.recv_fds(worker.sock, _MAX_MESSAGE, 1)
        except TimeoutError as exc:  # neither the worker nor the zygote answers: replace both
            with self._cond:
                if worker.zygote is self._zygote:
                    self._drop_zygote_locked()
            raise DecodeRefused(TOO_SLOW_MESSAGE) from exc
        except OSError as exc:
            raise _Lost(str(exc)) from exc
        if not message:
            for fd in fds:
                os.close(fd)
            raise _Lost("the connection closed without an answer (the decoder process ended)")
        try:
            return json.loads(message), fds
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            raise DecodeRefused(DECODER_FAILED_MESSAGE) from exc

    def _answer(self, reply: dict, fds: list[int], name: str) -> tuple[dict, np.ndarray | None]:
        ended = reply.get("ended")
        if ended is not None:  # the worker died during this request: the zygote says how
            cpu, sig = float(ended.get("cpu_s") or 0.0), int(ended.get("signal") or 0)
            if sig in (signal.SIGXCPU, signal.SIGALRM):
                logger.warning("Decoding %r stopped: over its time budget (signal %d, %.1f s of CPU)", name, sig, cpu)
                raise DecodeRefused(TOO_SLOW_MESSAGE)
            if sig == signal.SIGKILL:  # killed by someone else: most likely the kernel's OOM killer
                logger.warning("Decoding %r stopped: its decoder was killed (out of memory?)", name)
                raise DecodeRefused(TOO_MUCH_MEMORY_MESSAGE)
            logger.error("Decoding %r failed: the decoder ended with %s", name, ended)
            raise DecodeRefused(DECODER_FAILED_MESSAGE)
        error = reply.get("error")
        if error == "invalid":
            raise InvalidImageError(str(reply.get("message") or DECODER_FAILED_MESSAGE)[:500])
        if error == "memory":
            logger.warning("Decoding %r stopped: over its memory budget", name)
            raise DecodeRefused(TOO_MUCH_MEMORY_MESSAGE)
        if error is not None:
            logger.error("Decoding %r failed in the decoder: %s", name, reply.get("detail"))
            raise DecodeRefused(DECODER_FAILED_MESSAGE)
        shape = reply.get("shape")
        if shape is None:
            return reply, None
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
            raise DecodeRefused(DECODER_FAILED_MESSAGE)
        if len(fds) != 1:
            raise DecodeRefused(DECODER_FAILED_MESSAGE)
        try:
            pixels = np.ndarray(tuple(shape), dtype=np.uint8, buffer=_map_sealed(fds[0], math.prod(shape)))
        except (OSError, ValueError) as exc:
            logger.error("Decoding %r: the decoder's pixels were refused (%s)", name, exc)
            raise DecodeRefused(DECODER_FAILED_MESSAGE) from exc
        return reply, pixels


def _forget_all_after_fork() -> None:
    for sandbox in list(_INSTANCES):
        sandbox.forget_after_fork()


def _close_all() -> None:
    for sandbox in list(_INSTANCES):
        sandbox.close()


#: Every DecodeSandbox of this process (a forked child forgets their zygotes; all end at exit).
_INSTANCES: weakref.WeakSet[DecodeSandbox] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_after_fork)
atexit.register(_close_all)

#: This process's decoders (forked processes get their own: see :meth:`DecodeSandbox.forget_after_fork`).
SANDBOX = DecodeSandbox()
