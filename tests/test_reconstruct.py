"""Known-answer tests of the cheap step (face3d_core.reconstruct) on synthetic faces and spheres."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from face3d_core.faces import Face
from face3d_core.geometry import Intrinsics
from face3d_core.pipeline import FaceDepth
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face

HEAD_CENTER = np.array([0.0, 0.0, 690.0])  # camera frame, y down, mm
HEAD_AXES = np.array([75.0, 105.0, 90.0])
NOSE_HEIGHT, NOSE_WIDTH, NOSE_LENGTH = 25.0, 12.0, 22.0
EYES_XY_MM = np.array([[-31.5, -30.0], [31.5, -30.0]])  # 63 mm apart, same depth
LANDMARKS_XY_MM = np.array([[-31.5, -30.0], [31.5, -30.0], [0.0, 8.0], [-25.0, 45.0], [25.0, 45.0]])


def head_surface_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Camera-frame z of the head's front surface (ellipsoid + Gaussian nose) at lateral (x, y) mm."""
    r2 = (x / HEAD_AXES[0]) ** 2 + (y / HEAD_AXES[1]) ** 2
    z = HEAD_CENTER[2] - HEAD_AXES[2] * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    return z - NOSE_HEIGHT * np.exp(-((x / NOSE_WIDTH) ** 2 + ((y - 5.0) / NOSE_LENGTH) ** 2))


def head_scene(h: int = 360, w: int = 480, fov: float = 50.0, wall: float | None = 1300.0):
    """Metric depth (mm along the axis) of a head in front of a wall, by ray casting.

    Returns:
        ``(depth, head_mask, face, intrinsics)``; ``depth`` is NaN off the head when ``wall`` is None.
    """
    intr = Intrinsics.from_fov(w, h, fov)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    # ellipsoid hit: (t dx / a)^2 + (t dy / b)^2 + ((t - cz) / c)^2 = 1
    a, b, c = HEAD_AXES
    qa = (dx / a) ** 2 + (dy / b) ** 2 + 1.0 / c**2
    qb = -2.0 * HEAD_CENTER[2] / c**2
    qc = (HEAD_CENTER[2] / c) ** 2 - 1.0
    disc = qb * qb - 4 * qa * qc
    head = disc >= 0
    t = np.where(head, (-qb - np.sqrt(np.clip(disc, 0, None))) / (2 * qa), np.nan)
    # add the nose by fixed-point iteration along each ray (the bump is gentle)
    for _ in range(30):
        t = np.where(head, head_surface_z(t * dx, t * dy), np.nan)
    depth = np.where(head, t, np.nan if wall is None else wall)
    z_marks = head_surface_z(LANDMARKS_XY_MM[:, 0], LANDMARKS_XY_MM[:, 1])
    marks = LANDMARKS_XY_MM / z_marks[:, None] * intr.fx + [intr.cx, intr.cy]
    rows, cols = np.nonzero(head)
    top = rows.min() + 0.25 * (rows.max() - rows.min())
    box = (cols.min(), top, cols.max() - cols.min(), rows.max() - top)
    return depth.astype(np.float32), head, Face(box, marks.astype(np.float32), 0.9), intr


def camera_points(model: FaceModel3D) -> np.ndarray:
    """Model points back in the camera frame with y down and z forward (the scene's frame)."""
    return (model.points_xyz.astype(np.float64) + model.origin_mm) * np.array([1.0, -1.0, -1.0])


def exact_points(depth: np.ndarray, intr: Intrinsics, pixel_xy: np.ndarray) -> np.ndarray:
    cols, rows = pixel_xy[:, 0], pixel_xy[:, 1]
    z = depth[rows, cols].astype(np.float64)
    return np.stack([(cols - intr.cx) * z / intr.fx, (rows - intr.cy) * z / intr.fy, z], axis=1)


METRIC_EXACT = ReconstructionParams(depth_kind="metric", smoothing_sigma=0.0, fov_deg=50.0, center="none")


