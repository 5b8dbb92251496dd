"""Uploads: validate and store a photo once under its SHA-256, with its faces and a thumbnail.

The original bytes and a small :class:`UploadMeta` (faces found, JPEG thumbnail) go to the
result store; the browser keeps only the hash. The photo is decoded on upload (to validate it
and detect faces) and again only when a depth job needs its pixels (:meth:`Uploads.photo`).

What is stored here is about the content only: file names belong to the sessions that
uploaded it (:mod:`~dashboard.services.access`), so the stored :class:`UploadMeta` has an
empty name and pages get a copy with their own.

Only a file that is not a usable image is refused. Where face detection cannot run (no
detector file, offline, an OpenCV error) the upload still succeeds with no face and the reason
in :attr:`UploadMeta.detector_unavailable`; depth and 3D then use the whole photo
(:func:`face3d_core.faces.find_faces` logs the details once).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from dashboard.services.errors import PhotoMissingError
from face3d_core.cache import ResultStore, is_sha256_hex, make_key
from face3d_core.errors import InvalidImageError
from face3d_core.faces import Face, find_faces
from face3d_core.images import MAX_FILE_BYTES, decode_image, sha256_hex

logger = logging.getLogger(__name__)

#: Longer side of a gallery thumbnail in pixels.
THUMB_MAX_SIDE = 360
#: Most photos kept in one browser's gallery.
MAX_UPLOADS = 24


#: Longest file name shown; longer ones are cut in the middle (:func:`display_name`).
MAX_NAME_CHARS = 255


def display_name(name: object, limit: int = MAX_NAME_CHARS) -> str:
    """A user's file name for display: at most ``limit`` characters, cut in the middle (the end stays).

    Example:
        >>> display_name("a" * 300 + ".jpg", 11)
        'aaaaa…a.jpg'
    """
    text = str(name)
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 2
    return text[: limit - 1 - tail] + "…" + text[-tail:]


@dataclass(frozen=True)
class UploadMeta:
    """What the gallery shows about an upload (small; no pixels except the thumbnail).

    Attributes:
        sha256: Content hash of the file (its cache key).
        name: File name as the session's browser sent it, cut to :data:`MAX_NAME_CHARS` (display
            only; never used as a path); empty in the stored copy (names are per session, see
            :mod:`~dashboard.services.access`).
        size_bytes: File size.
        width: Image width in pixels (after EXIF rotation).
        height: Image height in pixels.
        faces: Detected faces in the photo's pixels, largest first.
        thumb_jpeg: JPEG thumbnail bytes (longer side :data:`THUMB_MAX_SIDE`).
        detector_unavailable: ``None`` when face detection ran; otherwise why it could not, in
            a few words for people (no paths): the whole photo is used.
    """

    sha256: str
    name: str
    size_bytes: int
    width: int
    height: int
    faces: tuple[Face, ...] = ()
    thumb_jpeg: bytes = field(default=b"", repr=False)
    detector_unavailable: str | None = None

    @property
    def face_count(self) -> int:
        """Number of faces found."""
        return len(self.faces)

    def face_index(self, requested: int | None) -> int | None:
        """Return a valid face index for this photo (``None`` when no face was found)."""
        if not self.faces:
            return None
        if requested is None or not 0 <= int(requested) < len(self.faces):
            return 0
        return int(requested)

    def face_label(self, face: int | None) -> str:
        """Display name of one face of this photo (the file name, plus the face for group photos)."""
        return self.name if self.face_count <= 1 or face is None else f"{self.name} (face {face + 1})"


def encode_jpeg(image_rgb: np.ndarray, quality: int = 85) -> bytes:
    """Return JPEG bytes of an ``(H, W, 3) uint8`` RGB image."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover
        raise InvalidImageError("The photo could not be re-encoded for display.")
    return buf.tobytes()


def make_thumbnail(image_rgb: np.ndarray, max_side: int = THUMB_MAX_SIDE) -> bytes:
    """Return JPEG bytes of the photo with its longer side at most ``max_side``."""
    height, width = image_rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image_rgb = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(image_rgb)


