"""Test doubles and helpers for tests and benchmarks (kept out of the product packages).

* :class:`FakeEstimator`: a stand-in depth network giving a face-like relative depth map,
  counting its calls (to prove that sliders never rerun the network);
* :func:`write_fill_checkpoint`: a real checkpoint file for a registered model with the
  deterministic weights of ``shared/reference/fill.py`` (for end-to-end runs of the real
  network code without downloading weights).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np


class FakeEstimator:
    """Face-like depth without a network: a dome, a nose bump and a little photo detail.

    Attributes:
        calls: How many times :meth:`predict` ran.
    """

    loaded = True

    def __init__(self, delay_s: float = 0.0):
        self.calls = 0
        self.delay_s = delay_s
        self._lock = threading.Lock()
        #: Shapes of the batches :meth:`infer_array` was given (the live view's network input).
        self.batch_shapes: list[tuple[int, ...]] = []

    @property
    def spec(self):
        """The default network's spec (input size and normalisation), as the live view reads it."""
        from face3d_core.models.registry import DEFAULT_MODEL, get_spec

        return get_spec(DEFAULT_MODEL)

    def load(self, progress=None) -> None:
        """Nothing to load."""
        return None

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """Return ``(H, W) float32`` relative inverse depth (larger = nearer) for a photo."""
        import time

        with self._lock:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        height, width = image_rgb.shape[:2]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy = width / 2, height * 0.5
        r2 = ((xx - cx) / (0.42 * width)) ** 2 + ((yy - cy) / (0.5 * height)) ** 2
        dome = np.sqrt(np.clip(1.0 - r2, 0.0, None))
        nose = 0.25 * np.exp(-(((xx - cx) / (0.05 * width)) ** 2 + ((yy - height * 0.55) / (0.09 * height)) ** 2))
        detail = image_rgb.astype(np.float32).mean(axis=2) / 255.0
        return (1.0 + 2.0 * dome + nose + 0.03 * detail).astype(np.float32)

    def infer_array(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 3, h, w)`` network input -> ``(B, h, w)``: :meth:`input_depth` of each image (normalisation undone)."""
        with self._lock:
            self.batch_shapes.append(tuple(int(s) for s in batch.shape))
        spec = self.spec
        mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        rgb = np.clip(np.rint((batch * std + mean) * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return np.stack([self.input_depth(np.ascontiguousarray(image)) for image in rgb])

    def input_depth(self, image_rgb: np.ndarray) -> np.ndarray:
        """The depth of one network input (:meth:`predict`'s)."""
        return self.predict(image_rgb)


class KnownSceneEstimator(FakeEstimator):
    """A stand-in network that knows the true depth of some photos (renders of head scans).

    For a crop of one of its photos it returns that photo's depth map over the crop, found by
    matching the crop's pixels (the app crops without resampling); for any other image it is
    a :class:`FakeEstimator`. Used to show real face shapes without network weights
    (screenshots) and to test measurements against known depth.

    Args:
        scenes: ``(image_rgb (H, W, 3) uint8 as the app decodes it, depth_rel (H, W) float32)`` pairs.
        delay_s: Seconds each prediction sleeps.
    """

    def __init__(self, scenes: list[tuple[np.ndarray, np.ndarray]], delay_s: float = 0.0):
        super().__init__(delay_s)
        self.scenes = [(np.ascontiguousarray(rgb), np.asarray(depth, np.float32)) for rgb, depth in scenes]

    def _locate(self, crop: np.ndarray, scene: np.ndarray) -> tuple[int, int] | None:
        import cv2

        h, w = crop.shape[:2]
        if h > scene.shape[0] or w > scene.shape[1] or min(h, w) < 16:
            return None
        side = 16
        cy, cx = h // 2 - side // 2, w // 2 - side // 2
        patch = crop[cy : cy + side, cx : cx + side]
        scores = cv2.matchTemplate(scene, patch, cv2.TM_SQDIFF)
        _, _, (x, y), _ = cv2.minMaxLoc(scores)
        y0, x0 = y - cy, x - cx
        if y0 < 0 or x0 < 0 or y0 + h > scene.shape[0] or x0 + w > scene.shape[1]:
            return None
        return (y0, x0) if np.array_equal(scene[y0 : y0 + h, x0 : x0 + w], crop) else None

    def _pyramid(self, size: int) -> list[tuple[int, float, float, np.ndarray]]:
        """``(scene index, crop side, factor, grey scene scaled so that the side is size px)``, made once."""
        import cv2

        if getattr(self, "_scaled_scenes", None) is None:
            scaled_scenes = []
            for index, (scene, _depth) in enumerate(self.scenes):
                gray = cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY)
                height, width = gray.shape
                for side in np.geomspace(size, min(height, width), 60):
                    factor = size / side
                    scaled = cv2.resize(
                        gray, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA
                    )
                    if min(scaled.shape) >= size:
                        scaled_scenes.append((index, float(side), factor, scaled))
            self._scaled_scenes = scaled_scenes
        return self._scaled_scenes

    def _match_resized(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """The known depth under a square image that is a *resized* crop of a scene (the live view's input).

        Template matching over crop sizes (on 64 x 64 grey copies); None when nothing matches well.
        """
        import cv2

        size = 64
        if image_rgb.shape[0] != image_rgb.shape[1]:
            return None
        probe = cv2.resize(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
        best = None
        for index, side, factor, scaled in self._pyramid(size):
            score, _, (x, y), _ = cv2.minMaxLoc(cv2.matchTemplate(scaled, probe, cv2.TM_SQDIFF_NORMED))
            if best is None or score < best[0]:
                best = (score, index, side, x / factor, y / factor)
        if best is None or best[0] > 0.1:
            return None
        _, index, side, x0, y0 = best
        depth = self.scenes[index][1]
        x0, y0, side = round(x0), round(y0), round(side)
        crop = depth[y0 : y0 + side, x0 : x0 + side]
        with self._lock:
            self.calls += 1
        target = (image_rgb.shape[1], image_rgb.shape[0])
        return cv2.resize(crop, target, interpolation=cv2.INTER_AREA).astype(np.float32)

    def input_depth(self, image_rgb: np.ndarray) -> np.ndarray:
        """The known depth where a network input is a resized square crop of a scene, else :meth:`predict`'s."""
        found = self._match_resized(image_rgb)
        return found if found is not None else self.predict(image_rgb)

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """The known depth over the crop, or :meth:`FakeEstimator.predict`'s."""
        crop = np.ascontiguousarray(image_rgb)
        for scene, depth in self.scenes:
            found = self._locate(crop, scene)
            if found is not None:
                with self._lock:
                    self.calls += 1
                y0, x0 = found
                return depth[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]].copy()
        return super().predict(image_rgb)


def load_fill_module(fill_py: str | Path):
    """Import ``fill.py`` (deterministic reference weights) from a path."""
    spec = importlib.util.spec_from_file_location("face3d_reference_fill", str(fill_py))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {fill_py}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def filled_state_dict(fill_py: str | Path, model: str) -> dict:
    """``fill.py``'s weights for a registered network, with no network in memory.

    The layout (keys, shapes, dtypes) comes from the network built on PyTorch's ``meta`` device (no
    storage, no random initialisation), so a 1.4 GB network costs one copy of its weights, not three.
    """
    import importlib

    import torch

    from face3d_core.models.registry import get_spec

    module_name, _, builder = get_spec(model).builder.partition(":")
    with torch.device("meta"):
        layout = getattr(importlib.import_module(module_name), builder)().state_dict()
    return load_fill_module(fill_py).fill_state_dict(layout)


def fill_in_place(network, fill_py: str | Path) -> None:
    """Give a built network ``fill.py``'s weights tensor by tensor (no second copy of the weights).

    Equal to ``load_state_dict(fill_state_dict(state_dict()))``; that the layout is the official one
    (a strict load) is checked by the layout tests.
    """
    import torch

    fill = load_fill_module(fill_py)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            tensor.copy_(torch.from_numpy(fill.fill_array(name, tuple(tensor.shape))).to(tensor.dtype))


def write_fill_checkpoint(weights_dir: str | Path, fill_py: str | Path, model: str = "midas_v21_small_256") -> Path:
    """Write ``<weights_dir>/<model file name>`` with the weights of ``fill.py``.

    Returns:
        The checkpoint path (reused if it already exists).
    """
    import torch

    from face3d_core.models.registry import get_spec

    spec = get_spec(model)
    path = Path(weights_dir) / spec.file_name
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(filled_state_dict(fill_py, model), path)
    return path


class NoJobsRunner:
    """A job runner that records what it is asked to run (work done in the callback asks nothing)."""

    def __init__(self):
        self.submitted: list[str] = []

    def submit(self, kind, params, owner=""):
        """Record ``kind``; return a job id that names no job."""
        self.submitted.append(kind)
        return "0" * 64


def hide_detector(folder: Path, monkeypatch) -> Path:
    """Leave every place the face detector may be empty, offline; return where the package's copy would be.

    ``FACE3D_YUNET_PATH`` unset, the package's data folder ``folder/package`` empty, the weights
    (``folder/weights``) and cache (``folder/cache``) folders empty, downloads off, the detector's
    health forgotten. Call ``faces.reset_detector_health()`` again after the test.
    """
    from face3d_core import faces

    packaged = Path(folder) / "package" / faces.YUNET_WEIGHTS.file_name
    packaged.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(faces, "packaged_yunet_path", lambda: packaged)
    monkeypatch.delenv("FACE3D_YUNET_PATH", raising=False)
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(Path(folder) / "weights"))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(Path(folder) / "cache"))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    (Path(folder) / "weights").mkdir(exist_ok=True)
    faces.reset_detector_health()
    return packaged
