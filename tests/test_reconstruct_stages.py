"""Each stage of face3d_core.reconstruct alone, on known answers: planes, spheres, masks, steps."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.faces import LANDMARK_NAMES, Face
from face3d_core.geometry import MEAN_IPD_MM, Intrinsics
from face3d_core.masks import ellipse_mask, face_ellipse
from face3d_core.reconstruct import (
    DepthConversion,
    ReconstructionParams,
    backproject_landmarks,
    clean_depth,
    fit_depth_conversion,
    frame_source,
    landmark_depth,
    lattice_points,
    lattice_stride,
    model_mask,
    output_origin,
    point_colors,
    reconstruct_face,
    sample_lattice,
    smooth_in_mask,
    solid_pixels,
    surface_mesh,
)


def plane_rel(h: int = 60, w: int = 80) -> np.ndarray:
    """``(h, w) float32`` relative inverse depth of a tilted plane: ``1 + 0.01 u + 0.005 v``."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return (1.0 + 0.01 * u + 0.005 * v).astype(np.float32)


def sphere_scene(h: int = 120, w: int = 160, wall: float = 1000.0):
    """Metric depth (mm) of a sphere (radius 100 mm, 500 mm away) in front of a wall, and its disc."""
    intr = Intrinsics.from_fov(w, h, 40.0)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    center = np.array([0.0, 0.0, 500.0])
    a = (rays * rays).sum(-1)
    b = -2.0 * (rays @ center)
    disc = b * b - 4 * a * (center @ center - 100.0**2)
    hit = disc >= 0
    z = np.where(hit, (-b - np.sqrt(np.clip(disc, 0, None))) / (2 * a), wall)
    return z.astype(np.float32), hit, intr


def face_at(eyes_xy, nose_xy=None, mouth_y: float | None = None) -> Face:
    """A face with the given eye positions (the other landmarks placed below them)."""
    (x0, y0), (x1, y1) = eyes_xy
    ipd = float(np.hypot(x1 - x0, y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nose = nose_xy if nose_xy is not None else (cx, cy + 0.5 * ipd)
    my = mouth_y if mouth_y is not None else cy + ipd
    marks = [[x0, y0], [x1, y1], list(nose), [cx - 0.4 * ipd, my], [cx + 0.4 * ipd, my]]
    box = (cx - ipd, cy - 0.8 * ipd, 2 * ipd, 2.2 * ipd)
    return Face(box, np.array(marks, np.float32), 0.9)


class TestLattice:
    def test_photo_face_and_camera_move_to_depth_pixels(self):
        """A half-resolution depth map of a crop: the photo's centre lands where the camera says."""
        depth = plane_rel(60, 80)
        photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3)).astype(np.uint8)
        face = face_at([(60.0, 50.0), (100.0, 50.0)])
        frame = frame_source(
            (depth, photo, face), fov_deg=60.0, crop_box_xyxy=(40, 20, 200, 140), image_size_wh=(320, 240)
        )
        assert frame.image_rgb.shape == (60, 80, 3) and frame.face is not None
        # crop pixel p -> depth pixel (p + 0.5) / 2 - 0.5
        np.testing.assert_allclose(frame.face.landmarks_xy, (face.landmarks_xy + 0.5) / 2 - 0.5, atol=1e-5)
        whole = Intrinsics.from_fov(320, 240, 60.0)
        intr = frame.intrinsics
        assert (intr.width, intr.height) == (80, 60)
        assert intr.fx == pytest.approx(whole.fx / 2)
        # the whole photo's principal point (159.5, 119.5) is crop pixel (119.5, 99.5)
        assert (intr.cx, intr.cy) == pytest.approx(((119.5 + 0.5) / 2 - 0.5, (99.5 + 0.5) / 2 - 0.5))
        assert frame.crop_box_xyxy == (40, 20, 200, 140) and frame.image_size_wh == (320, 240)

    def test_shapes_are_checked(self):
        depth = plane_rel(10, 12)
        assert frame_source(depth[None]).depth.shape == (10, 12)
        with pytest.raises(ValueError):
            frame_source(np.zeros(10, np.float32))
        with pytest.raises(ValueError):
            frame_source(np.zeros((1, 12), np.float32))
        with pytest.raises(ValueError):
            frame_source((depth, np.zeros((10, 12), np.uint8), None))

    def test_lattice_pixel_is_every_stride_th_pixel(self):
        depth = np.arange(60 * 80, dtype=np.float32).reshape(60, 80)
        face = face_at([(30.0, 24.0), (51.0, 24.0)])
        frame = frame_source((depth, None, face), fov_deg=50.0)
        lat = sample_lattice(frame, 3)
        np.testing.assert_array_equal(lat.depth, depth[::3, ::3])
        assert lat.depth.flags.c_contiguous and lat.stride == 3
        np.testing.assert_allclose(lat.face.landmarks_xy, face.landmarks_xy / 3, atol=1e-5)
        # lattice pixel (i, j) sees the same ray as depth pixel (3 i, 3 j)
        full, intr = frame.intrinsics, lat.intrinsics
        assert (intr.width, intr.height) == (27, 20)
        assert (7 - intr.cx) / intr.fx == pytest.approx((21 - full.cx) / full.fx)
        assert (5 - intr.cy) / intr.fy == pytest.approx((15 - full.cy) / full.fy)

    def test_stride_meets_the_point_budget(self):
        depth = plane_rel(200, 200)
        assert lattice_stride(depth, None, stride=2) == 2
        assert lattice_stride(depth, None, max_points=40_000) == 1
        assert lattice_stride(depth, None, max_points=10_000) == 2  # 40k valid pixels / 2^2
        assert lattice_stride(depth, None, max_points=4_000) == 4  # ceil(sqrt(10))
        half = depth.copy()
        half[:, :100] = np.nan
        assert lattice_stride(half, None, max_points=5_000) == 2  # only the 20k valid pixels count
        # with a face, only the pixels inside its ellipse count
        face = face_at([(80.0, 90.0), (120.0, 90.0)])
        center, axes, angle = face_ellipse(face)
        inside = int(ellipse_mask(depth.shape, center, axes, angle).sum())
        assert inside < 30_000
        budget = inside // 4 + 1
        assert lattice_stride(depth, face, max_points=budget) == 2
        # without the face mask all 40k pixels count
        assert lattice_stride(depth, face, max_points=budget, mask_mode="none") == np.ceil(np.sqrt(40_000 / budget))


