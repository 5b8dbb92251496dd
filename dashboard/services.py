"""The dashboard's work, without Dash: uploads, cached depth, 3D models and comparisons.

Callbacks stay thin and call a :class:`Face3DService`; it composes :mod:`face3d_core` with
the content-addressed :class:`~face3d_core.cache.ResultCache`:

* an upload is stored once under its SHA-256 (original bytes + small metadata with the faces
  found and a thumbnail); the browser keeps only the hash;
* the expensive step (the depth network) is cached per (image, model, face, margin, version);
* the cheap step (reconstruction for slider values) is cached per parameter set, so moving a
  slider back is a cache hit and never reruns the network;
* comparisons are cached per (ordered images, faces, model).

Nothing here imports Dash, so every function is testable with plain values.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from face3d_core import compare as compare_mod
from face3d_core.cache import ResultCache, combine_hashes, is_sha256_hex, make_key
from face3d_core.errors import ExportError, Face3DError, InvalidImageError
from face3d_core.images import MAX_FILE_BYTES, decode_image, sha256_hex
from face3d_core.models.registry import get_spec, list_models
from face3d_core.weights import find_weights, offline, weights_cache_dir, weights_dir

logger = logging.getLogger(__name__)

THUMB_MAX_SIDE = 360
#: Most photos kept in one browser's gallery.
MAX_UPLOADS = 24
#: Progress callback of long steps: ``progress(fraction, message)``.
ProgressFn = Callable[[float, str], None]

PHOTO_MISSING_MESSAGE = (
    "This photo is no longer stored on the server (the cache was cleared or it was evicted to "
    "save space). Please upload it again."
)


class PhotoMissingError(Face3DError):
    """An upload's key is known to the browser but its data is no longer in the cache."""

    title = "Photo no longer available"


@dataclass(frozen=True)
class UploadMeta:
    """What the gallery shows about an upload (small; no pixels except the thumbnail).

    Attributes:
        sha256: Content hash of the file (its cache key).
        name: File name as the browser sent it (display only; never used as a path).
        size_bytes: File size.
        width: Image width in pixels (after EXIF rotation).
        height: Image height in pixels.
        faces: Detected faces as :meth:`face3d_core.faces.Face.to_dict` dicts, largest first.
        thumb_jpeg: JPEG thumbnail bytes (longer side :data:`THUMB_MAX_SIDE`).
    """

    sha256: str
    name: str
    size_bytes: int
    width: int
    height: int
    faces: tuple[dict, ...] = ()
    thumb_jpeg: bytes = field(default=b"", repr=False)

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


@dataclass(frozen=True)
class ModelStatus:
    """Whether a depth model can run here, for the model picker.

    Attributes:
        name: Registry name.
        title: Human-readable name.
        ready: The weights file is on this machine.
        downloadable: Missing but downloads are allowed (it is fetched on first use).
        size_mb: Download size.
        file_name: Weights file name.
        url: Official download URL.
        folders: Where a manually downloaded file can be put.
        description: One line about the model.
    """

    name: str
    title: str
    ready: bool
    downloadable: bool
    size_mb: float
    file_name: str
    url: str
    folders: tuple[str, ...]
    description: str


def safe_stem(name: str, fallback: str = "face") -> str:
    """Return a file-name stem made only of ``[A-Za-z0-9_-]`` from a user's file name."""
    stem = os.path.splitext(os.path.basename(str(name)))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return stem[:60] or fallback


def _encode_jpeg(image_rgb: np.ndarray, quality: int = 85) -> bytes:
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
    return _encode_jpeg(image_rgb)


def model_status(name: str) -> ModelStatus:
    """Return whether ``name``'s weights are here, and how to get them if not."""
    spec = get_spec(name)
    wf = spec.weights_file
    found = find_weights(wf)
    folders = tuple(str(p) for p in (weights_dir(), weights_cache_dir()) if p is not None)
    return ModelStatus(
        name=spec.name,
        title=spec.title,
        ready=found is not None,
        downloadable=found is None and not offline(),
        size_mb=float(spec.size_mb),
        file_name=wf.file_name,
        url=wf.url,
        folders=folders,
        description=spec.description,
    )


