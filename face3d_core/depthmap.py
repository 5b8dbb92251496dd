"""Depth maps as users see and download them: normalisation and file encoders.

The networks give relative inverse depth (``depth_rel``: larger = nearer, unknown scale
and shift). For display it is mapped linearly to ``[0, 1]`` with 1 = nearest, and shown
as grayscale where lighter = nearer. Downloads: an 8-bit grayscale PNG (what the UI
shows), a 16-bit grayscale PNG (same mapping, 65535 levels) and the raw ``.npy``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np

from face3d_core.errors import ExportError

logger = logging.getLogger(__name__)

#: What :func:`write_depth_outputs` writes per stem: 8-bit PNG, 16-bit PNG, raw ``.npy``.
DEPTH_FILE_SUFFIXES = ("_depth.png", "_depth16.png", "_depth.npy")


def normalize_depth(
    depth_rel: np.ndarray,
    mask: np.ndarray | None = None,
    percentiles: tuple[float, float] = (0.0, 100.0),
) -> np.ndarray:
    """Map relative inverse depth linearly to ``[0, 1]``, 1 = nearest.

    Args:
        depth_rel: ``(H, W) float`` relative inverse depth (larger = nearer).
        mask: Optional ``(H, W) bool``; only these pixels set the range (others are clipped).
        percentiles: Low/high percentiles of the valid values mapped to 0 and 1 (``(0, 100)``:
            min and max). Use e.g. ``(1, 99)`` to ignore outliers.

    Returns:
        ``(H, W) float32`` in ``[0, 1]``; non-finite input becomes 0. A constant map gives zeros.
    """
    depth = np.asarray(depth_rel, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth.shape}")
    valid = np.isfinite(depth)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        return np.zeros(depth.shape, dtype=np.float32)
    values = depth[valid]
    if percentiles == (0.0, 100.0):
        low, high = float(values.min()), float(values.max())
    else:
        low, high = (float(v) for v in np.percentile(values, percentiles))
    span = high - low
    if span <= 0 or not np.isfinite(span):
        return np.zeros(depth.shape, dtype=np.float32)
    out = (depth - low) / span
    out = np.where(np.isfinite(out), out, 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_gray8(depth_norm: np.ndarray) -> np.ndarray:
    """Quantise a ``[0, 1]`` map to ``(H, W) uint8`` (255 = nearest = white)."""
    return np.rint(np.clip(depth_norm, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_gray16(depth_norm: np.ndarray) -> np.ndarray:
    """Quantise a ``[0, 1]`` map to ``(H, W) uint16`` (65535 = nearest)."""
    return np.rint(np.clip(depth_norm, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _encode_png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes
        raise ExportError("The depth map could not be encoded as PNG.")
    return buf.tobytes()


def encode_depth_png8(depth_rel: np.ndarray, mask: np.ndarray | None = None) -> bytes:
    """Encode the grayscale depth image users see (lighter = nearer) as an 8-bit PNG."""
    return _encode_png(to_gray8(normalize_depth(depth_rel, mask)))


def encode_depth_png16(depth_rel: np.ndarray, mask: np.ndarray | None = None) -> bytes:
    """Encode the normalised depth (65535 = nearest) as a 16-bit grayscale PNG."""
    return _encode_png(to_gray16(normalize_depth(depth_rel, mask)))


def encode_depth_npy(depth_rel: np.ndarray) -> bytes:
    """Encode the raw ``(H, W) float32`` relative inverse depth as ``.npy`` bytes."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(depth_rel, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def write_depth_outputs(depth_rel: np.ndarray, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>_depth.png``, ``<stem>_depth16.png`` and ``<stem>_depth.npy`` (raw).

    Args:
        depth_rel: ``(H, W) float32`` relative inverse depth.
        out_dir: Output folder (created if missing).
        stem: File name stem (a plain name; path separators are rejected).

    Returns:
        The three paths written.

    Raises:
        ExportError: The folder cannot be created or written.
    """
    if not stem or Path(stem).name != stem or stem in {".", ".."}:
        raise ExportError(f"Invalid output name {stem!r}.")
    out = Path(out_dir)
    png8, png16, npy = (out / f"{stem}{suffix}" for suffix in DEPTH_FILE_SUFFIXES)
    files = {png8: encode_depth_png8(depth_rel), png16: encode_depth_png16(depth_rel), npy: encode_depth_npy(depth_rel)}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            path.write_bytes(data)
    except OSError as exc:
        raise ExportError(f"Cannot write the depth files to {out}: {exc.strerror or exc}.") from exc
    return list(files)
