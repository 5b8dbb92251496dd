"""Cache keys: what was computed, from which input, with which parameters and version.

A key names its content, never a file name::

    face3d/v<version>/<kind>/<input sha256>/<model or ->/<params digest>

so the second request for the same work finds it, and a change of algorithm or stored format
(a bump of :data:`CACHE_VERSION`) never serves stale results. Every store
(:mod:`face3d_core.cache.disk`, :mod:`face3d_core.cache.redis`) uses these keys unchanged.

Example:
    >>> make_key("depth", "0" * 64, model="midas_v21_small_256", params={"face": 0})[:17]
    'face3d/v2/depth/0'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

#: Bump when a stored format or an algorithm behind a cached result changes.
#: v2: upload metadata holds :class:`~face3d_core.faces.Face` objects (not dicts) and
#: comparisons are :class:`face3d_core.compare.ComparisonResult`.
CACHE_VERSION = 2

#: Version of the ``upload`` entries (the user's original file bytes): their format never
#: changes, so they keep this version whatever :data:`CACHE_VERSION` says and a bump does not
#: throw away the photos themselves (their derived metadata is rebuilt on the next upload).
UPLOAD_VERSION = 1

#: Entry kinds whose version does not follow :data:`CACHE_VERSION`.
PINNED_VERSIONS = {"upload": UPLOAD_VERSION}

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KIND_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")


def is_sha256_hex(value: object) -> TypeGuard[str]:
    """Return True when ``value`` is a lowercase 64-character hex SHA-256 string."""
    return isinstance(value, str) and bool(_SHA256_RE.match(value))


def _canonical(value: Any) -> Any:
    """Turn params (dataclasses, tuples, numpy scalars ...) into plain JSON-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _canonical(value.item())
    if hasattr(value, "value"):  # enum
        return _canonical(value.value)
    raise TypeError(f"Cannot use {type(value).__name__} in a cache key")


def params_digest(params: Any) -> str:
    """Return a short stable digest of parameters (a mapping, dataclass or ``None``).

    Two parameter sets that are equal as JSON (keys sorted) give the same digest.
    """
    if params is None:
        return "-"
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def make_key(
    kind: str,
    image_sha256: str,
    *,
    model: str | None = None,
    params: Any = None,
    version: int | None = None,
) -> str:
    """Build a cache key from the content hash of the input and what is computed from it.

    Args:
        kind: What the entry is (``"upload"``, ``"depth"``, ``"model3d"`` ...): lowercase.
        image_sha256: Lowercase hex SHA-256 of the input image bytes. Several inputs (a
            comparison) may be combined into one hash by the caller (:func:`combine_hashes`).
        model: Depth model name, if the result depends on one.
        params: Parameters of the computation (mapping or dataclass), hashed canonically.
        version: Format/algorithm version; defaults to :data:`CACHE_VERSION` (or the kind's
            entry in :data:`PINNED_VERSIONS`).

    Returns:
        A key such as ``face3d/v2/depth/<sha>/midas_v21_small_256/<digest>``.

    Raises:
        ValueError: ``kind`` or ``image_sha256`` is malformed.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"Invalid cache kind {kind!r}")
    if not is_sha256_hex(image_sha256):
        raise ValueError(f"Invalid image SHA-256 {image_sha256!r}")
    model_part = model if model else "-"
    if "/" in model_part:
        raise ValueError(f"Invalid model name {model!r}")
    if version is None:
        version = PINNED_VERSIONS.get(kind, CACHE_VERSION)
    return f"face3d/v{int(version)}/{kind}/{image_sha256}/{model_part}/{params_digest(params)}"


def content_hash_of(key: str) -> str | None:
    """Return the input hash a key of :func:`make_key` names, or None for any other text.

    Example:
        >>> content_hash_of(make_key("depth", "0" * 64)) == "0" * 64
        True
    """
    parts = key.split("/", 4) if isinstance(key, str) else []
    if len(parts) >= 4 and parts[0] == "face3d" and is_sha256_hex(parts[3]):
        return parts[3]
    return None


def combine_hashes(hashes: Sequence[str]) -> str:
    """Return one SHA-256 hex for an ordered list of SHA-256 hex strings (for multi-input results)."""
    digest = hashlib.sha256()
    for value in hashes:
        if not is_sha256_hex(value):
            raise ValueError(f"Invalid SHA-256 {value!r}")
        digest.update(value.encode("ascii"))
    return digest.hexdigest()
