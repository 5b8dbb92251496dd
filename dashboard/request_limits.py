"""What one HTTP request may cost the server: its size, and how slowly it may arrive.

* :class:`BodyLimit`, WSGI middleware for any server (``python -m dashboard``, gunicorn): it
  counts the request body's bytes as the app reads them. A declared ``Content-Length`` over the
  limit is answered 413 at once; a chunked body is cut off at the limit (the read that crosses
  it fails, and whatever the app made of that, the client gets 413 with ``Connection: close``).
  It also gives the body a deadline: ``FACE3D_READ_TIMEOUT_S`` plus 1 s per
  :data:`MIN_BODY_BYTES_PER_S` bytes received; a client late on it is disconnected.
* :class:`ReadDeadlines`, one watchdog thread: it shuts down the socket of a connection that is
  past its deadline, so the read blocked on it returns at once and the worker thread is free
  again (a per-read socket timeout would not stop a client sending a byte a second).
* :class:`BoundedRequestHandler`, Werkzeug's request handler for ``python -m dashboard``
  (:func:`run_dev_server`): the request line and headers must arrive within
  ``FACE3D_READ_TIMEOUT_S`` too, and the socket is handed to :class:`BodyLimit`.

Under gunicorn (``-c dashboard/gunicorn.conf.py``) the same deadlines apply: the body's through
:class:`BodyLimit` (gunicorn puts the socket in the WSGI environ), the headers' through
:class:`dashboard.gunicorn_worker.DeadlineThreadWorker` (gunicorn itself does not time slow
headers). Over TLS terminated by gunicorn itself the header deadline cannot cut the connection:
terminate TLS at the reverse proxy (docs/deployment.md).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import WSGIRequestHandler

from face3d_core.config import get_settings

if TYPE_CHECKING:
    from dash import Dash
    from flask import Flask

logger = logging.getLogger(__name__)

#: The slowest body accepted, once ``FACE3D_READ_TIMEOUT_S`` is spent: 16 KiB per second.
MIN_BODY_BYTES_PER_S = 16 * 1024
#: After a body over the limit, how long the rest may still be read (and thrown away) so that
#: the client can see the 413 before the connection closes.
LINGER_S = 1.0
#: Requests whose answered (2xx) calls the development server does not log: a live camera view sends
#: many frames a second (refusals and errors are still logged; gunicorn logs no access by default).
QUIET_PATHS = ("/face3d/live/frame",)
#: Where the connection's socket is in the WSGI environ (gunicorn's key, then ours).
SOCKET_KEYS = ("gunicorn.socket", "face3d.socket")

_WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
#: ``sys.exc_info()`` as a WSGI app passes it to ``start_response`` after an error.
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


class _BodyStream(Protocol):
    """A WSGI server's ``wsgi.input``: what :class:`_LimitedBody` reads from."""

    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


class _Watch:
    """One connection's deadline: ``started + timeout_s + received / bytes_per_s``."""

    __slots__ = ("bytes_per_s", "done", "expired", "how", "label", "received", "sock", "started", "timeout_s")

    def __init__(self, sock: socket.socket, timeout_s: float, bytes_per_s: float | None, label: str, how: int):
        self.sock = sock
        self.timeout_s = timeout_s
        self.bytes_per_s = bytes_per_s
        self.label = label
        self.how = how
        self.started = time.monotonic()
        self.received = 0
        self.done = False
        self.expired = False

    def deadline(self) -> float:
        allowance = self.received / self.bytes_per_s if self.bytes_per_s else 0.0
        return self.started + self.timeout_s + allowance

    def finish(self) -> None:
        """The awaited data arrived (or no longer matters): stop watching."""
        self.done = True


