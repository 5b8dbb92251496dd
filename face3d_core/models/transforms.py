"""Official input preprocessing of the depth networks, driven by a :class:`ModelSpec`.

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

import cv2
import numpy as np
import torch

from face3d_core.models.registry import ModelSpec


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
    return torch.from_numpy(prepare_array(image_rgb, spec)).unsqueeze(0)
