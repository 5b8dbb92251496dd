"""Who may see what: each session's own photos and names, and which photos are in use.

Photos are stored once per content (deduplicated by SHA-256, see
:mod:`~dashboard.services.uploads`) but *belong* to the sessions that uploaded them. A
:class:`MembershipStore` keeps, on the server, which content each browser session uploaded and
under which file name. Everything a page shows about a photo goes through :class:`Access`:

* the display name is the session's own (the same bytes uploaded elsewhere under another
  name change nothing here);
* a thumbnail, depth map, 3D model, comparison or download is served only to a session that
  uploaded that content. For any other session the photo does not exist: it gets exactly the
  answer it would get for a photo that was never uploaded or is no longer stored, so nobody
  can learn whether some content was uploaded by someone else (an upload of content the
  session does not hold yet is also fully validated again, so its timing tells nothing either);
* a photo a session uses is *in use*: it is pinned in the result store
  (:meth:`~face3d_core.cache.store.ResultStore.pin`) for ``FACE3D_IN_USE_S`` after its last use,
  so neither it nor its results are evicted while a page or a job needs them.

Membership lives with the deployment: :class:`DiskMembershipStore` in the cache folder (every
worker of a machine), :class:`RedisMembershipStore` in Redis (scale-out), and
:class:`MemoryMembershipStore` for one process (tests, scripts). Session ids come from the
server's signed cookie (:mod:`dashboard.sessions`); ``""`` is the server's own session (scripts).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dashboard.services.errors import PhotoMissingError
from dashboard.services.uploads import UploadMeta, Uploads, display_name
from face3d_core.cache import MISSING, ResultStore, combine_hashes, is_sha256_hex
from face3d_core.cache.diskdb import DiskDB, OnDamage
from face3d_core.compare import ComparisonResult, item_name
from face3d_core.config import get_settings
from face3d_core.errors import CacheError
from face3d_core.images import sha256_hex
from face3d_core.pipeline import DepthRef

if TYPE_CHECKING:  # imported where used: only scale-out mode needs it
    import redis

logger = logging.getLogger(__name__)

#: How long a session keeps its photos after it last uploaded or used them (and its cookie lives).
SESSION_TTL_S = 30 * 24 * 3600
#: A use refreshes the pin and the membership at most this often per (session, photo), seconds.
REFRESH_EVERY_S = 60.0


class MembershipStore(Protocol):
    """Which content each session uploaded, and under which name."""

    def add(self, session: str, sha: str, name: str) -> None:
        """Record (or refresh) that ``session`` holds ``sha`` as ``name`` (raise CacheError when impossible)."""
        ...

    def name(self, session: str, sha: str) -> str | None:
        """The session's name of ``sha``, or None when the session does not hold it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryMembershipStore:
    """Membership in this process only (tests and scripts; a server uses the disk or Redis store)."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def add(self, session: str, sha: str, name: str) -> None:
        """See :meth:`MembershipStore.add`."""
        with self._lock:
            self._names[(session, sha)] = name

    def name(self, session: str, sha: str) -> str | None:
        """See :meth:`MembershipStore.name`."""
        with self._lock:
            return self._names.get((session, sha))

    def close(self) -> None:
        """Nothing to release."""


class DiskMembershipStore:
    """Membership in ``<cache dir>/sessions`` on diskcache (shared by the workers of one machine).

    A damaged index is rebuilt empty (the photos stay; their sessions upload them again).

    Args:
        directory: The folder.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._db = DiskDB(
            self.directory, label="the session records", on_damage=OnDamage.REBUILD, size_limit=64 * 1024 * 1024
        )

    def add(self, session: str, sha: str, name: str) -> None:
        """See :meth:`MembershipStore.add`."""
        self._db.set(f"member/{session}/{sha}", name, expire=SESSION_TTL_S)

    def name(self, session: str, sha: str) -> str | None:
        """See :meth:`MembershipStore.name`."""
        value = self._db.get(f"member/{session}/{sha}")
        return value if isinstance(value, str) and value is not MISSING else None

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


