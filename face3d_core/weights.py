"""Finding, downloading and verifying weight files (depth networks, the face detector).

Lookup order for a file (first hit wins):

1. an explicit path given by the caller (``--weights PATH`` or ``DepthEstimator(weights=...)``);
2. ``$FACE3D_WEIGHTS_DIR/<file_name>`` (a folder the user or admin fills by hand);
3. ``<cache dir>/weights/<file_name>`` where the cache dir is ``$FACE3D_CACHE_DIR`` or
   ``~/.cache/face3d`` (``$XDG_CACHE_HOME/face3d`` where set; see :mod:`face3d_core.config`);
4. a download from the official URL into the cache dir: streamed to a temporary file in the
   same folder, SHA-256 checked while streaming, then atomically renamed into place;
5. otherwise :class:`~face3d_core.errors.WeightsUnavailableError`, whose message names the
   file, the URL and the folders to put it in.

Downloads can be switched off with ``FACE3D_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from face3d_core.config import get_settings
from face3d_core.errors import WeightsIntegrityError, WeightsUnavailableError

logger = logging.getLogger(__name__)

#: ``progress(bytes_done, bytes_total_or_None)`` called while downloading.
ProgressFn = Callable[[int, "int | None"], None]

_CHUNK = 1 << 20
_USER_AGENT = "face3d/0.1 (+weights download)"


@dataclass(frozen=True)
class WeightsFile:
    """A downloadable file: where it comes from and how to recognise it.

    Attributes:
        file_name: Name of the file in a weights or cache directory.
        url: Official download URL.
        sha256: Full lowercase hex SHA-256, or ``None`` where no hash is published (then the
            download is accepted after a size > 0 check and its hash is logged).
        size_mb: Approximate size, for messages.
    """

    file_name: str
    url: str
    sha256: str | None = None
    size_mb: float | None = None


def cache_dir() -> Path:
    """Return the face3d cache folder (``$FACE3D_CACHE_DIR``; defined in :mod:`face3d_core.config`)."""
    return get_settings().cache_dir


def weights_cache_dir() -> Path:
    """Return the folder downloads go to: ``<cache dir>/weights``."""
    return cache_dir() / "weights"


def weights_dir() -> Path | None:
    """Return ``$FACE3D_WEIGHTS_DIR`` as a path, or ``None`` when unset."""
    return get_settings().weights_dir


def offline() -> bool:
    """Return True when downloads are disabled (``FACE3D_OFFLINE=1``)."""
    return get_settings().offline


def sha256_file(path: Path) -> str:
    """Return the lowercase hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: SHA-256 of files already hashed: (path, size, mtime_ns) -> hex digest (files are hashed once).
_HASHED: dict[tuple[str, int, int], str] = {}
_HASHED_LOCK = threading.Lock()


def verify_file(wf: WeightsFile, path: Path, *, where: str = "") -> Path:
    """Check that ``path`` is ``wf`` by its full SHA-256 (hashed once per file version, then remembered).

    Args:
        wf: The expected file (a ``wf.sha256`` of ``None`` skips the check).
        path: The file on disk.
        where: Where it was found, for the message (e.g. ``"shipped with face3d"``).

    Returns:
        ``path``.

    Raises:
        WeightsIntegrityError: The file's SHA-256 is not ``wf.sha256`` (a damaged file or another
            version); the message says where it is and what to put there instead.
    """
    if wf.sha256 is None:
        return path
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _HASHED_LOCK:
        actual = _HASHED.get(key)
    if actual is None:
        actual = sha256_file(path)
        with _HASHED_LOCK:
            _HASHED[key] = actual
    if actual != wf.sha256.lower():
        found = f" ({where})" if where else ""
        raise WeightsIntegrityError(
            f"The file {path}{found} is damaged or another version: its SHA-256 is {actual}, expected "
            f"{wf.sha256}. Replace it with {wf.file_name} from {wf.url}.",
            web_message=f"The file {wf.file_name} on the server is damaged or another version.",
            file_name=wf.file_name,
            url=wf.url,
        )
    return path


def find_weights(wf: WeightsFile, explicit_path: str | os.PathLike | None = None) -> Path | None:
    """Return the first existing file in the lookup order without downloading, else ``None``.

    Raises:
        WeightsUnavailableError: ``explicit_path`` was given but does not exist.
    """
    if explicit_path is not None:
        path = Path(explicit_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"Weights file {path} does not exist (given explicitly).",
                web_message=f"The file {path.name} set up for this server does not exist. "
                "Ask the server's administrator to check its settings.",
                file_name=wf.file_name,
                url=wf.url,
            )
        return path
    for folder in (weights_dir(), weights_cache_dir()):
        if folder is not None and (folder / wf.file_name).is_file():
            return folder / wf.file_name
    return None


