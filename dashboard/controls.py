"""The 3D tab's controls as one value object, and how they map to reconstruction parameters.

Only the *shape* controls (smoothing, density, depth scale) change the reconstruction and
its cache key; *display* controls (points/mesh, colours) only change the figure, so
toggling them is always a cache hit.

**Density** is a point budget, not a fixed grid step: the browser's time to draw a point cloud
grows with its points (software WebGL, as in a browser without a GPU: about 20-45 us per point
on a 2-core Xeon), whatever the photo's size, so each level asks for at most about
:data:`DENSITY_POINTS` points and the reconstruction takes every s-th pixel with the smallest
s that fits (:func:`face3d_core.reconstruct.lattice_stride`). The default, *high*, keeps the 3D
view of a 1 MP portrait drawn in under half a second there; *full* (every pixel of the depth
map) is one step up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dashboard.browser_values import choice, clamped, mapping, number
from face3d_core.geometry import DEFAULT_FOV_DEG
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import MAX_MODEL_POINTS, ReconstructionParams

SMOOTHING_MARKS = {0: "off", 1: "1", 2: "2", 3: "3", 4: "4"}
DENSITY_MARKS = {1: "low", 2: "medium", 3: "high", 4: "full"}
DEPTH_SCALE_MARKS = {0.5: "0.5×", 1: "1×", 1.5: "1.5×", 2: "2×"}

#: Density level -> about how many points the model has at most (None: every pixel of the depth map,
#: up to :data:`~face3d_core.reconstruct.MAX_MODEL_POINTS` points).
DENSITY_POINTS: dict[int, int | None] = {1: 3_000, 2: 6_000, 3: 12_000, 4: None}
#: How the 3D view draws the model, and its colours.
DISPLAYS = ("points", "mesh")
COLORS = ("gray", "photo")


@dataclass(frozen=True)
class Controls3D:
    """Values of the 3D tab's controls.

    Attributes:
        smoothing: Gaussian smoothing sigma in depth-map pixels (0 = off).
        density: Point density level 1 (sparse) to 4 (every pixel); see :data:`DENSITY_POINTS`.
        depth_scale: Relief multiplier (1 = natural face depth).
        display: ``"points"`` or ``"mesh"``.
        colors: ``"gray"`` (depth as grayscale) or ``"photo"``.
    """

    smoothing: float = 2.0
    density: int = 3
    depth_scale: float = 1.0
    display: str = "points"
    colors: str = "gray"

    @classmethod
    def from_values(
        cls, smoothing: object, density: object, depth_scale: object, display: object = None, colors: object = None
    ) -> Controls3D:
        """Build from the page's values (:mod:`dashboard.browser_values`): out of range is clamped, junk the default."""
        d = cls()
        return cls(
            smoothing=clamped(smoothing, 0.0, 10.0, d.smoothing),
            density=int(round(clamped(density, 1, 4, d.density))),
            depth_scale=clamped(depth_scale, 0.1, 5.0, d.depth_scale),
            display=choice(display, DISPLAYS, d.display),
            colors=choice(colors, COLORS, d.colors),
        )

    def shown_as(self, display: object, colors: object) -> Controls3D:
        """The same shape controls with the page's display controls (points/mesh, gray/photo)."""
        return dataclasses.replace(
            self, display=choice(display, DISPLAYS, self.display), colors=choice(colors, COLORS, self.colors)
        )

    @property
    def max_points(self) -> int:
        """Point budget of the reconstruction for this density ("full" is full up to the cap, also in the downloads)."""
        budget = DENSITY_POINTS.get(self.density, DENSITY_POINTS[3])
        return MAX_MODEL_POINTS if budget is None else budget

    def to_params(self, fov_deg: float = DEFAULT_FOV_DEG) -> ReconstructionParams:
        """Return the reconstruction parameters of the shape controls.

        Args:
            fov_deg: The photo's horizontal field of view (from its EXIF, the default or the
                user: see :func:`fov_choice`).
        """
        # One reconstruction serves every display option: the mesh (for the mesh view and the
        # downloads), photo colours plus per-point nearness (grayscale) and the texture (OBJ/GLB).
        return ReconstructionParams(
            smoothing_sigma=float(self.smoothing),
            depth_scale=float(self.depth_scale),
            stride=1,
            max_points=self.max_points,
            representation="mesh",
            color_mode="photo",
            texture=True,
            fov_deg=float(fov_deg),
        )


DEFAULT_CONTROLS = Controls3D()

#: Range of the field-of-view slider (degrees, horizontal, whole photo).
FOV_RANGE = (20, 100)
FOV_MARKS = {30: "30°", 55: "55°", 90: "90°"}


def fov_choice(auto: object, fov_deg: object) -> float | None:
    """The field of view the user chose: None for "auto (EXIF)", else degrees within :data:`FOV_RANGE`."""
    if auto or auto is None:
        return None
    chosen = number(fov_deg)
    return None if chosen is None else min(max(chosen, FOV_RANGE[0]), FOV_RANGE[1])


@dataclass(frozen=True)
class ModelView:
    """The 3D view the page asks for, parsed once where the page's values enter.

    Attributes:
        ref: The depth map (None: no 3D model yet, or a store that names none).
        controls: The shape controls (and the display controls where the callback has them).
        fov_deg: The field of view the user set, degrees; None for "auto (EXIF)".
    """

    ref: DepthRef | None = None
    controls: Controls3D = DEFAULT_CONTROLS
    fov_deg: float | None = None

    @classmethod
    def parse(cls, raw: object) -> ModelView:
        """The view of the page's values ``{"source", "smoothing", "density", "depth_scale", "fov_auto", "fov_deg"}``.

        Anything unreadable is its default (no source: an empty view); never raises.
        """
        values = mapping(raw) or {}
        return cls(
            DepthRef.from_dict(values.get("source")),
            Controls3D.from_values(values.get("smoothing"), values.get("density"), values.get("depth_scale")),
            fov_choice(values.get("fov_auto"), values.get("fov_deg")),
        )

    def shown_as(self, display: object, colors: object) -> ModelView:
        """The same view drawn with the page's display controls."""
        return dataclasses.replace(self, controls=self.controls.shown_as(display, colors))