class RedisMembershipStore:
    """Membership in Redis (scale-out: every web worker of every machine), one hash per session.

    Args:
        url: Redis URL.
        client: An existing ``redis.Redis`` client (tests); built from ``url`` otherwise.
    """

    def __init__(self, url: str, client: redis.Redis | None = None):
        import redis

        self._errors = (redis.RedisError, OSError)
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=30)

    @staticmethod
    def _key(session: str) -> str:
        return f"face3d-session:{session}"

    def add(self, session: str, sha: str, name: str) -> None:
        """See :meth:`MembershipStore.add`."""
        try:
            pipe = self._client.pipeline()
            pipe.hset(self._key(session), sha, name.encode("utf-8"))
            pipe.expire(self._key(session), SESSION_TTL_S)
            pipe.execute()
        except self._errors as exc:
            raise CacheError(f"The session records in Redis cannot be written ({exc}). Is Redis running?") from exc

    def name(self, session: str, sha: str) -> str | None:
        """See :meth:`MembershipStore.name`."""
        try:
            raw = self._client.hget(self._key(session), sha)
        except self._errors as exc:
            logger.warning("Session records in Redis cannot be read: %s", exc)
            return None
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class Access:
    """Per-session photos: membership, display names and what is in use (see the module docstring).

    Args:
        members: Which session holds which content.
        uploads: The stored photos.
        store: The result store (pins).
        in_use_s: How long a photo stays pinned after its last use (default ``FACE3D_IN_USE_S``).
    """

    def __init__(
        self, members: MembershipStore, uploads: Uploads, store: ResultStore, *, in_use_s: float | None = None
    ):
        self.members = members
        self.uploads = uploads
        self.store = store
        self.in_use_s = float(get_settings().in_use_s if in_use_s is None else in_use_s)
        self._refreshed: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    # -- in use -----------------------------------------------------------------------------

    def keep(self, content_hash: str) -> None:
        """Pin ``content_hash`` (a photo, a comparison) for :attr:`in_use_s` from now."""
        self.store.pin(content_hash, self.in_use_s)

    def _due(self, session: str, sha: str) -> bool:
        """True when the pin and membership of (session, photo) should be refreshed now (rate-limited)."""
        now = time.monotonic()
        key = (session, sha)
        with self._lock:
            last = self._refreshed.get(key)
            if last is not None and now - last < min(REFRESH_EVERY_S, self.in_use_s / 4):
                return False
            self._refreshed[key] = now
            self._refreshed.move_to_end(key)
            while len(self._refreshed) > 10_000:
                self._refreshed.popitem(last=False)
        return True

    # -- membership -------------------------------------------------------------------------

    def upload(self, session: str, data: bytes, name: str) -> UploadMeta:
        """Store an uploaded file for ``session`` under its name; return its metadata (with that name).

        Content the session does not hold yet is decoded and checked again even when another
        session stored it already (the same work and time as a first upload).

        Raises:
            InvalidImageError: Not a usable JPEG/PNG.
            WeightsUnavailableError: The face detector file is missing.
            CacheError: The store cannot be written (full of photos in use, read-only ...).
        """
        name = display_name(name)  # at most MAX_NAME_CHARS, cut in the middle (the extension stays)
        sha = sha256_hex(data)
        known = self.members.name(session, sha) is not None
        self.keep(sha)  # before storing: the new entry is in use from its first byte
        meta = self.uploads.ingest(data, name, sha=sha, revalidate=not known)
        self.members.add(session, meta.sha256, name)
        with self._lock:
            self._refreshed[(session, meta.sha256)] = time.monotonic()
        return dataclasses.replace(meta, name=name)

    def meta(self, session: str, sha: object) -> UploadMeta | None:
        """The photo ``sha`` as ``session`` sees it (its own name), or None.

        None when the session never uploaded that content, when it is no longer stored, or
        when ``sha`` is junk: the three are indistinguishable on purpose. A found photo is
        marked in use (pinned) and the session's membership refreshed.
        """
        if not is_sha256_hex(sha):
            return None
        name = self.members.name(session, sha)
        if name is None:
            return None
        meta = self.uploads.meta(sha)
        if meta is None:
            return None
        if self._due(session, sha):
            self.keep(sha)
            try:
                self.members.add(session, sha, name)
            except CacheError as exc:
                logger.info("Could not refresh a session's photo %s: %s", sha[:12], exc)
        return dataclasses.replace(meta, name=name)

    def require_photo(self, session: str, sha: object) -> UploadMeta:
        """Like :meth:`meta`, raising the user-facing error instead of returning None.

        Raises:
            PhotoMissingError: Not this session's photo, or no longer stored.
        """
        meta = self.meta(session, sha)
        if meta is None:
            raise PhotoMissingError()
        return meta

    def require_depth_ref(self, session: str, ref: DepthRef | None) -> UploadMeta:
        """The photo of a depth result the browser names, when the session may see it.

        Raises:
            PhotoMissingError: No ref, not this session's photo, or no longer stored.
        """
        if ref is None:
            raise PhotoMissingError()
        return self.require_photo(session, ref.sha)

    def labels(self, session: str, refs: Sequence[DepthRef]) -> list[str]:
        """The session's display names of faces (file name, plus the face in group photos).

        Raises:
            PhotoMissingError: A photo is not the session's or no longer stored.
        """
        return [self.require_photo(session, ref.sha).face_label(ref.face_index) for ref in refs]

    def item_names(self, session: str, refs: Sequence[DepthRef]) -> list[str]:
        """The session's names of comparison items: the face and the model (``"a.jpg · DPT-Hybrid"``).

        Raises:
            PhotoMissingError: A photo is not the session's or no longer stored.
        """
        return [item_name(label, ref) for label, ref in zip(self.labels(session, refs), refs, strict=True)]

    def comparison(self, session: str, result: ComparisonResult | None) -> ComparisonResult | None:
        """A cached comparison as ``session`` sees it (its own names), or None.

        None unless the session holds every compared photo (a comparison key alone reveals
        nothing). A shown comparison is marked in use, with its photos.
        """
        if result is None:
            return None
        try:
            names = self.item_names(session, result.refs)
        except PhotoMissingError:
            return None
        combined = combine_hashes(list(result.shas))
        if self._due(session, combined):
            self.keep(combined)
        return dataclasses.replace(result, names=tuple(names))