class ReadDeadlines:
    """One daemon thread that shuts down connections past their deadline.

    Args:
        period_s: How often deadlines are checked.
    """

    def __init__(self, period_s: float = 0.25):
        self.period_s = period_s
        self._watches: set[_Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(
        self,
        sock: socket.socket,
        timeout_s: float,
        *,
        bytes_per_s: float | None = None,
        label: str = "a request",
        how: int = socket.SHUT_RDWR,
    ) -> _Watch:
        """Shut ``sock`` down (``how``) unless the returned watch is finished before its deadline."""
        watch = _Watch(sock, timeout_s, bytes_per_s, label, how)
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="face3d-read-deadlines", daemon=True)
                self._thread.start()
        return watch

    def _run(self) -> None:
        while True:
            time.sleep(self.period_s)
            now = time.monotonic()
            with self._lock:
                due = [w for w in self._watches if w.done or now > w.deadline()]
                self._watches.difference_update(due)
            for watch in due:
                if not watch.done:
                    self._expire(watch)

    @staticmethod
    def _expire(watch: _Watch) -> None:
        watch.expired = True
        try:
            watch.sock.shutdown(watch.how)
        except OSError:  # already closed by the server (a closed socket object never reaches another fd)
            return
        if watch.how == socket.SHUT_RDWR:
            logger.warning(
                "Disconnected %s: it sent %s too slowly (more than %.0f s; FACE3D_READ_TIMEOUT_S)",
                watch.label,
                "its request headers" if watch.bytes_per_s is None else "its request body",
                time.monotonic() - watch.started,
            )


#: The process's watchdog.
DEADLINES = ReadDeadlines()

_HEADERS = threading.local()


def watch_headers(sock: socket.socket, label: str) -> _Watch:
    """Start the deadline of a request's line and headers on this thread (see :func:`headers_received`)."""
    watch = DEADLINES.watch(sock, get_settings().read_timeout_s, label=label)
    _HEADERS.watch = watch
    return watch


def headers_received() -> None:
    """The request line and headers of this thread's request are in: end their deadline."""
    watch = getattr(_HEADERS, "watch", None)
    if watch is not None:
        watch.finish()
        _HEADERS.watch = None


