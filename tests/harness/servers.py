"""Servers the tests start for real on 127.0.0.1: the dashboard (three ways) and ``redis-server``.

A :class:`WebServer` picks a free port once and keeps it, so a server stopped or killed and started
again is found at the same URL with the same cache folder (a restart, a crash and recovery).
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.harness.paths import REPO_ROOT
from tests.harness.processes import PYTHON, ManagedProcess, child_env, free_port, wait_for_http

HEALTH_PATH = "face3d/health"
#: Run a server as process 1 of its own PID namespace, as in a container (root only).
PID_NAMESPACE = ("unshare", "--pid", "--fork", "--mount-proc")
#: The gunicorn settings the commands of docs/deployment.md use.
GUNICORN_CONF = REPO_ROOT / "dashboard" / "gunicorn.conf.py"


class WebServer:
    """A dashboard web server process on a free 127.0.0.1 port.

    Build one with :meth:`dashboard`, :meth:`fake_network` or :meth:`gunicorn`; :meth:`start`
    returns once ``/face3d/health`` answers 200.

    Args:
        argv_for_port: The command line for a given port.
        env: Environment (see :func:`tests.harness.processes.child_env`).
        log_path: Where its output goes (appended across restarts).
        cwd: Working folder (default: the repository).
        start_timeout: Longest wait for the health check, in seconds.
        cache_dir: The app's cache folder, where known (for the tests' checks).
    """

    def __init__(
        self,
        argv_for_port: Callable[[int], list[str]],
        env: dict[str, str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        start_timeout: float = 120.0,
        cache_dir: Path | None = None,
    ):
        self.cache_dir = cache_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.start_timeout = start_timeout
        self.process = ManagedProcess(argv_for_port(self.port), env, log_path, cwd)

    @classmethod
    def dashboard(cls, env: dict[str, str], log_path: Path, **kwargs) -> WebServer:
        """``python -m dashboard`` (the development server, threaded): the real app as users run it."""
        return cls(
            lambda port: [PYTHON, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(port)],
            env,
            log_path,
            **kwargs,
        )

    @classmethod
    def fake_network(
        cls,
        env: dict[str, str],
        log_path: Path,
        *,
        cache_dir: Path,
        delay_s: float = 0.0,
        command_prefix: Sequence[str] = (),
        scenes: Sequence[tuple[Path, Path]] = (),
        **kwargs,
    ) -> WebServer:
        """The app with a stand-in depth network (:mod:`tests.harness.fake_network_server`).

        Args:
            env: Environment.
            log_path: Log file.
            cache_dir: The app's cache folder.
            delay_s: Seconds each prediction sleeps (to kill the server mid-inference).
            command_prefix: A command that runs the server (e.g. :data:`PID_NAMESPACE`).
            scenes: ``(photo, depth .npy)`` pairs whose true depth the network returns
                (:mod:`tests.harness.scenes`).
            **kwargs: See :class:`WebServer`.
        """

        def argv(port: int) -> list[str]:
            scene_args = [arg for photo, depth in scenes for arg in ("--scene", f"{photo}:{depth}")]
            return [
                *command_prefix, PYTHON, "-m", "tests.harness.fake_network_server", "--port", str(port),
                "--cache-dir", str(cache_dir), "--delay-s", str(delay_s), *scene_args,
            ]  # fmt: skip

        return cls(argv, env, log_path, cache_dir=cache_dir, **kwargs)

    @classmethod
    def gunicorn(
        cls,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int,
        threads: int,
        extra_args: Sequence[str] = (),
        **kwargs,
    ) -> WebServer:
        """``gunicorn -c dashboard/gunicorn.conf.py dashboard.wsgi:server`` (as docs/deployment.md runs it).

        ``workers`` processes of ``threads`` threads each, on a free port.
        """

        def argv(port: int) -> list[str]:
            return [
                PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--workers", str(workers),
                "--threads", str(threads), "--bind", f"127.0.0.1:{port}", *extra_args, "dashboard.wsgi:server",
            ]  # fmt: skip

        return cls(argv, env, log_path, **kwargs)

    def start(self) -> WebServer:
        """Start the server and wait until it is healthy (raising with its log if it is not)."""
        return self.launch().wait_until_healthy()

    def launch(self) -> WebServer:
        """Start the process without waiting (several servers can then start at once)."""
        self.process.start()
        return self

    def wait_until_healthy(self) -> WebServer:
        """Wait until ``/face3d/health`` answers 200 (raising with the log if the process died or timed out)."""
        wait_for_http(self.url + HEALTH_PATH, self.process, timeout=self.start_timeout)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL what is left (the whole process group)."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL the whole process group at once: no clean-up of any kind."""
        self.process.kill()

    def restart(self) -> None:
        """Stop cleanly and start again on the same port."""
        self.stop()
        self.start()

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process.alive()

    def peak_rss_bytes(self) -> int | None:
        """Peak resident memory of the server process (gunicorn: the master only), or None."""
        return self.process.peak_rss_bytes()

    def log_text(self) -> str:
        """The server's output so far."""
        return self.process.log_text()


def fake_network_server(
    root: Path, delay_s: float = 0.0, *, command_prefix: Sequence[str] = (), **extra_env: str
) -> WebServer:
    """:meth:`WebServer.fake_network` (not started) with its cache, working folder, HOME and TMPDIR under ``root``.

    The working folder is ``root/a/b/cwd``, so a file name such as ``../../x.png`` used as a path
    would land inside ``root``, where a test can see it. The cache is ``root/cache``. ``extra_env``
    adds to the server's environment (e.g. ``FACE3D_CACHE_SIZE_MB="50"``).
    """
    cwd = root / "a" / "b" / "cwd"
    for folder in (cwd, root / "home", root / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    cache_dir = root / "cache"
    env = child_env(FACE3D_CACHE_DIR=str(cache_dir), HOME=str(root / "home"), TMPDIR=str(root / "tmp"), **extra_env)
    return WebServer.fake_network(
        env, root / "server.log", cache_dir=cache_dir, delay_s=delay_s, cwd=cwd, command_prefix=command_prefix
    )


class RedisServer:
    """``redis-server`` on a free 127.0.0.1 port: no persistence, ``volatile-lru``, 1 GB at most.

    Args:
        executable: Path of ``redis-server``.
        root: Its working folder (log and nothing else).
    """

    def __init__(self, executable: str, root: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [
            executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
            "--appendonly", "no", "--maxmemory", "1gb", "--maxmemory-policy", "volatile-lru",
        ]  # fmt: skip
        self.process = ManagedProcess(argv, dict(os.environ), root / "redis.log", cwd=root)

    def start(self, timeout: float = 30.0) -> RedisServer:
        """Start it and wait until it answers PING."""
        import redis

        self.process.start()
        client = redis.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    if time.monotonic() > deadline or not self.process.alive():
                        raise RuntimeError(f"redis-server did not start:\n{self.process.log_text()}") from None
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it (its data is gone: no persistence)."""
        self.process.stop()


@contextmanager
def file_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for download tests; shut down on exit.

    The server has ``files`` (path -> bytes, for the handler to serve) and ``requests`` (the paths
    asked for, for the handler to record), both empty at first.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.files, server.requests = {}, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
