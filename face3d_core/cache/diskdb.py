"""One :mod:`diskcache` database used with bounded waits, and repaired when its index is damaged.

Every diskcache database of face3d (the result cache, the dashboard's job records and session
records) goes through :class:`DiskDB`, because diskcache alone has three traps:

* diskcache's own retry option retries a transaction that cannot start *forever, in a busy loop*; on a
  read-only folder every write, and every read of a least-recently-used cache (a read records
  its access time, a write), fails that way, so one request would hold a CPU for minutes.
  Here every operation waits for a lock at most :data:`LOCK_WAIT_S` in all (SQLite's own busy
  timeout per attempt, then retries with growing pauses), then gives up;
* a read-only folder (a read-only mount, a folder without write permission) is noticed before
  each write (two ``access`` system calls): writes fail at once with "the cache is not
  writable", reads skip recording their access time (a plain ``SELECT``), so stored entries
  are still served;
* a damaged index (``cache.db`` that is not a database, or fails ``PRAGMA quick_check``) stops
  diskcache with an exception. :func:`open_diskcache` repairs it once, as the owner asks
  (:class:`OnDamage`): move the index aside and start a fresh one (the value files are kept),
  or rebuild a disposable store from nothing; either way it is logged.

Example:
    >>> import tempfile
    >>> db = DiskDB(tempfile.mkdtemp(), label="the demo store")
    >>> db.set("k", 1)
    >>> db.get("k"), db.touch("k"), db.touch("missing")
    (1, True, False)
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from face3d_core.cache.store import MISSING
from face3d_core.errors import CacheError

logger = logging.getLogger(__name__)

#: Longest time one operation waits for the database lock, in seconds, all attempts together.
LOCK_WAIT_S = 5.0
#: SQLite's busy timeout of each attempt (it sleeps while another connection writes), seconds.
BUSY_TIMEOUT_S = 1.0
#: The index file of a diskcache folder, and the SQLite files that belong to it.
INDEX_NAME = "cache.db"
_INDEX_SUFFIXES = ("", "-wal", "-shm")
#: Lock file taken while a folder's database is opened (and repaired) by one process at a time.
_OPEN_LOCK_NAME = ".face3d-open.lock"

T = TypeVar("T")


class OnDamage(enum.Enum):
    """What :func:`open_diskcache` does with a damaged index."""

    #: Rename the index (``cache.db.damaged-<time>``) and start a fresh one; value files stay.
    MOVE_ASIDE = "move-aside"
    #: Delete the index (the store's records are disposable) and start a fresh one.
    REBUILD = "rebuild"


class CacheNotWritableError(CacheError):
    """The cache folder cannot be written (read-only mount or no permission); reads still work."""

    default_web_message = (
        "The server's storage is read-only, so nothing new can be saved; photos and results already "
        "stored can still be viewed. Please tell the server's administrator."
    )


class CacheBusyError(CacheError):
    """The database stayed locked by another process for longer than :data:`LOCK_WAIT_S`."""

    default_web_message = "The server's result cache is busy. Please try again in a moment."


def _is_lock_error(exc: BaseException) -> bool:
    """True for the errors that mean "someone else holds the lock": worth another attempt."""
    if isinstance(exc, diskcache.Timeout):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _is_not_writable(exc: BaseException) -> bool:
    """True for errors that say the folder or the database cannot be written."""
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.Error) and ("readonly" in text or "read-only" in text)


def _is_damaged(exc: BaseException) -> bool:
    """True for SQLite errors that mean the index file itself is broken (not a lock, not a mount)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "malformed" in str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError)