def _missing_message(wf: WeightsFile, reason: str) -> str:
    folders = [str(weights_cache_dir())]
    wdir = weights_dir()
    if wdir is not None:
        folders.insert(0, str(wdir))
    size = f" (about {wf.size_mb:.3g} MB)" if wf.size_mb else ""
    return (
        f"The file {wf.file_name}{size} is not on this machine and could not be downloaded: {reason}. "
        f"Download it from {wf.url} and put it in {' or '.join(folders)} "
        "(or set FACE3D_WEIGHTS_DIR to the folder that holds it, or pass its path explicitly)."
    )


def _missing(wf: WeightsFile, reason: str, web_reason: str | None = None) -> WeightsUnavailableError:
    """The error for a file that is neither here nor downloadable; its web message names no server folder."""
    size = f" (about {wf.size_mb:.3g} MB)" if wf.size_mb else ""
    web = (
        f"The file {wf.file_name}{size} is not on the server and could not be downloaded: {web_reason or reason}. "
        f"Ask the server's administrator to download it from {wf.url} and put it in the server's weights "
        "folder (FACE3D_WEIGHTS_DIR)."
    )
    # file_name and url travel with it, so a page can offer the link and the download command
    return WeightsUnavailableError(_missing_message(wf, reason), web_message=web, file_name=wf.file_name, url=wf.url)


def resolve_weights(
    wf: WeightsFile,
    explicit_path: str | os.PathLike | None = None,
    *,
    allow_download: bool = True,
    progress: ProgressFn | None = None,
) -> Path:
    """Return a local path to ``wf``, downloading it into the cache if needed.

    Args:
        wf: The file to find.
        explicit_path: A path given by the user; used as is (no hash check: it is theirs).
        allow_download: Set False to only look on disk.
        progress: Called as ``progress(bytes_done, bytes_total)`` while downloading.

    Returns:
        The path of an existing file.

    Raises:
        WeightsUnavailableError: Not found and not downloadable (offline, HTTP error ...).
        WeightsIntegrityError: The download did not match the published SHA-256 (nothing kept).
    """
    found = find_weights(wf, explicit_path)
    if found is not None:
        return found
    if not allow_download or offline():
        raise _missing(wf, "downloads are switched off")
    dest = weights_cache_dir() / wf.file_name
    download_file(wf.url, dest, sha256=wf.sha256, progress=progress, describe=wf)
    return dest


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 60.0,
    opener: Callable[..., object] | None = None,
    describe: WeightsFile | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the SHA-256 on the fly.

    The data goes to a temporary file beside ``dest`` which is renamed into place only when
    the download is complete and the hash matches; on any failure the temporary file is
    removed, so a half-written or corrupt file never takes the final name.

    Args:
        url: Source URL (http, https or file).
        dest: Final path; its folder is created.
        sha256: Expected lowercase hex SHA-256, or None to skip the check.
        progress: ``progress(bytes_done, bytes_total_or_None)``.
        timeout: Socket timeout in seconds.
        opener: ``urlopen``-like callable (tests inject one); defaults to ``urllib.request.urlopen``.
        describe: The file being fetched, for error messages.

    Returns:
        ``dest``.

    Raises:
        WeightsUnavailableError: Network or HTTP failure, or a truncated download.
        WeightsIntegrityError: Hash mismatch.
    """
    wf = describe or WeightsFile(file_name=dest.name, url=url, sha256=sha256)
    open_url = opener or urllib.request.urlopen
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _missing(wf, f"cannot create {dest.parent} ({exc})", "its folder cannot be created") from exc
    logger.info("Downloading %s to %s", url, dest)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            try:
                response = open_url(request, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise _missing(wf, f"download failed ({exc})", "the download failed") from exc
            with response:  # type: ignore[attr-defined]
                total_header = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                total = int(total_header) if total_header and total_header.isdigit() else None
                done = 0
                if progress:
                    progress(0, total)
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, urllib.error.URLError) as exc:
                        raise _missing(
                            wf, f"the download broke off after {done} bytes ({exc})", "the download broke off"
                        ) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise _missing(wf, f"the download broke off after {done} of {total} bytes")
            if done == 0:
                raise _missing(wf, "the server sent an empty file")
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise WeightsIntegrityError(
                f"The downloaded {wf.file_name} is corrupt: its SHA-256 is {actual}, expected {sha256}. "
                f"It was deleted. Try again, or download it from {wf.url} by hand and put it in "
                f"{weights_cache_dir()}.",
                web_message=f"The downloaded {wf.file_name} was damaged and has been deleted. Please try again.",
                file_name=wf.file_name,
                url=wf.url,
            )
        if sha256 is None:
            logger.info("%s downloaded, SHA-256 %s (no published hash to compare)", wf.file_name, actual)
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return dest