class Uploads:
    """Stores and serves uploaded photos by content hash.

    Args:
        store: The result store (shared by all server threads and workers).
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`).
    """

    def __init__(self, store: ResultStore, detector_path: str | os.PathLike | None = None):
        self.store = store
        self.detector_path = detector_path

    @staticmethod
    def bytes_key(sha: str) -> str:
        """Key of a photo's original bytes (a pinned version: see :data:`face3d_core.cache.keys.UPLOAD_VERSION`)."""
        return make_key("upload", sha)

    @staticmethod
    def meta_key(sha: str) -> str:
        """Key of a photo's :class:`UploadMeta`."""
        return make_key("upload-meta", sha)

    def ingest(self, data: bytes, name: str, *, sha: str | None = None, revalidate: bool = False) -> UploadMeta:
        """Validate, decode and store an uploaded file; detect its faces.

        Args:
            data: The file's bytes.
            name: The file's name (display only; returned in the metadata, never stored here).
            sha: The SHA-256 of ``data`` where the caller hashed it already (an upload is hashed once).
            revalidate: Decode and detect again even when the content is stored already (for a
                session that does not hold it yet: the same work as a first upload).

        Returns:
            The metadata with ``name`` (a second upload of the same bytes is served from the
            store, without decoding again unless ``revalidate``).

        A photo whose faces could not be looked for (no detector) is stored without faces and
        the reason; uploading it again once the detector works looks for its faces.

        Raises:
            InvalidImageError: Not a usable JPEG/PNG (the message says why).
            CacheError: The store cannot be written.
        """
        if len(data) > MAX_FILE_BYTES:
            raise InvalidImageError(
                f"The file is too large ({len(data) / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
            )
        name = display_name(name)
        sha = sha256_hex(data) if sha is None else sha
        existing = self.meta(sha)
        if existing is not None and not revalidate and existing.detector_unavailable is None:
            return dataclasses.replace(existing, name=str(name))
        image_rgb = decode_image(data, name=name)
        detection = find_faces(image_rgb, model_path=self.detector_path)
        if existing is not None:  # stored already (by another session, or before the detector worked)
            if existing.detector_unavailable is not None and detection.ran:  # it works now: keep the faces
                existing = dataclasses.replace(existing, faces=detection.faces, detector_unavailable=None)
                self.store.set(self.meta_key(sha), existing)
            return dataclasses.replace(existing, name=str(name))
        meta = UploadMeta(
            sha256=sha,
            name="",
            size_bytes=len(data),
            width=int(image_rgb.shape[1]),
            height=int(image_rgb.shape[0]),
            faces=detection.faces,
            thumb_jpeg=make_thumbnail(image_rgb),
            detector_unavailable=detection.unavailable,
        )
        self.store.set(self.bytes_key(sha), bytes(data))
        self.store.set(self.meta_key(sha), meta)
        logger.info("Stored upload %s (%d bytes, %d faces)", sha[:12], len(data), meta.face_count)
        return dataclasses.replace(meta, name=str(name))

    def meta(self, sha: str) -> UploadMeta | None:
        """Return an upload's stored metadata (no name), or None if unknown, evicted or ``sha`` is junk.

        Pages never call this directly: they ask :class:`~dashboard.services.access.Access`,
        which checks that the session holds the photo and adds its name.
        """
        if not is_sha256_hex(sha):
            return None
        meta = self.store.get(self.meta_key(sha))
        if not isinstance(meta, UploadMeta) or self.bytes_key(sha) not in self.store:
            return None
        return meta

    def require_meta(self, sha: str) -> UploadMeta:
        """Like :meth:`meta` but raise a user-facing error when missing.

        Raises:
            PhotoMissingError: Unknown or evicted photo.
        """
        meta = self.meta(sha)
        if meta is None:
            raise PhotoMissingError()
        return meta

    def photo(self, sha: str) -> np.ndarray:
        """Decode an upload: ``(H, W, 3) uint8`` RGB.

        Raises:
            PhotoMissingError: The bytes are gone or damaged.
        """
        return decode_image(self.original(sha))

    def original(self, sha: str) -> bytes:
        """The uploaded file's bytes as they came (for its EXIF data).

        Raises:
            PhotoMissingError: The bytes are gone or damaged.
        """
        data = self.store.get(self.bytes_key(sha)) if is_sha256_hex(sha) else None
        if not isinstance(data, bytes):
            raise PhotoMissingError()
        return data