class TestMetricInput:
    def test_back_projection_is_exact(self):
        depth, head, face, intr = head_scene()
        model = reconstruct_face((depth, None, face), METRIC_EXACT)
        np.testing.assert_allclose(camera_points(model), exact_points(depth, intr, model.pixel_xy), atol=1e-3)
        assert model.scale_source == "metric"

    def test_stride_samples_the_same_lattice_exactly(self):
        depth, head, face, intr = head_scene()
        model = reconstruct_face((depth, None, face), dataclasses.replace(METRIC_EXACT, stride=2))
        assert model.stride == 2 and (model.pixel_xy % 2 == 0).all()
        np.testing.assert_allclose(camera_points(model), exact_points(depth, intr, model.pixel_xy), atol=1e-3)
        assert model.mask.shape == depth.shape and model.depth_mm.shape == depth.shape
        full = reconstruct_face((depth, None, face), METRIC_EXACT)
        assert model.n_points == pytest.approx(full.n_points / 4, rel=0.05)
        eyes = np.linalg.norm(model.landmarks["right_eye"] - model.landmarks["left_eye"])
        assert eyes == pytest.approx(63.0, abs=0.05)

    def test_mask_drops_the_wall(self):
        depth, head, face, _ = head_scene()
        model = reconstruct_face((depth, None, face), METRIC_EXACT)
        iou = (model.mask & head).sum() / (model.mask | head).sum()
        assert iou > 0.97
        assert camera_points(model)[:, 2].max() < 800.0  # the wall is at 1300 mm

    def test_eye_landmarks_are_63_mm_apart(self):
        depth, _, face, _ = head_scene()
        model = reconstruct_face((depth, None, face), METRIC_EXACT)
        marks = model.landmarks
        assert np.linalg.norm(marks["right_eye"] - marks["left_eye"]) == pytest.approx(63.0, abs=0.05)
        nose_cam = model.landmark("nose_tip") + model.origin_mm
        assert -nose_cam[2] == pytest.approx(head_surface_z(0.0, 8.0), abs=0.5)

    def test_units_and_holes(self):
        depth, head, face, intr = head_scene(wall=None)
        metres = depth / 1000.0
        metres[150:153, 240:243] = 0.0  # a sensor dropout on the face
        params = dataclasses.replace(METRIC_EXACT, depth_unit_mm=1000.0, mask_mode="none")
        model = reconstruct_face((metres, None, face), params)
        assert model.mask[150:153, 240:243].all()  # interior hole filled
        assert not model.mask[~head].any()  # outside the head stays empty
        ok = ~np.isin(
            model.pixel_xy[:, 1] * 480 + model.pixel_xy[:, 0],
            [r * 480 + c for r in range(150, 153) for c in range(240, 243)],
        )
        np.testing.assert_allclose(camera_points(model)[ok], exact_points(depth, intr, model.pixel_xy[ok]), atol=2e-3)

    def test_crop_and_whole_image_give_the_same_points(self):
        depth, head, face, intr = head_scene(wall=None)
        # spike removal uses whole-map statistics, so it is off for this geometric comparison
        params = dataclasses.replace(METRIC_EXACT, mask_mode="none", remove_flying_pixels=False, remove_outliers=False)
        full = reconstruct_face((depth, None, None), params)
        box = (150, 80, 330, 300)
        crop = depth[80:300, 150:330]
        part = reconstruct_face((crop, None, None), params, crop_box_xyxy=box, image_size_wh=(480, 360))
        lookup = {(int(c), int(r)): p for (c, r), p in zip(full.pixel_xy, full.points_xyz, strict=True)}
        for (c, r), p in zip(part.pixel_xy[::97], part.points_xyz[::97], strict=True):
            np.testing.assert_allclose(p, lookup[(int(c) + 150, int(r) + 80)], atol=1e-3)