class TestClean:
    def test_a_spike_becomes_the_plane_and_nothing_else_changes(self):
        depth = plane_rel()
        spiky = depth.copy()
        spiky[20, 30] = 5.0
        before = spiky.copy()
        cleaned = clean_depth(spiky)
        np.testing.assert_array_equal(spiky, before)  # the input is never written
        assert cleaned[20, 30] == pytest.approx(depth[20, 30], abs=2e-3)
        others = np.ones(depth.shape, bool)
        others[20, 30] = False
        np.testing.assert_array_equal(cleaned[others], depth[others])
        kept = clean_depth(spiky, remove_outliers=False)
        assert kept[20, 30] == 5.0

    def test_interior_holes_fill_and_missing_border_stays_empty(self):
        """Metric metres: a dropout inside becomes the plane, a missing band at the border stays missing."""
        metres = 0.5 + plane_rel() * 0.01
        holey = metres.copy()
        holey[30:34, 40:44] = np.nan
        holey[:, :5] = 0.0  # the sensor saw nothing there (<= 0 = missing)
        cleaned = clean_depth(holey, metric=True, depth_unit_mm=1000.0, remove_outliers=False)
        assert np.isnan(cleaned[:, :5]).all()
        np.testing.assert_allclose(cleaned[30:34, 40:44], metres[30:34, 40:44] * 1000.0, rtol=1e-4)
        np.testing.assert_allclose(cleaned[:, 5:][~np.isnan(holey[:, 5:])], holey[:, 5:][~np.isnan(holey[:, 5:])] * 1e3)
        unfilled = clean_depth(holey, metric=True, depth_unit_mm=1000.0, remove_outliers=False, fill_holes=False)
        assert np.isnan(unfilled[30:34, 40:44]).all()

    def test_nothing_valid_is_an_error(self):
        with pytest.raises(ValueError):
            clean_depth(np.full((5, 5), np.nan, np.float32))
        with pytest.raises(ValueError):
            clean_depth(np.zeros((5, 5), np.float32), metric=True)