def all_model_status() -> list[ModelStatus]:
    """Status of every registered model, the default first."""
    return [model_status(name) for name in list_models()]


def approx_nbytes(value: Any, _depth: int = 0) -> int:
    """Bytes held by the numpy arrays of a value (dataclasses, tuples, dicts; shallowly nested)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if _depth > 3:
        return 0
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(approx_nbytes(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return sum(approx_nbytes(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return sum(approx_nbytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0


class MemoryLRU:
    """A small thread-safe least-recently-used store of objects in this process.

    Args:
        max_items: Entries kept at most.
        max_bytes: Bytes of numpy arrays kept at most (see :func:`approx_nbytes`); the least
            recently used entries go first. One entry larger than this is still kept alone.
    """

    def __init__(self, max_items: int, max_bytes: int = 256 * 1024 * 1024):
        self.max_items = max(1, int(max_items))
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: str) -> Any | None:
        """Return the value of ``key`` (marking it recently used) or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: str, value: Any) -> None:
        """Store ``value``, evicting the least recently used entries beyond the limits."""
        size = approx_nbytes(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return the stored value or compute it once (concurrent callers wait for it)."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._items.get(key)
            value = entry[0] if entry is not None else None
            if value is None:
                value = compute()
                self.put(key, value)
        with self._lock:
            self._key_locks.pop(key, None)
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _process_estimator(model: str) -> Any:
    """The process-wide estimator of a model (torch is imported on first use only)."""
    from face3d_core.models.estimator import get_estimator

    return get_estimator(model)


class Face3DService:
    """Uploads, cached depth maps, 3D models and comparisons for the dashboard.

    Args:
        cache: The result cache (shared by all server threads and workers).
        margin: Crop margin around the face (fraction of the face box on each side).
        estimator_factory: ``model name -> estimator`` (``.loaded``, ``.load(progress)``,
            ``.predict(image_rgb)``); default :func:`face3d_core.models.estimator.get_estimator`,
            which keeps one loaded network per process.
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`).
    """

    def __init__(
        self,
        cache: ResultCache,
        *,
        margin: float | None = None,
        estimator_factory: Callable[[str], Any] | None = None,
        detector_path: str | os.PathLike | None = None,
    ):
        self.cache = cache
        if margin is None:
            from face3d_core.faces import DEFAULT_MARGIN

            margin = DEFAULT_MARGIN
        self.margin = float(margin)
        self.estimator_factory = estimator_factory or _process_estimator
        self.detector_path = detector_path
        #: Hot depth maps (a memory tier in front of the disk cache) and reconstructions.
        self.depths = MemoryLRU(max_items=16, max_bytes=128 * 1024 * 1024)
        self.models = MemoryLRU(max_items=64, max_bytes=192 * 1024 * 1024)

    # -- uploads --------------------------------------------------------------------------

    @staticmethod
    def _upload_key(sha: str) -> str:
        return make_key("upload", sha)

    @staticmethod
    def _meta_key(sha: str) -> str:
        return make_key("upload-meta", sha)

    def ingest_upload(self, data: bytes, name: str) -> UploadMeta:
        """Validate, decode and store an uploaded file; detect its faces.

        Args:
            data: The file's bytes.
            name: The file's name (display only).

        Returns:
            The stored metadata (a second upload of the same bytes is served from the cache).

        Raises:
            InvalidImageError: Not a usable JPEG/PNG (the message says why).
            WeightsUnavailableError: The face detector file is missing.
            CacheError: The cache cannot be written.
        """
        if len(data) > MAX_FILE_BYTES:
            raise InvalidImageError(
                f"The file is too large ({len(data) / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
            )
        sha = sha256_hex(data)
        existing = self.upload_meta(sha)
        if existing is not None and existing.name == name:
            return existing
        image_rgb = decode_image(data, name=name)
        if existing is not None:
            meta = UploadMeta(
                sha256=sha,
                name=str(name),
                size_bytes=existing.size_bytes,
                width=existing.width,
                height=existing.height,
                faces=existing.faces,
                thumb_jpeg=existing.thumb_jpeg,
            )
        else:
            from face3d_core.faces import detect_faces

            faces = detect_faces(image_rgb, model_path=self.detector_path)
            meta = UploadMeta(
                sha256=sha,
                name=str(name),
                size_bytes=len(data),
                width=int(image_rgb.shape[1]),
                height=int(image_rgb.shape[0]),
                faces=tuple(f.to_dict() for f in faces),
                thumb_jpeg=make_thumbnail(image_rgb),
            )
            self.cache.set(self._upload_key(sha), bytes(data))
        self.cache.set(self._meta_key(sha), meta)
        logger.info("Stored upload %s (%d bytes, %d faces)", sha[:12], len(data), meta.face_count)
        return meta

    def upload_meta(self, sha: str) -> UploadMeta | None:
        """Return an upload's metadata, or None if unknown or evicted."""
        if not is_sha256_hex(sha):
            return None
        meta = self.cache.get(self._meta_key(sha))
        if not isinstance(meta, UploadMeta) or self._upload_key(sha) not in self.cache:
            return None
        return meta

    def require_meta(self, sha: str) -> UploadMeta:
        """Like :meth:`upload_meta` but raise a user-facing error when missing."""
        meta = self.upload_meta(sha)
        if meta is None:
            raise PhotoMissingError(PHOTO_MISSING_MESSAGE)
        return meta

    def image(self, sha: str) -> np.ndarray:
        """Return the decoded ``(H, W, 3) uint8`` RGB image of an upload."""
        data = self.cache.get(self._upload_key(sha)) if is_sha256_hex(sha) else None
        if not isinstance(data, bytes):
            raise PhotoMissingError(PHOTO_MISSING_MESSAGE)
        return decode_image(data)

    # -- depth (the expensive, cached step) --------------------------------------------

    def depth_key(self, sha: str, model: str, face: int | None) -> str:
        """Cache key of a face's depth map."""
        return make_key("depth", sha, model=model, params={"face": face, "margin": self.margin})

    def cached_depth(self, sha: str, model: str, face: int | None) -> Any | None:
        """Return a cached ``FaceDepth`` or None (never runs the network)."""
        if not is_sha256_hex(sha) or model not in list_models() or not (face is None or isinstance(face, int)):
            return None  # junk from the browser: nothing cached under it
        key = self.depth_key(sha, model, face)
        value = self.depths.get(key)
        if value is None:
            value = self.cache.get(key)
            if value is not None:
                self.depths.put(key, value)
        return value

    def compute_depth(self, sha: str, model: str, face: int | None, progress: ProgressFn | None = None) -> Any:
        """Return the ``FaceDepth`` of one face, from the cache or by running the network.

        Raises:
            Face3DError: Missing photo or weights, unknown model, no face ...
        """
        get_spec(model)  # UnknownModelError early
        key = self.depth_key(sha, model, face)
        cached = self.cached_depth(sha, model, face)
        if cached is not None:
            return cached
        with self.cache.key_lock(key):
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            from face3d_core.faces import Face
            from face3d_core.pipeline import compute_face_depth

            report = progress or (lambda _fraction, _message: None)
            report(0.1, "Reading the photo...")
            meta = self.require_meta(sha)
            image_rgb = self.image(sha)
            estimator = self.estimator_factory(model)
            if not estimator.loaded:
                report(0.2, "Loading the depth model (first time only)...")

                def download_progress(done: int, total: int | None) -> None:
                    if total:
                        report(0.2 + 0.2 * done / total, f"Downloading the model weights: {100 * done // total}%")

                estimator.load(progress=download_progress)
            report(0.45, "Estimating depth...")
            faces = [Face.from_dict(f) for f in meta.faces]
            result = compute_face_depth(
                image_rgb,
                model_name=model,
                face_index=face,
                margin=self.margin,
                faces=faces,
                estimator=estimator,
            )
            self.cache.set(key, result)  # finished work is kept, even if the job is cancelled now
            self.depths.put(key, result)
            report(0.97, "Saved.")
            return result

    # -- 3D model (the cheap step, per slider values) ------------------------------------

    def model3d_key(self, sha: str, model: str, face: int | None, params: Any) -> str:
        """Cache key of a reconstruction for one parameter set."""
        return make_key("model3d", sha, model=model, params={"face": face, "margin": self.margin, "recon": params})

    def model3d(self, sha: str, model: str, face: int | None, params: Any) -> Any:
        """Return the ``FaceModel3D`` for these parameters (never runs the network).

        Reconstructions are kept in this process's memory (:class:`MemoryLRU`): a slider moved
        back is served at once, and a new value costs only the cheap reconstruction (tens of ms),
        less than writing a 10 MB model to disk would. The depth map comes from the result cache.

        Raises:
            DepthMissingError: The depth map is not in the cache (generate it first).
        """
        from face3d_core.reconstruct import reconstruct_face

        key = self.model3d_key(sha, model, face, params)

        def build():
            face_depth = self.cached_depth(sha, model, face)
            if face_depth is None:
                raise DepthMissingError("The depth map of this face is not ready. Click Generate 3D model first.")
            return reconstruct_face(face_depth, params)

        return self.models.get_or_compute(key, build)

    def export_model(self, sha: str, model: str, face: int | None, params: Any, fmt: str) -> tuple[str, bytes]:
        """Return ``(file name, bytes)`` of the 3D model in ``fmt`` (ply, obj, glb, stl).

        OBJ comes as a zip (OBJ + MTL + texture PNG).
        """
        from face3d_core import export as export_mod

        fmt = fmt.lower()
        if fmt not in {"ply", "obj", "glb", "stl"}:
            raise ExportError(f"Unknown 3D format {fmt!r}; use PLY, OBJ, GLB or STL.")
        meta = self.require_meta(sha)
        face_model = self.model3d(sha, model, face, params)
        files = export_mod.export_mesh(face_model.mesh, fmt)
        stem = safe_stem(meta.name)
        if len(files) == 1:
            ((name, data),) = files.items()
            ext = os.path.splitext(name)[1] or f".{fmt}"
            return f"{stem}_3d{ext}", data
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(os.path.basename(name), data)
        return f"{stem}_3d_{fmt}.zip", buffer.getvalue()

    # -- comparison ----------------------------------------------------------------------

    def compare_key(self, items: Sequence[tuple[str, int | None]], model: str) -> str:
        """Cache key of a comparison of ``(sha, face)`` items with one model."""
        combined = combine_hashes([sha for sha, _ in items])
        return make_key(
            "compare",
            combined,
            model=model,
            params={"faces": [face for _, face in items], "size": compare_mod.DEFAULT_SIZE, "margin": self.margin},
        )

    def comparison(self, key: str) -> ComparisonResult | None:
        """Return a cached comparison by key (None when absent)."""
        value = self.cache.get(key) if isinstance(key, str) and key.startswith("face3d/") else None
        return value if isinstance(value, ComparisonResult) else None

    def compute_comparison(
        self, items: Sequence[tuple[str, int | None]], model: str, progress: ProgressFn | None = None
    ) -> tuple[str, ComparisonResult]:
        """Align and compare 2 to 6 faces; return ``(cache key, result)``.

        Depth maps come from the cache where present; the others are computed (network).

        Raises:
            ComparisonError: Fewer than 2 or more than 6 faces, or a photo without a face.
        """
        from face3d_core.masks import face_mask

        items = [(sha, face) for sha, face in items]
        if not 2 <= len(items) <= 6:
            raise compare_mod.ComparisonError("Choose between 2 and 6 faces to compare.")
        key = self.compare_key(items, model)
        cached = self.comparison(key)
        if cached is not None:
            return key, cached
        report = progress or (lambda _fraction, _message: None)
        names, aligned = [], []
        for number, (sha, face) in enumerate(items):
            meta = self.require_meta(sha)
            if face is None:
                raise compare_mod.ComparisonError(
                    f"No face was found in {meta.name}, so it cannot be aligned with the others. "
                    "Remove it from the comparison."
                )
            start = number / len(items)
            span = 1.0 / len(items)

            def sub(fraction: float, message: str, start=start, span=span, number=number) -> None:
                report(0.05 + 0.85 * (start + span * fraction), f"Face {number + 1} of {len(items)}: {message}")

            face_depth = self.compute_depth(sha, model, face, progress=sub)
            mask = face_mask(face_depth.depth_rel, face_depth.face)
            aligned.append(compare_mod.align_face(face_depth.depth_rel, face_depth.face.landmarks_xy, mask=mask))
            names.append(meta.name if meta.face_count <= 1 else f"{meta.name} (face {face + 1})")
        report(0.93, "Comparing profiles...")
        diff = metrics = None
        if len(aligned) == 2:
            diff = compare_mod.difference_map(aligned[0], aligned[1])
            metrics = compare_mod.compare_pair(aligned[0], aligned[1])
        result = ComparisonResult(
            shas=tuple(sha for sha, _ in items),
            faces=tuple(face for _, face in items),
            names=tuple(names),
            model=model,
            aligned=tuple(aligned),
            nose=tuple(compare_mod.nose_profile(a) for a in aligned),
            eyes=tuple(compare_mod.eye_profile(a) for a in aligned),
            diff=diff,
            metrics=metrics,
        )
        self.cache.set(key, result)
        return key, result

    # -- background tasks ----------------------------------------------------------------

    def tasks(self) -> dict[str, Callable[[dict, Any], dict]]:
        """Task name -> function for the job runner (JSON params in, small JSON result out)."""

        def depth_task(params: dict, job: Any) -> dict:
            sha, model, face = params["sha"], params["model"], params.get("face")
            self.compute_depth(sha, model, face, progress=job.report)
            return {"sha": sha, "model": model, "face": face}

        def compare_task(params: dict, job: Any) -> dict:
            items = [(item[0], item[1]) for item in params["items"]]
            key, result = self.compute_comparison(items, params["model"], progress=job.report)
            return {"key": key, "count": len(result.names)}

        return {"depth": depth_task, "compare": compare_task}


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """A cached comparison of 2 to 6 aligned faces.

    Attributes:
        shas: Photos, in the user's order.
        faces: Face index used in each photo.
        names: Display names.
        model: Depth model used.
        aligned: Aligned, normalised faces.
        nose: Vertical profiles through the nose.
        eyes: Horizontal profiles through the eyes.
        diff: ``(S, S) float32`` difference map (two faces only).
        metrics: Numbers comparing the two faces (two faces only).
    """

    shas: tuple[str, ...]
    faces: tuple[int | None, ...]
    names: tuple[str, ...]
    model: str
    aligned: tuple[compare_mod.AlignedFace, ...]
    nose: tuple[compare_mod.Profile, ...]
    eyes: tuple[compare_mod.Profile, ...]
    diff: np.ndarray | None = None
    metrics: compare_mod.PairMetrics | None = None


class DepthMissingError(Face3DError):
    """A step needs a depth map that has not been computed yet."""

    title = "Depth map not ready"
