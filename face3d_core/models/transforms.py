"""Official input preprocessing of the depth networks and the resize of their output, driven by a :class:`ModelSpec`.

The steps reproduce the official MiDaS / Depth Anything V2 transforms (as encoded by the
reference files in ``shared/reference``): RGB scaled to [0, 1], a bicubic resize
(OpenCV ``INTER_CUBIC``) to the network size with sides rounded to a multiple of
``spec.multiple_of``, then per-channel normalisation.

Rounding a side ``x`` to the multiple ``m``: round to the nearest multiple; if that
exceeds an upper bound use the multiple below; if it falls under a lower bound use the
multiple above.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from face3d_core.models.registry import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The ``A`` of the cubic convolution kernel that PyTorch (and OpenCV) use.
_CUBIC_A = -0.75


def _round_to_multiple(x: float, multiple: int, lower: int = 0, upper: int | None = None) -> int:
    """Round ``x`` to a multiple of ``multiple`` within optional bounds (see module docstring)."""
    y = int(np.round(x / multiple) * multiple)
    if upper is not None and y > upper:
        y = int(math.floor(x / multiple) * multiple)
    if y < lower:
        y = int(math.ceil(x / multiple) * multiple)
    return y


def network_input_size(height: int, width: int, spec: ModelSpec) -> tuple[int, int]:
    """Return the ``(height, width)`` the network sees for an image of the given size.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        spec: The model's spec (``net_size``, ``resize_mode``, ``multiple_of``).

    Returns:
        ``(net_height, net_width)``, both multiples of ``spec.multiple_of``.

    Example:
        >>> from face3d_core.models.registry import get_spec
        >>> network_input_size(480, 640, get_spec("midas_v21_small_256"))
        (192, 256)
    """
    target_h, target_w = spec.net_size
    scale_h, scale_w = target_h / height, target_w / width
    mode = spec.resize_mode
    m = spec.multiple_of
    if mode == "square":
        return _round_to_multiple(scale_h * height, m), _round_to_multiple(scale_w * width, m)
    if mode == "lower_bound":  # cover the target: the larger scale wins
        scale = max(scale_h, scale_w)
        return (
            _round_to_multiple(scale * height, m, lower=target_h),
            _round_to_multiple(scale * width, m, lower=target_w),
        )
    if mode == "upper_bound":  # fit inside the target: the smaller scale wins
        scale = min(scale_h, scale_w)
        return (
            _round_to_multiple(scale * height, m, upper=target_h),
            _round_to_multiple(scale * width, m, upper=target_w),
        )
    if mode == "minimal":  # change the image as little as possible
        scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
        return _round_to_multiple(scale * height, m), _round_to_multiple(scale * width, m)
    raise ValueError(f"unknown resize mode {mode!r}")


#: Height / width of face crops, most common first (a face box with its margin is about square;
#: portraits and turned heads make it taller or wider), for :func:`face_crop_input_sizes`.
FACE_CROP_ASPECTS = (1.0, 0.875, 1.15, 1.33, 0.75, 1.6, 0.625)


def face_crop_input_sizes(spec: ModelSpec) -> list[tuple[int, int]]:
    """The network input sizes face crops usually give, most common first, without repeats.

    Example:
        >>> from face3d_core.models.registry import get_spec
        >>> face_crop_input_sizes(get_spec("midas_v21_small_256"))[:3]
        [(256, 256), (224, 256), (256, 224)]
    """
    sizes: list[tuple[int, int]] = []
    for aspect in FACE_CROP_ASPECTS:
        size = network_input_size(round(1000 * aspect), 1000, spec)
        if size not in sizes:
            sizes.append(size)
    return sizes


def prepare_array(image_rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Preprocess an RGB image into the network's input layout, as numpy.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo (or float in [0, 1]).
        spec: The model's spec.

    Returns:
        ``(3, h, w) float32``, normalised network input (h, w from :func:`network_input_size`).
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {image_rgb.shape}")
    if image_rgb.dtype == np.uint8:
        image = image_rgb.astype(np.float64) / 255.0
    else:
        image = image_rgb.astype(np.float64)
    net_h, net_w = network_input_size(image.shape[0], image.shape[1], spec)
    resized = cv2.resize(image, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    mean = np.asarray(spec.mean, dtype=np.float64)
    std = np.asarray(spec.std, dtype=np.float64)
    normalised = (resized - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)).astype(np.float32)


def prepare_input(image_rgb: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """Preprocess an RGB image into a batch of one for the network.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo.
        spec: The model's spec.

    Returns:
        ``(1, 3, h, w) float32`` tensor on the CPU.
    """
    import torch

    return torch.from_numpy(prepare_array(image_rgb, spec)).unsqueeze(0)


def _source_coordinates(size_in: int, size_out: int, align_corners: bool) -> np.ndarray:
    """Return where each output pixel samples the input, in input pixels, in float32 as PyTorch does."""
    dst = np.arange(size_out, dtype=np.float32)
    if align_corners:
        scale = np.float32((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
        return dst * scale
    scale = np.float32(size_in / size_out)
    return scale * (dst + np.float32(0.5)) - np.float32(0.5)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Return the ``(n, 4)`` cubic convolution weights of taps -1, 0, 1, 2 for fractions ``t``."""
    a = np.float32(_CUBIC_A)
    one = np.float32(1.0)

    def near(d: np.ndarray) -> np.ndarray:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + one

    def far(d: np.ndarray) -> np.ndarray:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack((far(t + one), near(t), near(one - t), far(2 - t)), axis=1)