class TestMask:
    def test_foreground_is_the_sphere_in_front_of_the_wall(self):
        depth_mm, disc, _ = sphere_scene()
        for depth, metric in ((depth_mm, True), ((3.0e4 / depth_mm).astype(np.float32), False)):
            mask = model_mask(depth, None, metric=metric, mask_mode="foreground")
            assert (mask & disc).sum() / (mask | disc).sum() > 0.95
            # "face" without a face falls back to the foreground
            np.testing.assert_array_equal(model_mask(depth, None, metric=metric, mask_mode="face"), mask)

    def test_face_mask_keeps_the_head_and_drops_the_wall(self):
        depth_mm, disc, intr = sphere_scene()
        eyes = [(intr.cx - 12.0, intr.cy - 8.0), (intr.cx + 12.0, intr.cy - 8.0)]
        face = face_at(eyes, mouth_y=intr.cy + 14.0)
        mask = model_mask((3.0e4 / depth_mm).astype(np.float32), face)  # auto: face
        assert not (mask & ~disc).any()
        assert mask[int(intr.cy), int(intr.cx)]

    def test_none_is_every_finite_pixel_and_an_empty_mask_falls_back(self):
        depth = plane_rel()
        depth[5:9, 5:9] = np.nan
        np.testing.assert_array_equal(model_mask(depth, None), np.isfinite(depth))
        far_away = face_at([(900.0, 900.0), (930.0, 900.0)])  # its ellipse misses the map
        np.testing.assert_array_equal(model_mask(depth, far_away, mask_mode="face"), np.isfinite(depth))


class TestSmooth:
    def test_a_plane_stays_the_plane_inside_and_nan_outside(self):
        depth = plane_rel()
        mask = np.zeros(depth.shape, bool)
        mask[10:50, 10:70] = True
        smooth = smooth_in_mask(depth, mask, sigma=2.0)
        assert np.isnan(smooth[~mask]).all()
        inner = (slice(17, 43), slice(17, 63))  # more than 3 sigma from the mask's edge
        np.testing.assert_allclose(smooth[inner], depth[inner], rtol=1e-5)

    def test_no_smoothing_is_the_masked_input(self):
        depth = plane_rel()
        mask = np.ones(depth.shape, bool)
        assert smooth_in_mask(depth, mask, sigma=0.0) is depth
        mask[:, :10] = False
        out = smooth_in_mask(depth, mask, sigma=0.0)
        np.testing.assert_array_equal(out[mask], depth[mask])
        assert np.isnan(out[~mask]).all()

    def test_edge_preserving_keeps_a_step(self):
        step = np.where(np.arange(80)[None, :] < 40, 1.0, 2.0).astype(np.float32).repeat(60, axis=0)
        mask = np.ones(step.shape, bool)
        bilateral = smooth_in_mask(step, mask, sigma=3.0, edge_preserving=True)
        gaussian = smooth_in_mask(step, mask, sigma=3.0)
        np.testing.assert_allclose(bilateral[:, 38], 1.0, atol=0.01)
        np.testing.assert_allclose(bilateral[:, 41], 2.0, atol=0.01)
        assert (gaussian[:, 38] > 1.2).all() and (gaussian[:, 41] < 1.8).all()


class TestDepthConversion:
    def test_percentile_anchors_get_the_relief(self):
        depth_rel = np.tile(np.linspace(0.0, 1.0, 101, dtype=np.float32), (50, 1))
        mask = np.ones(depth_rel.shape, bool)
        conv = fit_depth_conversion(depth_rel, mask, Intrinsics.from_fov(101, 50, 50.0), relief_mm=80.0)
        assert conv.scale_source == "assumed" and conv.z_near == 500.0
        assert (conv.d_lo, conv.d_hi) == pytest.approx((0.02, 0.98), abs=1e-6)
        z = conv.to_mm(np.array([conv.d_hi, conv.d_lo], np.float32))
        np.testing.assert_allclose(z, [500.0, 580.0], rtol=1e-5)
        affine = DepthConversion("assumed", conv.d_lo, conv.d_hi, 500.0, 80.0, "affine")
        assert affine.to_mm(np.array([0.5], np.float32))[0] == pytest.approx(540.0, rel=1e-5)

    def test_the_anchors_come_from_the_mask(self):
        depth_rel = np.tile(np.linspace(0.0, 1.0, 101, dtype=np.float32), (50, 1))
        mask = np.zeros(depth_rel.shape, bool)
        mask[:, 50:] = True  # values 0.5 to 1
        conv = fit_depth_conversion(depth_rel, mask, Intrinsics.from_fov(101, 50, 50.0))
        assert (conv.d_lo, conv.d_hi) == pytest.approx((0.51, 0.99), abs=1e-6)

    def test_eyes_set_the_millimetre_scale(self):
        """A flat map is a plane; the solved distance puts the eyes 63 mm apart."""
        depth_rel = np.full((100, 120), 3.0, np.float32)
        intr = Intrinsics.from_fov(120, 100, 50.0)
        face = face_at([(45.0, 40.0), (75.0, 40.0)])
        marks = landmark_depth(face, depth_rel, depth_rel)
        np.testing.assert_allclose(marks, 3.0)
        conv = fit_depth_conversion(depth_rel, np.ones((100, 120), bool), intr, face=face, landmarks_depth_rel=marks)
        assert conv.scale_source == "eyes"
        eyes = backproject_landmarks(face, conv.to_mm(marks), intr)[:2]
        assert np.linalg.norm(eyes[0] - eyes[1]) == pytest.approx(MEAN_IPD_MM, abs=1e-3)
        # no finite depth at the eyes: the nominal distance
        blind = fit_depth_conversion(
            depth_rel, np.ones((100, 120), bool), intr, face=face, landmarks_depth_rel=marks * np.nan
        )
        assert blind.scale_source == "assumed"

    def test_landmarks_outside_the_mask_use_the_unsmoothed_depth(self):
        clean = plane_rel()
        smooth = np.full(clean.shape, np.nan, np.float32)
        smooth[:, 40:] = 7.0
        face = face_at([(20.0, 30.0), (50.0, 30.0)])
        marks = landmark_depth(face, smooth, clean)
        assert marks[0] == pytest.approx(1.0 + 0.01 * 20 + 0.005 * 30, abs=1e-5)  # outside: the clean plane
        assert marks[1] == pytest.approx(7.0)
        assert landmark_depth(None, smooth, clean) is None

    def test_metric_input_is_unchanged(self):
        depth = plane_rel()
        assert DepthConversion("metric").to_mm(depth) is depth