@contextlib.contextmanager
def _open_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder while opening it (several server workers start at once)."""
    try:
        handle = open(directory / _OPEN_LOCK_NAME, "a+b")  # noqa: SIM115 - closed below
    except OSError:  # read-only folder: nothing can be repaired there anyway
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # releases the lock


def _quick_check(cache: diskcache.Cache) -> str:
    """``PRAGMA quick_check`` of an open cache: ``"ok"`` or what SQLite found."""
    rows = cache._sql("PRAGMA quick_check").fetchall()  # noqa: SLF001 - no public accessor
    return "; ".join(str(row[0]) for row in rows[:3])


def _set_index_aside(directory: Path, policy: OnDamage, label: str, problem: str) -> None:
    """Move aside or delete a damaged index and log what was done."""
    index = directory / INDEX_NAME
    if policy is OnDamage.MOVE_ASIDE:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = directory / f"{INDEX_NAME}.damaged-{stamp}"
        for suffix in _INDEX_SUFFIXES:
            source = Path(f"{index}{suffix}")
            if source.exists():
                source.rename(Path(f"{target}{suffix}"))
        logger.warning(
            "The index of %s (%s) was damaged (%s). It was moved to %s and a fresh, empty index started; "
            "the stored files in %s are kept but no longer listed (delete them to free space once you do not "
            "need them). Uploaded photos must be uploaded again.",
            label,
            index,
            problem,
            target.name,
            directory,
        )
    else:
        for suffix in _INDEX_SUFFIXES:
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        logger.warning(
            "The index of %s (%s) was damaged (%s). These records are disposable: the store was rebuilt empty.",
            label,
            index,
            problem,
        )


def open_diskcache(
    directory: str | os.PathLike, *, label: str, on_damage: OnDamage, **settings: Any
) -> diskcache.Cache:
    """Open (creating) a diskcache folder; repair a damaged index once as ``on_damage`` says.

    Args:
        directory: The folder.
        label: What the store is, for messages (``"the result cache"``).
        on_damage: What to do with a damaged index.
        **settings: diskcache settings (``size_limit``, ``eviction_policy`` ...).

    Returns:
        The open cache (SQLite busy timeout :data:`BUSY_TIMEOUT_S`).

    Raises:
        CacheError: The folder cannot be created or opened (not writable, not a folder ...).
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(
            f"The folder of {label} ({folder}) cannot be created ({exc}). Set FACE3D_CACHE_DIR to a writable folder."
        ) from exc
    with _open_lock(folder):
        for attempt in (1, 2):
            cache = None
            try:
                cache = diskcache.Cache(str(folder), timeout=BUSY_TIMEOUT_S, **settings)
                problem = _quick_check(cache)
                if problem == "ok":
                    return cache
            except (OSError, sqlite3.Error) as exc:
                if not _is_damaged(exc) or attempt == 2:
                    raise CacheError(
                        f"{label[:1].upper()}{label[1:]} in {folder} cannot be used ({exc}). "
                        "Make sure the folder is writable, or set FACE3D_CACHE_DIR to a writable folder."
                    ) from exc
                problem = str(exc)
            if cache is not None:
                cache.close()
            if attempt == 2:
                raise CacheError(
                    f"The index of {label} in {folder} is damaged and could not be repaired ({problem}). "
                    "Set FACE3D_CACHE_DIR to another folder."
                )
            try:
                _set_index_aside(folder, on_damage, label, problem)
            except OSError as exc:
                raise CacheError(
                    f"The index of {label} in {folder} is damaged ({problem}) and could not be moved aside "
                    f"({exc}). Make sure the folder is writable, or set FACE3D_CACHE_DIR to another folder."
                ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


class DiskDB:
    """A diskcache database used with bounded waits (see the module docstring).

    Args:
        directory: The folder (created if needed).
        label: What the store is, for messages and logs (``"the result cache"``).
        on_damage: What to do with a damaged index when opening.
        lock_wait_s: Longest wait for the database lock per operation, seconds.
        **settings: diskcache settings.

    Raises:
        CacheError: The folder cannot be created or opened.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        label: str,
        on_damage: OnDamage = OnDamage.REBUILD,
        lock_wait_s: float = LOCK_WAIT_S,
        **settings: Any,
    ):
        self.directory = Path(directory)
        self.label = label
        self.lock_wait_s = float(lock_wait_s)
        self.cache = open_diskcache(self.directory, label=label, on_damage=on_damage, **settings)
        self._index = self.directory / INDEX_NAME

    # -- state ------------------------------------------------------------------------------

    def writable(self) -> bool:
        """True when the folder and its index can be written now (a read-only mount says no at once)."""
        return os.access(self.directory, os.W_OK) and os.access(self._index, os.W_OK)

    def not_writable_error(self, reason: object = None) -> CacheNotWritableError:
        """The error a write gets on a read-only folder (what happened, what still works, what to do)."""
        detail = f" ({reason})" if reason else " (a read-only folder or file system)"
        return CacheNotWritableError(
            f"Could not write to {self.label} in {self.directory}: the cache is not writable{detail}. "
            "Photos and results already stored can still be viewed. Make the folder writable, "
            "or set FACE3D_CACHE_DIR to a writable folder."
        )

    def write_error(self, exc: BaseException) -> CacheError:
        """A :class:`CacheError` for a failed write, saying what to do."""
        if _is_not_writable(exc):
            return self.not_writable_error(exc)
        if isinstance(exc, CacheError):
            return exc
        return CacheError(
            f"Could not write to {self.label} in {self.directory} ({exc}). "
            "Free some disk space, make sure the folder is writable, or set FACE3D_CACHE_DIR to another folder."
        )

    # -- bounded operations -----------------------------------------------------------------

    def run(self, operation: Callable[[], T], *, write: bool) -> T:
        """Run one diskcache operation (called without ``retry``), waiting for its lock a bounded time.

        Args:
            operation: The operation.
            write: It writes: refused at once on a read-only folder, and a lock that never
                comes while the folder turned read-only stops the retries.

        Raises:
            CacheNotWritableError: A write on a read-only folder.
            CacheBusyError: The lock did not come within :attr:`lock_wait_s`.
            OSError, sqlite3.Error: Anything else (the caller decides).
        """
        if write and not self.writable():
            raise self.not_writable_error()
        deadline = time.monotonic() + self.lock_wait_s
        pause = 0.005
        while True:
            try:
                return operation()
            except (diskcache.Timeout, sqlite3.OperationalError) as exc:
                if not _is_lock_error(exc):
                    raise
                if not self.writable():  # the transaction cannot start because the folder turned read-only
                    raise self.not_writable_error() from exc
                if time.monotonic() + pause > deadline:
                    raise CacheBusyError(
                        f"{self.label[:1].upper()}{self.label[1:]} in {self.directory} stayed locked for more than "
                        f"{self.lock_wait_s:g} s. Please try again in a moment."
                    ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.25)

    def _read_plain(self, key: str) -> Any:
        """Read an entry with one ``SELECT`` (no write at all); :data:`MISSING` when absent."""
        db_key, raw = self.cache._disk.put(key)  # noqa: SLF001 - diskcache's key encoding
        row = self.cache._sql(  # noqa: SLF001 - diskcache has no read-only accessor
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = ?"
            " AND (expire_time IS NULL OR expire_time > ?)",
            (db_key, raw, time.time()),
        ).fetchone()
        if row is None:
            return MISSING
        try:
            return self.cache._disk.fetch(row[0], row[1], row[2], False)  # noqa: SLF001
        except OSError:  # the file vanished (evicted by another process meanwhile)
            return MISSING

    def get(self, key: str) -> Any:
        """Return the raw stored value, or :data:`MISSING` when absent or unreadable.

        A read records its access time (least-recently-used eviction) where it can; on a
        read-only or full disk, or while the lock is busy, the entry is read without.
        """
        return self._recorded_or_plain(
            key, lambda: self.cache.get(key, default=MISSING, retry=False), lambda: self._read_plain(key)
        )

    def _recorded_or_plain(self, key: str, recorded: Callable[[], T], plain: Callable[[], T]) -> T | Any:
        """Run a read that records its access; where that write cannot happen, the plain read instead."""
        if self.writable():
            try:
                return self.run(recorded, write=False)
            except (OSError, sqlite3.Error, CacheError) as exc:
                # a full disk, a folder that just turned read-only, a busy lock: still serve the entry
                logger.info("Reading %s from %s without recording the access (%s)", key, self.label, exc)
        try:
            return plain()
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Reading %s from %s failed: %s", key, self.label, exc)
            return MISSING

    def touch(self, key: str) -> bool:
        """Return True when ``key`` is stored (and not expired), recording the access as a read would.

        A check whether an entry exists counts as using it, so a photo that a page keeps
        asking about is not the least recently used one.
        """

        def check_and_touch() -> bool:
            db_key, raw = self.cache._disk.put(key)  # noqa: SLF001
            with self.cache.transact(retry=False):
                row = self.cache._sql(  # noqa: SLF001
                    "SELECT rowid FROM Cache WHERE key = ? AND raw = ? AND (expire_time IS NULL OR expire_time > ?)",
                    (db_key, raw, time.time()),
                ).fetchone()
                if row is not None and self.cache.eviction_policy == "least-recently-used":
                    self.cache._sql("UPDATE Cache SET access_time = ? WHERE rowid = ?", (time.time(), row[0]))  # noqa: SLF001
            return row is not None

        found = self._recorded_or_plain(key, check_and_touch, lambda: self._read_plain(key) is not MISSING)
        return found is True

    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` under ``key``.

        Raises:
            CacheNotWritableError: The folder is read-only.
            CacheError: Any other failure (disk full, lock never came ...), saying what to do.
        """
        try:
            self.run(lambda: self.cache.set(key, value, expire=expire, retry=False), write=True)
        except (OSError, sqlite3.Error, CacheError) as exc:
            raise self.write_error(exc) from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there (False also when the folder cannot be written)."""
        try:
            return bool(self.run(lambda: self.cache.delete(key, retry=False), write=True))
        except (OSError, sqlite3.Error, CacheError) as exc:
            logger.warning("Deleting %s from %s failed: %s", key, self.label, exc)
            return False

    def sql(self, statement: str, parameters: tuple = ()) -> list[tuple]:
        """Run one read-only SQL statement on the index (diagnostics, eviction scans)."""
        return self.run(lambda: self.cache._sql(statement, parameters).fetchall(), write=False)  # noqa: SLF001

    def close(self) -> None:
        """Close this thread's database connection."""
        self.cache.close()
