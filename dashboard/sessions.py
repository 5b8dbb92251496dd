"""Browser sessions: a server-issued, signed session cookie, and the server's secret.

Every browser gets a random session id from the server on its first request (a Flask
``before_request`` hook reads it, an ``after_request`` hook sets it): the cookie
``face3d_session`` holds ``<id>.<signature>``, signed with the server's secret (HMAC-SHA256),
``HttpOnly`` (page scripts cannot read it), ``SameSite=Lax`` and ``Secure`` behind HTTPS. A
cookie whose signature does not match is replaced by a new session. The id says which photos
the browser uploaded (:mod:`dashboard.services.access`) and which jobs it started
(:class:`dashboard.jobs.JobIds`).

Callbacks stay plain functions: the registered callback reads :func:`current_session` (the
request's id, set by the hook) and passes it in; tests pass any string.

The secret (:func:`server_secret`) signs cookies and job ids, so every web worker must have the
same one: ``FACE3D_SECRET_KEY`` where set; otherwise it is generated once and kept in
``<cache dir>/secret_key`` (mode 0600: the workers of a machine share it) or, in scale-out
mode, in Redis (every machine shares it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from flask import Flask, Response, g, has_request_context, request

from face3d_core.config import get_settings

logger = logging.getLogger(__name__)

#: Name of the session cookie.
COOKIE_NAME = "face3d_session"
#: File of the generated secret in the cache folder.
SECRET_FILE = "secret_key"
#: Redis key of the generated secret (scale-out mode).
REDIS_SECRET_KEY = "face3d-secret"
#: Lifetime of the session cookie (renewed on every page load), as long as the session's photos are kept.
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_SESSION_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _secret_from_file(cache_dir: Path) -> bytes:
    """Read ``<cache_dir>/secret_key``, creating it (0600) the first time; shared by the machine's workers.

    The file appears whole or not at all (written aside, then hard-linked into place, which fails
    if another worker was first), so a worker starting at the same moment never reads half a secret.
    """
    path = cache_dir / SECRET_FILE
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        aside = cache_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(aside, path)
            logger.info("Generated the server secret in %s (mode 0600)", path)
        except FileExistsError:
            pass  # another worker was first: use its secret
        finally:
            aside.unlink(missing_ok=True)
    text = _read_private_file(path)
    if len(text) < 32:
        raise OSError(f"{path} holds no usable secret (delete it to make a new one)")
    return text.encode()


def _read_private_file(path: Path) -> str:
    """The text of ``path``, a regular file of this user's that only they can read (made so if needed).

    The file is opened without following a symbolic link (``O_NOFOLLOW``) and checked and
    tightened through the open descriptor, so a link or another kind of file put in its place
    is refused (never followed, read or chmodded) and nothing can swap it between check and use.

    Raises:
        OSError: A symbolic link, not a regular file, another user's file, or unreadable.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise OSError(f"{path} is a symbolic link; refusing to follow it (delete it to make a new secret)") from exc
        raise
    with os.fdopen(descriptor, "r") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file (delete it to make a new secret)")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise OSError(f"{path} belongs to another user (delete it to make a new secret)")
        mode = info.st_mode & 0o777
        if mode & 0o077:
            os.fchmod(descriptor, 0o600)
            logger.warning("The server secret %s was readable by others (mode %o); it is now 0600", path, mode)
        return handle.read(4096).strip()


def _secret_from_redis(redis_url: str) -> bytes:
    """The secret shared through Redis (the first web worker to ask creates it)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    try:
        client.set(REDIS_SECRET_KEY, secrets.token_hex(32), nx=True)
        value = client.get(REDIS_SECRET_KEY)
    finally:
        client.close()
    if not value:
        raise OSError("Redis holds no secret")
    return bytes(value)


def server_secret(cache_dir: Path, redis_url: str | None = None) -> bytes:
    """The secret that signs session cookies and job ids (the same for every web worker).

    ``FACE3D_SECRET_KEY`` where set; else kept in Redis (scale-out) or in ``<cache dir>/secret_key``.
    Where none of these can be read or written (a read-only cache folder on the first start), a
    secret of this process is used and a warning logged (sessions then last as long as the process).
    """
    configured = get_settings().secret_key
    if configured:
        return configured.encode()
    try:
        return _secret_from_redis(redis_url) if redis_url else _secret_from_file(cache_dir)
    except Exception as exc:  # noqa: BLE001 - the app must still start; it says what it does instead
        logger.warning(
            "No shared server secret (%s): using one for this process only; sessions will not survive a restart "
            "and other workers will not accept them. Set FACE3D_SECRET_KEY.",
            exc,
        )
        return secrets.token_bytes(32)


class SessionCookies:
    """Issues and checks the signed session cookie (see the module docstring).

    Args:
        secret: The server's secret (:func:`server_secret`).
    """

    def __init__(self, secret: bytes):
        self._secret = secret

    def _signature(self, session_id: str) -> str:
        return hmac.new(self._secret, b"session\x00" + session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def new_session(self) -> str:
        """A fresh random session id."""
        return secrets.token_hex(16)

    def cookie_value(self, session_id: str) -> str:
        """The cookie that carries ``session_id``."""
        return f"{session_id}.{self._signature(session_id)}"

    def session_of(self, cookie: object) -> str | None:
        """The session id a cookie carries, or None when it is missing, malformed or forged."""
        if not isinstance(cookie, str) or len(cookie) != 65:
            return None
        session_id, _, signature = cookie.partition(".")
        if not _SESSION_ID_RE.match(session_id):
            return None
        return session_id if hmac.compare_digest(signature, self._signature(session_id)) else None

    def install(self, server: Flask) -> None:
        """Give every request a session id (``flask.g``) and every new session its cookie."""

        @server.before_request
        def _face3d_session() -> None:
            session_id = self.session_of(request.cookies.get(COOKIE_NAME))
            g.face3d_session_new = session_id is None
            g.face3d_session = session_id or self.new_session()

        @server.after_request
        def _face3d_session_cookie(response: Response) -> Response:
            session_id = g.get("face3d_session")
            # a new session, or a page load (its layout request renews the cookie's lifetime)
            page_load = request.method == "GET" and request.path.endswith("/_dash-layout")
            if session_id and (g.get("face3d_session_new") or page_load):
                response.set_cookie(
                    COOKIE_NAME,
                    self.cookie_value(session_id),
                    max_age=COOKIE_MAX_AGE_S,
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure,
                    path="/",
                )
            return response


def current_session() -> str:
    """The session id of the request being served (set by :meth:`SessionCookies.install`).

    Raises:
        RuntimeError: Outside a request, or in an app without the session hook (a bug: a page
            must never be served without a session).
    """
    session_id = g.get("face3d_session") if has_request_context() else None
    if not session_id:
        raise RuntimeError("No face3d session: the request did not pass through SessionCookies.install")
    return session_id