class TestSolidPixels:
    def test_the_step_between_two_planes_is_dropped(self):
        depth = np.where(np.arange(40)[None, :] < 20, 500.0, 800.0).astype(np.float32).repeat(30, axis=0)
        mask = np.ones(depth.shape, bool)
        keep, window = solid_pixels(depth, mask, focal_px=500.0)
        assert window == (0, 30, 0, 40)
        assert not keep[:, 19:21].any()  # both sides of the 300 mm jump (slope 300 per 1 mm footprint)
        assert keep[:, :19].all() and keep[:, 21:].all()
        kept_all, _ = solid_pixels(depth, mask, focal_px=500.0, remove_flying=False)
        assert kept_all.all()

    def test_window_is_the_box_of_the_mask(self):
        depth = np.full((30, 40), 500.0, np.float32)
        depth[12, 8] = -3.0
        mask = np.zeros(depth.shape, bool)
        mask[10:20, 5:30] = True
        keep, window = solid_pixels(depth, mask, focal_px=500.0, drop_nonpositive=True, remove_flying=False)
        assert window == (10, 20, 5, 30)
        assert not keep[12, 8] and keep.sum() == mask.sum() - 1
        empty, none = solid_pixels(depth, np.zeros(depth.shape, bool), focal_px=500.0)
        assert none == (0, 0, 0, 0) and not empty.any()


class TestPoints:
    def test_plane_points_are_the_pinhole_back_projection(self):
        intr = Intrinsics(100.0, 100.0, 19.5, 14.5, 40, 30)
        depth = np.full((30, 40), 500.0, np.float32)
        keep = np.zeros(depth.shape, bool)
        keep[10:20, 5:30] = True
        pts = lattice_points(depth, keep, (10, 20, 5, 30), intr, stride=2)
        assert pts.grid_xyz.shape == (10, 25, 3) and pts.points_xyz.shape == (250, 3)
        assert pts.rows.min() == 10 and pts.cols.min() == 5
        np.testing.assert_array_equal(pts.pixel_xy, np.stack([pts.cols * 2, pts.rows * 2], axis=1))
        expected = np.stack([(pts.cols - 19.5) * 5.0, (14.5 - pts.rows) * 5.0, np.full(250, -500.0)], axis=1)
        np.testing.assert_allclose(pts.points_xyz, expected, rtol=1e-6)

    def test_landmarks_and_origin(self):
        intr = Intrinsics(100.0, 100.0, 50.0, 40.0, 101, 81)
        face = face_at([(40.0, 40.0), (60.0, 40.0)], nose_xy=(50.0, 40.0))
        marks = backproject_landmarks(face, np.full(5, 500.0), intr)
        np.testing.assert_allclose(marks[:3], [[-50.0, 0.0, -500.0], [50.0, 0.0, -500.0], [0.0, 0.0, -500.0]])
        assert backproject_landmarks(face, np.array([500.0, np.nan, 500.0, 500.0, 500.0]), intr) is None
        points = np.array([[0.0, 0.0, -500.0], [10.0, 20.0, -520.0]], np.float32)
        np.testing.assert_allclose(output_origin(points, marks, "centroid"), [5.0, 10.0, -510.0])
        np.testing.assert_allclose(output_origin(points, marks, "nose"), marks[LANDMARK_NAMES.index("nose_tip")])
        np.testing.assert_array_equal(output_origin(points, marks, "none"), np.zeros(3))
        np.testing.assert_array_equal(output_origin(points[:0], None, "centroid"), np.zeros(3))
        np.testing.assert_array_equal(output_origin(points, None, "nose"), np.zeros(3))

    def test_depth_colours_go_from_dark_far_to_white_near(self):
        distance = np.linspace(500.0, 600.0, 101)
        points = np.stack([np.zeros(101), np.zeros(101), -distance], axis=1).astype(np.float32)
        nearness, colors = point_colors(points)
        assert nearness[0] == 1.0 and nearness[-1] == 0.0 and (np.diff(nearness) <= 0).all()
        assert tuple(colors[0]) == (255, 255, 255) and tuple(colors[-1]) == (40, 40, 40)
        photo = np.random.default_rng(1).integers(0, 256, (10, 20, 3)).astype(np.uint8)
        rows, cols = np.arange(101) % 10, np.arange(101) % 20
        _, photo_colors = point_colors(points, color_mode="photo", image_rgb=photo, rows=rows, cols=cols)
        np.testing.assert_array_equal(photo_colors, photo[rows, cols])
        _, no_photo = point_colors(points, color_mode="photo")
        np.testing.assert_array_equal(no_photo, colors)