def resize_matrix(size_in: int, size_out: int, mode: Literal["bicubic", "bilinear"], align_corners: bool) -> np.ndarray:
    """Return the ``(size_out, size_in) float64`` matrix of a 1-D resize as PyTorch computes it.

    Bicubic: taps at ``floor(x) - 1 .. floor(x) + 2``, clamped to the border. Bilinear: source
    coordinates below zero are clamped to zero first (``align_corners=False``), as PyTorch does.
    """
    src = _source_coordinates(size_in, size_out, align_corners)
    rows = np.arange(size_out)
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    if mode == "bicubic":
        base = np.floor(src)
        weights = _cubic_weights((src - base).astype(np.float32))
        for tap in range(4):
            index = np.clip(base.astype(np.int64) - 1 + tap, 0, size_in - 1)
            np.add.at(matrix, (rows, index), weights[:, tap])
        return matrix
    if mode == "bilinear":
        src = np.maximum(src, np.float32(0.0))
        low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
        high = np.minimum(low + 1, size_in - 1)
        frac = (src - low.astype(np.float32)).astype(np.float64)
        np.add.at(matrix, (rows, low), 1.0 - frac)
        np.add.at(matrix, (rows, high), frac)
        return matrix
    raise ValueError(f"unknown resize mode {mode!r} (use bicubic or bilinear)")


def upsample_depth(
    depth: np.ndarray,
    size: tuple[int, int],
    mode: Literal["bicubic", "bilinear"] = "bicubic",
    align_corners: bool = False,
) -> np.ndarray:
    """Resize a prediction to ``size`` like ``F.interpolate(depth[None, None], size, mode, align_corners)``.

    Args:
        depth: ``(h, w) float32`` network output (relative inverse depth).
        size: ``(height, width)`` in pixels of the result.
        mode: ``bicubic`` (MiDaS) or ``bilinear`` (Depth Anything V2).
        align_corners: As in PyTorch.

    Returns:
        ``(height, width) float32``: PyTorch's float32 result to about 1e-6 of the input's range
        (same float32 sampling positions and weights; the sums are taken in float64).

    Example:
        >>> upsample_depth(np.ones((2, 2), np.float32), (3, 5)).shape
        (3, 5)
    """
    if depth.ndim != 2:
        raise ValueError(f"expected an (h, w) array, got shape {depth.shape}")
    rows = resize_matrix(depth.shape[0], size[0], mode, align_corners)
    cols = resize_matrix(depth.shape[1], size[1], mode, align_corners)
    depth = depth.astype(np.float64)
    # Separable: rows @ depth @ cols.T, multiplied in the order that does fewer operations.
    if size[0] * depth.shape[1] * (depth.shape[0] + size[1]) <= depth.shape[0] * size[1] * (depth.shape[1] + size[0]):
        out = (rows @ depth) @ cols.T
    else:
        out = rows @ (depth @ cols.T)
    return np.ascontiguousarray(out, dtype=np.float32)
