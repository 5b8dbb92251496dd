"""Click to measure: straight and surface distances on surfaces with known geodesics."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.geodesic import mesh_graph, surface_distance
from face3d_core.geometry import Intrinsics
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
from face3d_core.surface import DepthSurface, lifted_off_surface, nearest_surface_point
from tests.test_cli_mesh import sphere_depth

FOV = 60.0
METRIC = ReconstructionParams(depth_kind="metric", fov_deg=FOV, smoothing_sigma=0, center="none")


def rays(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    intr = Intrinsics.from_fov(w, h, FOV)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy


def cylinder_depth(h=240, w=320, radius=50.0, center_xz=(5.0, 300.0)) -> np.ndarray:
    """Depth of a vertical cylinder (axis along the image's vertical), NaN where a ray misses it."""
    dx, _ = rays(h, w)
    x0, z0 = center_xz
    # (t dx - x0)^2 + (t - z0)^2 = r^2, nearest root
    a = dx * dx + 1
    b = -2 * (dx * x0 + z0)
    c = x0 * x0 + z0 * z0 - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where(disc > 0, t, np.nan).astype(np.float32)


def plane_depth(h=240, w=320) -> np.ndarray:
    """A plane tilted 40 degrees about the vertical axis, 400 mm in front of the camera."""
    dx, dy = rays(h, w)
    normal = np.array([np.sin(np.radians(40)), 0.0, np.cos(np.radians(40))])
    # points t * (dx, dy, 1) (camera looking along +z here) with normal . p = 400
    return (400.0 / (normal[0] * dx + normal[1] * dy + normal[2])).astype(np.float32)


def model_of(depth, stride=1, **changes):
    return reconstruct_face(np.where(depth > 0, depth, np.nan), METRIC.replace(stride=stride, **changes))


def vertex_pairs(model, n, seed, min_mm=10.0):
    rng = np.random.default_rng(seed)
    v = model.mesh.vertices_xyz.astype(np.float64)
    pairs = []
    while len(pairs) < n:
        i, j = rng.integers(0, len(v), 2)
        if np.linalg.norm(v[i] - v[j]) > min_mm:
            pairs.append((v[i], v[j]))
    return pairs


@pytest.mark.parametrize("stride", [1, 3])
def test_sphere_great_circles(stride):
    radius, center = 60.0, np.array([10.0, -5.0, 400.0])
    model = model_of(sphere_depth(center=tuple(center), radius=radius), stride)
    center_out = np.array([center[0], -center[1], -center[2]])  # output frame: Y up, Z towards the viewer
    for a, b in vertex_pairs(model, 6, seed=stride):
        ua, ub = (a - center_out) / radius, (b - center_out) / radius
        truth = radius * np.arccos(np.clip(ua @ ub, -1, 1))
        result = surface_distance(model, a, b)
        assert result.straight_mm == pytest.approx(np.linalg.norm(a - b), rel=1e-6)
        assert result.surface_mm == pytest.approx(truth, rel=2e-3)
        assert result.graph_mm >= result.surface_mm - 1e-6
        assert result.graph_mm < 1.2 * truth
        # the path runs on the sphere, from a to b
        assert np.abs(np.linalg.norm(result.path_xyz - center_out, axis=1) - radius).max() < 0.05 * stride
        assert np.allclose(result.path_xyz[0], a, atol=1e-4) and np.allclose(result.path_xyz[-1], b, atol=1e-4)


def test_cylinder_helix():
    """On a cylinder the geodesic is a helix: sqrt((r dtheta)^2 + dy^2), not the chord."""
    radius, x0, z0 = 50.0, 5.0, 300.0
    model = model_of(cylinder_depth(radius=radius, center_xz=(x0, z0)))
    axis = np.array([x0, 0.0, -z0])
    for a, b in vertex_pairs(model, 6, seed=3, min_mm=20.0):
        ta = np.arctan2(a[0] - axis[0], a[2] - axis[2])
        tb = np.arctan2(b[0] - axis[0], b[2] - axis[2])
        truth = np.hypot(radius * (ta - tb), a[1] - b[1])
        result = surface_distance(model, a, b)
        assert result.surface_mm == pytest.approx(truth, rel=2e-3)
        assert result.straight_mm < truth or truth - result.straight_mm < 1e-6


def test_plane_geodesic_is_the_straight_line():
    model = model_of(plane_depth())
    for a, b in vertex_pairs(model, 5, seed=5, min_mm=30.0):
        result = surface_distance(model, a, b)
        assert result.surface_mm == pytest.approx(result.straight_mm, rel=1e-3)
        # without the refinement: the graph path is longer, but not by more than 10 %
        raw = surface_distance(model, a, b, refine=False)
        assert result.straight_mm <= raw.surface_mm < 1.1 * result.straight_mm


def test_path_goes_around_a_hole():
    depth = plane_depth()
    depth[80:160, 150:170] = np.nan  # a slot across the straight line
    model = model_of(depth, fill_holes=False)
    v = model.mesh.vertices_xyz.astype(np.float64)
    intr = model.intrinsics
    # one vertex left of the slot, one right of it, on the same row
    pixel = np.stack([intr.cx + intr.fx * v[:, 0] / -v[:, 2], intr.cy - intr.fy * v[:, 1] / -v[:, 2]], axis=1)
    left = np.argmin(np.hypot(pixel[:, 0] - 130, pixel[:, 1] - 120))
    right = np.argmin(np.hypot(pixel[:, 0] - 190, pixel[:, 1] - 120))
    result = surface_distance(model, v[left], v[right])
    assert result.surface_mm > 1.5 * result.straight_mm
    # on a plane the shortest way runs straight to a corner of the slot, along it, and on: the
    # slot's edge lies between the last valid pixel and half a pixel beyond it
    surface = DepthSurface(model, strict=False)

    def via(corners):
        pts = surface.points(np.array([pixel[left], *corners, pixel[right]]))
        return np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()

    assert 0.995 * via([[149.5, 79.5], [169.5, 79.5]]) < result.surface_mm < via([[149, 79], [170, 79]])
    assert result.surface_mm <= result.graph_mm
    uv = np.stack(
        [
            intr.cx + intr.fx * result.path_xyz[:, 0] / -result.path_xyz[:, 2],
            intr.cy - intr.fy * result.path_xyz[:, 1] / -result.path_xyz[:, 2],
        ],
        axis=1,
    )
    inside_slot = (uv[:, 0] > 150.5) & (uv[:, 0] < 168.5) & (uv[:, 1] > 80.5) & (uv[:, 1] < 158.5)
    assert not inside_slot.any()


def test_graph_is_cached_and_errors():
    depth = sphere_depth()
    model = model_of(depth)
    a, b = vertex_pairs(model, 1, seed=0)[0]
    first = surface_distance(model, a, b)
    again = surface_distance(model, a, b)
    assert first.timings_ms["graph"] > 0 and again.timings_ms["graph"] == 0.0
    assert mesh_graph(model.mesh) is mesh_graph(model.mesh)
    assert again.surface_mm == first.surface_mm
    # two separate pieces
    split = depth.copy()
    split[:, 150:170] = 0.0
    two = model_of(split)
    v = two.mesh.vertices_xyz
    with pytest.raises(ValueError, match="separate"):
        surface_distance(two, v[np.argmin(v[:, 0])], v[np.argmax(v[:, 0])])
    points_only = reconstruct_face(np.where(depth > 0, depth, np.nan), METRIC.replace(representation="points"))
    with pytest.raises(ValueError, match="mesh"):
        surface_distance(points_only, a, b)


def test_surface_normals_of_a_tilted_plane():
    model = model_of(plane_depth())
    surface = DepthSurface(model)
    h, w = model.depth_shape
    uv = np.array([[w / 2, h / 2], [w / 4, h / 3], [3 * w / 4, 2 * h / 3]])
    normals = surface.normals(uv)
    # the plane's normal (tilted 40 degrees about the vertical), towards the viewer, in the
    # output frame (X right, Y up, Z towards the viewer)
    expected = np.array([-np.sin(np.radians(40)), 0.0, np.cos(np.radians(40))])
    assert np.allclose(normals, expected, atol=1e-4)
    assert np.isnan(surface.normals(np.array([[-50.0, -50.0]]))).all()  # off the surface


def test_a_click_snaps_to_the_nearest_vertex_and_marks_lift_along_the_normal():
    """Snap and lift (the click-to-measure marks) on a tilted plane: known vertex, known normal."""
    model = model_of(plane_depth())
    vertices = model.mesh.vertices_xyz.astype(np.float64)
    target = vertices[1234]
    snapped = nearest_surface_point(model, target + [0.01, -0.01, 0.02])
    np.testing.assert_allclose(snapped, target, atol=1e-4)
    lifted = lifted_off_surface(model, np.stack([target, vertices[4321]]), 2.0)
    normal = np.array([-np.sin(np.radians(40)), 0.0, np.cos(np.radians(40))])
    np.testing.assert_allclose(lifted - np.stack([target, vertices[4321]]), 2.0 * np.stack([normal, normal]), atol=1e-3)
    far = np.array([[1e4, 1e4, 0.0]])  # off the surface: no normal, left where it is
    np.testing.assert_array_equal(lifted_off_surface(model, far, 2.0), far)
