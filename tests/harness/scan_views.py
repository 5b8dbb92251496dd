"""Known-answer views of the open head scans: any pose, any framing, metric or perfect relative depth.

The scans of ``../shared/data/3d`` are rendered by the project's renderer
(:mod:`tests.scan_render`) with a 640 x 800 photo's camera (40 degree horizontal field of
view) turned by a head pose (:func:`tests.scan_render.rotation`) and framed so that the face is
about ``face_px`` pixels wide; only the box around the face is rendered (the crop a face
detector would give), so a view costs what its face costs.

**Landmarks fixed once on the scan.** Five seed points (eye centres, nose tip, mouth corners:
what a perfect face detector reports) are fixed on each scan's surface: MediaPipe's and
ICT-FaceKit's by their published vertex indices (:func:`tests.scan_render.load_mediapipe`,
:func:`~tests.scan_render.load_ict`), Lee Perry-Smith's (no landmark set) by YuNet on its frontal
render (:data:`LPS_SEEDS`, found once and written here); each is moved onto the surface along
the scan's forward axis. In every view the seeds are their projections.

The **truth** of each distance is measured once per scan, on a frontal render at 600 pixels
across the face with exact metric depth (:func:`truth`), and compared with every other view:
the points of a view are never its own truth. :func:`published_points` gives the scans'
published vertex landmarks for a cross-check of where those truth points are.

Two kinds of depth per view: **metric** (mm along the camera axis, what a depth sensor gives)
and **relative** (exact inverse depth with an arbitrary scale and shift, what a flawless
relative-depth network gives). Everything is cached per process: each view is rendered once.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np

from face3d_core.faces import Face
from face3d_core.geometry import Intrinsics
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face
from tests import scan_render as sr
from tests.harness.paths import SCANS_DIR, require

SCAN_NAMES = ("mediapipe", "ict", "lee_perry_smith")
#: The photo every view is cut from, and its horizontal field of view.
PHOTO_WH = (640, 800)
FOV_DEG = 40.0
#: Lee Perry-Smith's scan units in mm: its eye centres (as YuNet places them) 63 mm apart.
LPS_MM_PER_UNIT = 58.5
#: Lee Perry-Smith's seeds in scan units: YuNet's five points on its frontal render (640 x 800,
#: 40 degrees, 450 mm), lifted onto the scan; found once, written here.
LPS_SEEDS = np.array(
    [
        [-0.6738, 1.6898, 1.9474],
        [0.4026, 1.6875, 1.9413],
        [-0.1665, 1.0603, 2.5640],
        [-0.5718, 0.5019, 2.1381],
        [0.2904, 0.5181, 2.1644],
    ]
)
#: The head pose grid of the issue (yaw, pitch) in degrees.
POSES: tuple[tuple[float, float], ...] = (
    (0, 0), (15, 0), (-15, 0), (30, 0), (-30, 0), (45, 0), (-45, 0), (0, 10), (0, -10), (0, 15), (0, -15),
)  # fmt: skip
#: Face widths (pixels) of the three framings.
FRAMINGS = (120, 250, 400)
#: Parameters of the reconstruction: the defaults with metric or inverse depth and no smoothing (exact
#: depth has no noise to remove; ``face3d measure --smooth 0``).
METRIC_PARAMS = ReconstructionParams(depth_kind="metric", fov_deg=FOV_DEG, smoothing_sigma=0.0, representation="points")
RELATIVE_PARAMS = METRIC_PARAMS.replace(depth_kind="inverse")


@dataclass(frozen=True)
class ScanFace:
    """A scan ready to be viewed: mesh (mm, face towards +Z), the triangles that can face the camera, seeds.

    Attributes:
        name: Scan name.
        vertices: ``(N, 3) float64`` mm.
        faces: ``(M, 3) int64`` triangles (the back of the head dropped: never in view of a face's camera).
        seeds: ``(5, 3) float64`` the five seed points on the surface (mm).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    seeds: np.ndarray


@functools.cache
def scan_face(name: str) -> ScanFace:
    """The scan ``name`` with its seeds on the surface (skips the test where ``../shared`` is absent)."""
    require(SCANS_DIR)
    if name == "mediapipe":
        scan = sr.load_mediapipe(SCANS_DIR)
        marks = scan.landmarks
    elif name == "ict":
        scan = sr.load_ict(SCANS_DIR)
        marks = scan.landmarks
    else:
        scan = sr.load_lee_perry_smith(SCANS_DIR, mm_per_unit=LPS_MM_PER_UNIT)
        marks = LPS_SEEDS * LPS_MM_PER_UNIT
    tip_z = float(marks[2, 2])
    centroid_z = scan.vertices[scan.faces].mean(axis=1)[:, 2]
    faces = scan.faces[centroid_z > tip_z - 110.0]  # the face and the sides of the head
    return ScanFace(name, scan.vertices, faces, _onto_surface(scan.vertices, faces, marks))


def _onto_surface(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Move points onto the surface along the scan's forward axis (the frontmost hit)."""
    cam = Intrinsics.from_fov(1280, 1600, FOV_DEG)
    shift = points[2] + np.array([0.0, 0.0, 450.0])
    uv = sr.project(points - shift, cam)
    depth = sr.RayCaster(vertices - shift, faces, cam).depth(uv)
    return sr._rays(uv, cam) * depth[:, None] + shift


@dataclass(frozen=True, eq=False)
class ScanView:
    """One rendered view of a scan.

    Attributes:
        name: Scan name.
        yaw_deg: Head yaw (> 0: towards the image's right).
        pitch_deg: Head pitch (> 0: up).
        face_px: Intended face width in pixels.
        depth_mm: ``(h, w) float32`` exact metric depth of the crop (NaN off the scan).
        seeds_uv: ``(5, 2)`` the seeds in the crop's pixels.
        crop_box_xyxy: The crop in the photo.
        rotation: ``(3, 3)`` the head's rotation (scan frame -> camera frame).
        distance_mm: Camera to the nose tip seed.
    """

    name: str
    yaw_deg: float
    pitch_deg: float
    face_px: int
    depth_mm: np.ndarray
    seeds_uv: np.ndarray
    crop_box_xyxy: tuple[int, int, int, int]
    rotation: np.ndarray
    distance_mm: float

    @property
    def inverse_depth(self) -> np.ndarray:
        """``(h, w) float32`` exact inverse depth with an arbitrary scale and shift (background far)."""
        return (1000.0 / np.nan_to_num(self.depth_mm, nan=5000.0) + 0.3).astype(np.float32)

    def model(self, kind: str = "metric", params: ReconstructionParams | None = None) -> FaceModel3D:
        """The reconstruction of this view: ``"metric"`` depth or ``"relative"`` (exact inverse) depth."""
        base = params or (METRIC_PARAMS if kind == "metric" else RELATIVE_PARAMS)
        depth = self.depth_mm if kind == "metric" else self.inverse_depth
        face = Face.from_landmarks(self.seeds_uv)
        return reconstruct_face((depth, None, face), base, crop_box_xyxy=self.crop_box_xyxy, image_size_wh=PHOTO_WH)


@functools.lru_cache(maxsize=256)
def render_view(name: str, yaw_deg: float = 0.0, pitch_deg: float = 0.0, face_px: int = 250) -> ScanView:
    """Render scan ``name`` turned by ``(yaw, pitch)`` with its face about ``face_px`` pixels wide (cached)."""
    scan = scan_face(name)
    full = Intrinsics.from_fov(*PHOTO_WH, FOV_DEG)
    ipd = float(np.linalg.norm(scan.seeds[1] - scan.seeds[0]))
    distance = full.fx * 2.1 * ipd / face_px  # a face is about 2.1 eye distances wide
    rot = sr.rotation(yaw_deg, pitch_deg)
    target = scan.seeds[2]
    seeds_cam = (scan.seeds - target) @ rot.T - np.array([0.0, 0.0, distance])
    centre = sr.project(seeds_cam, full).mean(axis=0)
    half = 1.6 * ipd * full.fx / distance
    box = (
        int(max(centre[0] - half, 0)),
        int(max(centre[1] - 1.3 * half, 0)),
        int(min(centre[0] + half, PHOTO_WH[0])),
        int(min(centre[1] + 1.5 * half, PHOTO_WH[1])),
    )
    cam = full.cropped(box)
    vertices_cam = (scan.vertices - target) @ rot.T - np.array([0.0, 0.0, distance])
    depth = sr.render_depth(vertices_cam, scan.faces, cam)
    return ScanView(
        name,
        float(yaw_deg),
        float(pitch_deg),
        int(face_px),
        np.where(depth > 0, depth, np.nan).astype(np.float32),
        sr.project(seeds_cam, cam),
        box,
        rot,
        float(distance),
    )


@functools.cache
def truth(name: str) -> dict[str, float]:
    """The scan's own distances (mm), measured once on its frontal view at 600 pixels with exact metric depth."""
    from face3d_core.measure import measure_face

    result = measure_face(render_view(name, 0.0, 0.0, 600).model("metric", METRIC_PARAMS.replace(smoothing_sigma=0.0)))
    return {m.name: m.value_mm for m in result.measurements}


@functools.cache
def truth_points(name: str) -> dict[str, np.ndarray]:
    """The truth points of :func:`truth` in the scan's frame (mm), for the cross-check with :func:`published_points`."""
    from face3d_core.measure import measure_face

    view = render_view(name, 0.0, 0.0, 600)
    model = view.model("metric", METRIC_PARAMS.replace(smoothing_sigma=0.0))
    result = measure_face(model)
    target = scan_face(name).seeds[2]
    out = {}
    for point in result.points.points.values():
        cam = point.xyz + model.origin_mm + np.array([0.0, 0.0, view.distance_mm])
        out[point.name] = cam @ view.rotation + target
    return out


def published_points(name: str) -> dict[str, np.ndarray]:
    """Vertex landmarks the scans' authors publish (mm, scan frame): MediaPipe's mesh indices, ICT's Multi-PIE 68."""
    scan = scan_face(name)
    if name == "mediapipe":
        v = sr.load_mediapipe(SCANS_DIR).vertices
        return {"nose_tip": v[4], "nasion": v[168], "subnasale": v[2], "alare_right": v[129], "alare_left": v[358]}
    if name == "ict":
        v = sr.load_ict(SCANS_DIR).vertices
        lm = json.loads((SCANS_DIR / "ict_facekit" / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
        return {
            "nose_tip": v[lm[30]],
            "nasion": v[lm[27]],
            "subnasale": v[lm[33]],
            "mouth_right": v[lm[48]],
            "mouth_left": v[lm[54]],
        }
    return {"nose_tip": scan.seeds[2]}


def relative_truth(name: str) -> dict[str, float]:
    """:func:`truth` scaled to 63 mm between the eyes: what relative depth can give at best."""
    values = truth(name)
    k = 63.0 / values["eye_distance"]
    return {key: k * value for key, value in values.items()}