class TestMesh:
    @staticmethod
    def lattice(depth: np.ndarray, stride: int = 1):
        h, w = depth.shape
        intr = Intrinsics(100.0, 100.0, (w - 1) / 2, (h - 1) / 2, w, h)
        keep, window = solid_pixels(depth, np.ones(depth.shape, bool), intr.focal_px, remove_flying=False)
        return lattice_points(depth, keep, window, intr, stride), window, intr

    def test_a_plane_is_two_triangles_per_grid_cell(self):
        depth = np.full((5, 6), 500.0, np.float32)
        pts, window, intr = self.lattice(depth)
        colors = np.full((30, 3), 200, np.uint8)
        origin = np.array([1.0, 2.0, -500.0], np.float32)
        mesh = surface_mesh(pts, depth, window, intr.focal_px, origin, colors)
        assert mesh.n_faces == 2 * 4 * 5 and mesh.vertices_xyz.shape == (30, 3)
        np.testing.assert_allclose(mesh.vertices_xyz, pts.points_xyz - origin)
        np.testing.assert_allclose(mesh.normals, np.tile([0.0, 0.0, 1.0], (30, 1)), atol=1e-6)  # facing the viewer

    def test_no_triangle_bridges_a_depth_step(self):
        depth = np.where(np.arange(6)[None, :] < 3, 500.0, 900.0).astype(np.float32).repeat(5, axis=0)
        pts, window, intr = self.lattice(depth)
        mesh = surface_mesh(pts, depth, window, intr.focal_px, np.zeros(3, np.float32), np.zeros((30, 3), np.uint8))
        assert mesh.n_faces == 2 * 2 * 4 * 2  # two 3x5 planes of 2x4 cells each
        assert np.ptp(mesh.vertices_xyz[mesh.faces][:, :, 2], axis=1).max() == 0.0

    def test_texture_uvs_are_the_pixel_centres(self):
        depth = np.full((4, 5), 500.0, np.float32)
        pts, window, intr = self.lattice(depth, stride=2)
        texture = np.zeros((8, 10, 3), np.uint8)  # the photo at the depth map's full size
        mesh = surface_mesh(
            pts, depth, window, intr.focal_px, np.zeros(3, np.float32), np.zeros((20, 3), np.uint8), texture_rgb=texture
        )
        expected = np.stack([(pts.pixel_xy[:, 0] + 0.5) / 10, 1.0 - (pts.pixel_xy[:, 1] + 0.5) / 8], axis=1)
        np.testing.assert_allclose(mesh.uv, expected, rtol=1e-6)
        assert mesh.texture_rgb is texture


@pytest.mark.parametrize("metric", [False, True])
def test_reconstruct_face_never_writes_the_callers_depth(metric):
    depth, _, _ = sphere_scene()
    if not metric:
        depth = (3.0e4 / depth).astype(np.float32)
    depth[40:44, 70:74] = np.nan
    depth[10, 10] = np.inf  # missing too: becomes NaN in the stages' own copy only
    depth[60, 80] *= 1.5
    before = depth.copy()
    model = reconstruct_face(depth, ReconstructionParams(depth_kind="metric" if metric else "inverse", fov_deg=40.0))
    assert model.n_points > 0
    np.testing.assert_array_equal(depth, before)
