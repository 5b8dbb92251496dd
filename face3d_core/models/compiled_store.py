"""Exported and compiled networks on disk, shared by every process that uses the same cache folder.

One folder per network build, under ``<cache dir>/compiled/`` (see
:func:`face3d_core.weights.cache_dir`)::

    checkpoints.json                         SHA-256 of checkpoint files, by path, size and mtime
    <model>/<checkpoint sha256[:16]>-<code digest[:12]>/
        onnx/model.onnx                      the export (ONNX Runtime reads it; OpenVINO converts it)
        openvino-<version>/model.xml, .bin   OpenVINO's own format (read without torch)
        openvino-<version>/blobs/            OpenVINO's compiled-model cache (``CACHE_DIR``)
        <runtime>-<version>/verified/<precision>-<B>x<C>x<H>x<W>.json
                                             how that runtime compared with PyTorch at that input
        <runtime>-<version>/failed.json      the export or conversion failed (not retried)

The code digest covers the network definitions (the ``face3d_core/models`` sources) and the torch
and timm versions, so a changed network is exported again rather than served stale. Every file is
written to a temporary name in its folder and renamed into place, so concurrent processes only
ever see whole files; two processes that race both do the same work once and the last rename wins.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from face3d_core.weights import cache_dir, sha256_file

logger = logging.getLogger(__name__)

#: Bump when the layout or meaning of the stored files changes.
STORE_FORMAT = 1

_MODELS_DIR = Path(__file__).resolve().parent
#: Modules of the models package that define no network (editing them keeps the exports valid).
_RUNTIME_MODULES = frozenset(
    {
        "__init__.py",
        "compiled_store.py",
        "cpu_info.py",
        "estimator.py",
        "onnx_backend.py",
        "openvino_backend.py",
        "registry.py",
        "transforms.py",
        "verified_runtime.py",
    }
)
_MEMO_LOCK = threading.Lock()


def compiled_root() -> Path:
    """Return ``<cache dir>/compiled``."""
    return cache_dir() / "compiled"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """Return the JSON object in ``path``, or None where it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


_code_digest: str | None = None


def network_code_digest() -> str:
    """Return a digest of what an export depends on besides the weights: network sources, torch, timm.

    Read from the source files and package metadata, without importing torch or timm.
    """
    global _code_digest
    if _code_digest is None:
        digest = hashlib.sha256(f"format {STORE_FORMAT}".encode())
        for name in ("torch", "timm"):
            digest.update(f"|{name} {_package_version(name)}".encode())
        for source in sorted(_MODELS_DIR.glob("*.py")):
            if source.name not in _RUNTIME_MODULES:
                digest.update(source.name.encode() + b"\0" + source.read_bytes())
        _code_digest = digest.hexdigest()
    return _code_digest


def checkpoint_sha256(path: Path) -> str:
    """Return the SHA-256 of a checkpoint file, remembered across processes by path, size and mtime.

    Hashing a 1.3 GB checkpoint takes seconds; a changed file (other size or mtime) is hashed again.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = compiled_root() / "checkpoints.json"
    memo = read_json(memo_path) or {}
    known = memo.get(key)
    if isinstance(known, str) and len(known) == 64:
        return known
    digest = sha256_file(path)
    with _MEMO_LOCK:
        memo = read_json(memo_path) or {}
        memo = {k: v for k, v in memo.items() if not k.startswith(f"{path}|")}  # forget older versions
        memo[key] = digest
        try:
            write_atomic(memo_path, json.dumps(memo, indent=1, sort_keys=True).encode())
        except OSError as exc:  # a read-only cache still works, it only hashes again next time
            logger.debug("could not remember the checkpoint hash: %s", exc)
    return digest


def shape_key(shape: tuple[int, ...]) -> str:
    """Return ``1x3x256x256`` for an input shape."""
    return "x".join(str(int(s)) for s in shape)


class CompiledStore:
    """The cache folder of one network build (model, checkpoint, network code).

    Args:
        model_name: Registry name.
        checkpoint_sha: Full SHA-256 of the checkpoint file.
        root: Folder of all builds (default :func:`compiled_root`).
    """

    def __init__(self, model_name: str, checkpoint_sha: str, root: Path | None = None) -> None:
        self.model_name = model_name
        self.checkpoint_sha = checkpoint_sha
        root = root if root is not None else compiled_root()
        self.folder = root / model_name / f"{checkpoint_sha[:16]}-{network_code_digest()[:12]}"

    @property
    def onnx_path(self) -> Path:
        """Where the ONNX export lives."""
        return self.folder / "onnx" / "model.onnx"

    def runtime_folder(self, runtime: str, version: str) -> Path:
        """Return the folder of one runtime version (``openvino-2026.4.1``)."""
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in version)
        return self.folder / f"{runtime}-{safe}"

    def _record_path(self, runtime: str, version: str, precision: str, shape: tuple[int, ...]) -> Path:
        return self.runtime_folder(runtime, version) / "verified" / f"{precision}-{shape_key(shape)}.json"

    def verification(self, runtime: str, version: str, precision: str, shape: tuple[int, ...]) -> dict[str, Any] | None:
        """Return the stored verification of ``runtime`` at ``precision`` and input ``shape``, if any."""
        record = read_json(self._record_path(runtime, version, precision, shape))
        if record is None or record.get("checkpoint_sha256") != self.checkpoint_sha:
            return None
        if not isinstance(record.get("accepted"), bool):
            return None
        return record

    def save_verification(
        self, runtime: str, version: str, precision: str, shape: tuple[int, ...], record: dict[str, Any]
    ) -> None:
        """Store a verification record (see :meth:`verification`); a read-only cache only logs."""
        record = {
            "model": self.model_name,
            "checkpoint_sha256": self.checkpoint_sha,
            "runtime": runtime,
            "runtime_version": version,
            "precision": precision,
            "input_shape": [int(s) for s in shape],
            **record,
        }
        try:
            write_atomic(
                self._record_path(runtime, version, precision, shape),
                json.dumps(record, indent=1, sort_keys=True).encode(),
            )
        except OSError as exc:
            logger.warning("could not store the verification of %s: %s", self.model_name, exc)

    def failure(self, runtime: str, version: str) -> str | None:
        """Return why the export/conversion for ``runtime`` failed before, or None."""
        record = read_json(self.runtime_folder(runtime, version) / "failed.json")
        return str(record.get("error")) if record else None

    def save_failure(self, runtime: str, version: str, error: str) -> None:
        """Remember that exporting/converting for ``runtime`` failed, so no process tries again."""
        try:
            write_atomic(
                self.runtime_folder(runtime, version) / "failed.json",
                json.dumps({"model": self.model_name, "error": error}).encode(),
            )
        except OSError as exc:
            logger.debug("could not store the failure: %s", exc)
