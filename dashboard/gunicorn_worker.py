"""gunicorn's threaded worker with a deadline for each request's line and headers.

gunicorn waits for a new connection's first byte without holding a thread, but a client that
then sends its headers a byte at a time holds a worker thread for as long as it likes.
:class:`DeadlineThreadWorker` gives the request line and headers ``FACE3D_READ_TIMEOUT_S``
(:func:`dashboard.request_limits.watch_headers`); the deadline ends when the app is called
(:class:`~dashboard.request_limits.BodyLimit`), and the body has its own. Used by
``dashboard/gunicorn.conf.py`` (``worker_class``).
"""

from __future__ import annotations

from gunicorn.workers.gthread import TConn, ThreadWorker

from dashboard.request_limits import headers_received, watch_headers


class DeadlineThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker; a client late with its request headers is disconnected."""

    def handle(self, conn: TConn) -> object:
        """Handle one request of a connection (in a worker thread) under the header deadline.

        Returns:
            What gunicorn's own ``handle`` returns (the worker's next step for the connection).
        """
        client = conn.client[0] if isinstance(conn.client, (tuple, list)) else conn.client
        watch_headers(conn.sock, f"client {client}")
        try:
            return super().handle(conn)
        finally:
            headers_received()