def noisy_sphere(noise: float, seed: int = 0):
    intr = Intrinsics.from_fov(200, 200, 40.0)
    v, u = np.mgrid[0:200, 0:200].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    c = np.array([0.0, 0.0, 500.0])
    a = (rays * rays).sum(-1)
    b = -2.0 * (rays @ c)
    disc = b * b - 4 * a * (c @ c - 100.0**2)
    with np.errstate(invalid="ignore"):
        z = np.where(disc >= 0, (-b - np.sqrt(disc)) / (2 * a), np.nan)
    rng = np.random.default_rng(seed)
    return (z + rng.normal(0.0, noise, z.shape)).astype(np.float32), c


def test_smoothing_lowers_the_error_of_a_noisy_sphere():
    depth, center = noisy_sphere(3.0)
    errors = []
    for sigma in (0.0, 1.5, 3.0):
        params = ReconstructionParams(
            depth_kind="metric",
            smoothing_sigma=sigma,
            fov_deg=40.0,
            center="none",
            mask_mode="none",
            remove_outliers=False,
        )
        model = reconstruct_face(depth, params)
        inner = np.hypot(*(model.pixel_xy - 99.5).T) < 35  # the disc is 56 px: away from its silhouette
        radius = np.linalg.norm(camera_points(model)[inner] - center, axis=1)
        errors.append(float(np.sqrt(np.mean((radius - 100.0) ** 2))))
    assert errors[1] < 0.5 * errors[0]
    assert errors[2] < errors[1]


class TestInverseDepth:
    def test_known_relief_recovers_the_metric_face(self):
        """d = s / z + t of a face (no background): with the true relief, depth comes back exactly."""
        depth, head, face, intr = head_scene(wall=None)
        box = (205, 125, 275, 235)  # inside the head: every pixel valid
        z = depth[125:235, 205:275].astype(np.float64)
        assert np.isfinite(z).all()
        disp = 4.0e4 / z - 17.0
        d_lo, d_hi = np.percentile(disp, [2.0, 98.0])
        relief = (4.0e4 / (d_lo + 17.0)) - (4.0e4 / (d_hi + 17.0))
        crop_face = face.transformed(offset_xy=(-205, -125))
        params = ReconstructionParams(
            fov_deg=50.0, smoothing_sigma=0.0, relief_mm=float(relief), mask_mode="none", center="none"
        )
        model = reconstruct_face(
            (disp.astype(np.float32), None, crop_face), params, crop_box_xyxy=box, image_size_wh=(480, 360)
        )
        assert model.scale_source == "eyes"
        rows, cols = model.pixel_xy[:, 1], model.pixel_xy[:, 0]
        # bilinear sampling of the curved surface at the sub-pixel eyes costs a few 1e-4 of scale
        np.testing.assert_allclose(model.depth_mm[rows, cols], z[rows, cols], rtol=5e-4)
        np.testing.assert_allclose(camera_points(model), exact_points(z, intr.cropped(box), model.pixel_xy), atol=0.2)

    def test_face_is_not_inverted_and_is_in_millimetres(self):
        depth, head, face, _ = head_scene()
        disp = (3.0e4 / depth).astype(np.float32)
        model = reconstruct_face((disp, None, face), ReconstructionParams(fov_deg=50.0))
        marks = model.landmarks
        assert marks["nose_tip"][2] > marks["right_eye"][2] + 10.0  # the nose points at the viewer
        assert marks["nose_tip"][2] > np.percentile(model.points_xyz[:, 2], 99.0) - 1.0
        assert np.linalg.norm(marks["right_eye"] - marks["left_eye"]) == pytest.approx(63.0, abs=0.05)
        assert camera_points(model)[:, 2].max() < 1000.0  # no wall

    def test_depth_scale_multiplies_the_relief(self):
        depth, _, face, _ = head_scene()
        disp = (3.0e4 / depth).astype(np.float32)
        spans = []
        for scale in (1.0, 2.0):
            params = ReconstructionParams(fov_deg=50.0, depth_scale=scale)
            model = reconstruct_face((disp, None, face), params)
            z = model.points_xyz[:, 2]
            spans.append(np.percentile(z, 98) - np.percentile(z, 2))
        assert spans[0] == pytest.approx(80.0, rel=0.05)  # the default relief
        assert spans[1] / spans[0] == pytest.approx(2.0, rel=0.05)
        # the mm scale is kept: the eyes stay 63 mm apart whatever the relief
        eyes = np.linalg.norm(model.landmarks["right_eye"] - model.landmarks["left_eye"])
        assert eyes == pytest.approx(63.0, abs=0.05)

    def test_ipd_parameter_sets_the_scale(self):
        depth, _, face, _ = head_scene()
        disp = (3.0e4 / depth).astype(np.float32)
        a = reconstruct_face((disp, None, face), ReconstructionParams(fov_deg=50.0, ipd_mm=63.0))
        b = reconstruct_face((disp, None, face), ReconstructionParams(fov_deg=50.0, ipd_mm=70.0))
        width = [np.ptp(m.points_xyz[:, 0]) for m in (a, b)]
        assert width[1] / width[0] == pytest.approx(70.0 / 63.0, rel=0.02)

    def test_without_a_face_a_distance_is_assumed(self):
        depth, _, _, _ = head_scene()
        model = reconstruct_face((3.0e4 / depth).astype(np.float32), ReconstructionParams(center="none"))
        assert model.scale_source == "assumed" and model.landmarks_xyz is None
        assert -model.points_xyz[:, 2].max() == pytest.approx(500.0, rel=0.02)

    def test_mesh_has_no_curtain_to_the_wall(self):
        depth, head, face, _ = head_scene()
        disp = (3.0e4 / depth).astype(np.float32)
        model = reconstruct_face(
            (disp, None, face), ReconstructionParams(fov_deg=50.0, mask_mode="none", smoothing_sigma=2.0)
        )
        tri_z = model.mesh.vertices_xyz[model.mesh.faces][:, :, 2]
        assert np.ptp(tri_z, axis=1).max() < 30.0  # no triangle spans head and wall
        assert model.mesh.normals[:, 2].mean() > 0.5  # facing the viewer