class _LimitedBody:
    """The request body as the app reads it: counted, cut off at the limit, on a deadline."""

    def __init__(self, stream: _BodyStream, max_bytes: int, declared: int | None, watch: _Watch | None):
        self._stream = stream
        self._max_bytes = max_bytes
        self._declared = declared
        self._watch = watch
        self.received = 0
        self.too_large = False

    def _count(self, data: bytes, asked: int | None) -> bytes:
        self.received += len(data)
        if self._watch is not None:
            self._watch.received = self.received
            if not data or (self._declared is not None and self.received >= self._declared):
                self._watch.finish()  # the whole body is in: the app's own time is not limited
        if self.received > self._max_bytes or (data and self.received == self._max_bytes and self._more()):
            self.too_large = True
            raise RequestEntityTooLarge()
        return data

    def _more(self) -> bool:
        """At the limit exactly (a reader that stops there, like Werkzeug's): is there more?"""
        if self._declared is not None:
            return self._declared > self._max_bytes
        extra = self._stream.read(1)
        self.received += len(extra)
        return bool(extra)

    def read(self, size: int | None = -1) -> bytes:
        if self.too_large:
            raise RequestEntityTooLarge()
        if size is None or size < 0:  # never "everything": read up to one byte past the limit
            size = self._max_bytes + 1 - self.received
        return self._count(self._stream.read(max(0, size)), size)

    def readline(self, size: int | None = -1) -> bytes:
        if self.too_large:
            raise RequestEntityTooLarge()
        limit = self._max_bytes + 1 - self.received
        size = limit if size is None or size < 0 else min(size, limit)
        return self._count(self._stream.readline(max(0, size)), size)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self):
        while True:
            line = self.readline(65536)
            if not line:
                return
            yield line

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def _content_length(wsgi_env: dict) -> int | None:
    try:
        value = int(wsgi_env.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return value if value >= 0 else None


class BodyLimit:
    """WSGI middleware: request bodies of at most ``max_bytes``, arriving not too slowly (see the module docstring).

    Args:
        app: The WSGI application.
        max_bytes: The largest body accepted.
        read_timeout_s: The body's time allowance before the rate rule; default
            ``FACE3D_READ_TIMEOUT_S``, read on each request.
    """

    def __init__(self, app: _WSGIApp, max_bytes: int, read_timeout_s: float | None = None):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.read_timeout_s = read_timeout_s

    def _too_large(self, wsgi_env: dict, start_response: Callable) -> list[bytes]:
        logger.info("Refused a request body over %d bytes from %s", self.max_bytes, wsgi_env.get("REMOTE_ADDR"))
        body = f"The request is too large: the limit is {self.max_bytes // 2**20} MB.\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response("413 Request Entity Too Large", [*headers, ("Connection", "close")])
        return [body]

    def __call__(self, wsgi_env: dict, start_response: Callable) -> Iterable[bytes]:
        """Serve one request through the limits."""
        headers_received()  # under a server that timed them (ours, or gunicorn's DeadlineThreadWorker)
        declared = _content_length(wsgi_env)
        if declared is not None and declared > self.max_bytes:
            return self._too_large(wsgi_env, start_response)
        chunked = "chunked" in wsgi_env.get("HTTP_TRANSFER_ENCODING", "").lower()
        sock = next((wsgi_env[key] for key in SOCKET_KEYS if isinstance(wsgi_env.get(key), socket.socket)), None)
        watch = None
        if sock is not None and (chunked or declared):
            timeout = self.read_timeout_s if self.read_timeout_s is not None else get_settings().read_timeout_s
            label = f"client {wsgi_env.get('REMOTE_ADDR')}"
            watch = DEADLINES.watch(sock, timeout, bytes_per_s=MIN_BODY_BYTES_PER_S, label=label)
        body = _LimitedBody(wsgi_env["wsgi.input"], self.max_bytes, None if chunked else declared, watch)
        wsgi_env["wsgi.input"] = body
        reply: list = []
        sent: list = []  # the server's write(), once its start_response was called

        def send_reply() -> Callable[[bytes], object]:
            if not sent:
                sent.append(start_response(*reply))
            return sent[0]

        def remember(status: str, headers: list, exc_info: _ExcInfo | None = None) -> Callable[[bytes], object]:
            # held back until the app returns: a body over the limit turns any answer into 413
            reply[:] = [status, headers, exc_info]
            return lambda data: send_reply()(data)

        try:
            result = self.app(wsgi_env, remember)
        finally:
            if watch is not None:
                watch.finish()
        if body.too_large:
            getattr(result, "close", lambda: None)()
            if sock is not None:  # read (and drop) the rest for a moment, then stop: see LINGER_S
                DEADLINES.watch(sock, LINGER_S, label="an over-limit body", how=socket.SHUT_RD)
            return self._too_large(wsgi_env, start_response)
        if reply:
            send_reply()
        return result


class BoundedRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler with a deadline for the request line and headers.

    The connection's socket goes into the WSGI environ (``face3d.socket``), so that
    :class:`BodyLimit` can give the body its deadline too.
    """

    def handle_one_request(self) -> None:
        """Handle one request, disconnecting a client whose headers are late."""
        watch_headers(self.connection, f"client {self.client_address[0] if self.client_address else '?'}")
        try:
            super().handle_one_request()
        finally:
            headers_received()

    def parse_request(self) -> bool:
        """Parse the request line and headers (their deadline ends here)."""
        try:
            return super().parse_request()
        finally:
            headers_received()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Werkzeug's access log line, except for answered live camera frames (see :data:`QUIET_PATHS`)."""
        path = self.path.split("?", 1)[0] if isinstance(getattr(self, "path", None), str) else ""
        if path.endswith(QUIET_PATHS) and str(code).startswith("2"):
            return
        super().log_request(code, size)

    def make_environ(self) -> dict:
        """Werkzeug's WSGI environ, plus the connection's socket."""
        wsgi_env = super().make_environ()
        wsgi_env["face3d.socket"] = self.connection
        return wsgi_env


def limit_requests(server: Flask, max_bytes: int) -> None:
    """Put :class:`BodyLimit` in front of a Flask server's WSGI app (any WSGI server then applies it)."""
    server.wsgi_app = BodyLimit(server.wsgi_app, max_bytes)


def run_dev_server(app: Dash, host: str, port: int, *, debug: bool = False) -> None:
    """Serve a Dash app with Werkzeug's threaded server and :class:`BoundedRequestHandler`."""
    app.run(host=host, port=port, debug=debug, threaded=True, request_handler=BoundedRequestHandler)