@pytest.fixture(scope="module")
def scene():
    """(relative inverse depth, random photo, face) of the head in front of a wall."""
    depth, head, face, intr = head_scene()
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, depth.shape + (3,)).astype(np.uint8)
    return (3.0e4 / depth).astype(np.float32), image, face


class TestOutputs:
    def test_shapes_dtypes_and_consistency(self, scene):
        model = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0))
        n = model.n_points
        assert model.points_xyz.shape == (n, 3) and model.points_xyz.dtype == np.float32
        assert model.colors_rgb.shape == (n, 3) and model.colors_rgb.dtype == np.uint8
        assert model.depth_values.shape == (n,) and model.pixel_xy.shape == (n, 2)
        assert model.mask.shape == scene[0].shape and model.mask.sum() == n
        assert model.mesh.faces.dtype == np.int32 and model.n_faces > n  # ~2 triangles per point
        np.testing.assert_allclose(model.points_xyz.mean(axis=0), 0.0, atol=1e-2)  # centred
        assert set(model.timings_ms) >= {"smooth", "mask", "convert", "mesh"}

    def test_depth_colours_are_lighter_when_nearer(self, scene):
        model = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, color_mode="depth"))
        gray = model.colors_rgb[:, 0].astype(float)
        assert (model.colors_rgb[:, 0] == model.colors_rgb[:, 1]).all()
        assert np.corrcoef(gray, model.points_xyz[:, 2])[0, 1] > 0.99
        assert np.corrcoef(model.depth_values, model.points_xyz[:, 2])[0, 1] > 0.99

    def test_photo_colours_come_from_the_pixels(self, scene):
        model = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, color_mode="photo"))
        cols, rows = model.pixel_xy.T
        np.testing.assert_array_equal(model.colors_rgb, scene[1][rows, cols])

    def test_texture_uvs_point_at_their_pixels(self, scene):
        model = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, texture=True, color_mode="photo"))
        mesh = model.mesh
        assert mesh.texture_rgb is scene[1] or np.array_equal(mesh.texture_rgb, scene[1])
        h, w = scene[0].shape
        cols = np.rint(mesh.uv[:, 0] * w - 0.5).astype(int)
        rows = np.rint((1.0 - mesh.uv[:, 1]) * h - 0.5).astype(int)
        np.testing.assert_array_equal(mesh.texture_rgb[rows, cols], mesh.colors_rgb)

    def test_stride_and_point_budget(self, scene):
        full = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, representation="points"))
        coarse = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, stride=3, representation="points"))
        assert coarse.stride == 3 and coarse.n_points == pytest.approx(full.n_points / 9, rel=0.1)
        assert (coarse.pixel_xy % 3 == 0).all()
        budget = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, max_points=2000))
        assert budget.n_points <= 2000 * 1.1 and budget.stride > 1
        assert full.mesh is None and full.n_faces == 0

    def test_centre_modes(self, scene):
        none = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, center="none"))
        nose = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, center="nose"))
        np.testing.assert_array_equal(none.origin_mm, 0.0)
        np.testing.assert_allclose(nose.landmark("nose_tip"), 0.0, atol=1e-4)
        np.testing.assert_allclose(nose.points_xyz + nose.origin_mm, none.points_xyz, atol=1e-3)

    def test_face_depth_source_and_lower_resolution_depth(self, scene):
        disp, image, face = scene
        fd = FaceDepth(disp, image, (0, 0, 480, 360), face, "test", (480, 360))
        params = ReconstructionParams(fov_deg=50.0, color_mode="photo")
        via_fd = reconstruct_face(fd, params)
        via_tuple = reconstruct_face(scene, params)
        np.testing.assert_array_equal(via_fd.points_xyz, via_tuple.points_xyz)
        # a half-resolution depth map with the full-size photo: same face, same scale
        half = reconstruct_face((disp[::2, ::2].copy(), image, face), params)
        assert half.mask.shape == (180, 240)
        eyes = np.linalg.norm(half.landmarks["right_eye"] - half.landmarks["left_eye"])
        assert eyes == pytest.approx(63.0, abs=0.1)
        assert np.ptp(half.points_xyz[:, 0]) == pytest.approx(np.ptp(via_tuple.points_xyz[:, 0]), rel=0.03)

    def test_edge_preserving_option_runs_and_differs(self, scene):
        a = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, smoothing_sigma=3.0))
        b = reconstruct_face(scene, ReconstructionParams(fov_deg=50.0, smoothing_sigma=3.0, edge_preserving=True))
        assert a.n_points > 0 and b.n_points > 0
        assert not np.array_equal(np.nan_to_num(a.depth_mm), np.nan_to_num(b.depth_mm))


class TestParams:
    def test_frozen_and_hashable(self):
        a = ReconstructionParams(smoothing_sigma=1.0)
        b = ReconstructionParams(smoothing_sigma=1.0)
        assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
        assert a.replace(smoothing_sigma=2.0) != a
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.smoothing_sigma = 3.0  # type: ignore[misc]

    @pytest.mark.parametrize(
        "changes",
        [
            {"smoothing_sigma": -1.0},
            {"depth_scale": 0.0},
            {"fov_deg": 0.5},
            {"stride": 0},
            {"color_mode": "rainbow"},
            {"representation": "voxels"},
            {"depth_kind": "disparity"},
            {"mask_mode": "magic"},
            {"max_points": 0},
            {"center": "chin"},
        ],
    )
    def test_invalid_values_are_rejected(self, changes):
        with pytest.raises(ValueError):
            ReconstructionParams(**changes)

    def test_bad_inputs(self):
        with pytest.raises(ValueError):
            reconstruct_face(np.zeros(10, np.float32))
        with pytest.raises(ValueError):
            reconstruct_face(np.full((10, 10), np.nan, np.float32))
        with pytest.raises(ValueError):
            reconstruct_face((np.ones((10, 10), np.float32), np.zeros((10, 10)), None))
