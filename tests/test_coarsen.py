"""Tests of face3d_core.coarsen: a light display mesh from a model's own refined lattice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from face3d_core.coarsen import coarser_mesh
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face


def _dome(size: int = 240) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return 1.0 + 2.0 * np.sqrt(
        np.clip(1.0 - ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (0.45 * size) ** 2, 0, None)
    )


@pytest.fixture(scope="module", params=[1, 2], ids=["stride1", "stride2"])
def model(request):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (480, 480, 3), dtype=np.uint8)
    params = ReconstructionParams(mask_mode="foreground", stride=request.param, color_mode="photo", smoothing_sigma=1.0)
    return reconstruct_face((_dome(480), image, None), params)


def test_within_budget_returns_the_models_own_mesh(model):
    assert coarser_mesh(model, model.n_faces) is model.mesh


@pytest.mark.parametrize("budget", [40_000, 10_000, 2_000])
def test_coarse_mesh_meets_the_budget_and_stays_near_it(model, budget):
    coarse = coarser_mesh(model, budget)
    assert model.n_faces > budget
    assert coarse.n_faces <= budget
    assert coarse.n_faces > 0.6 * budget  # a coarser grid, not a needlessly sparse one
    assert coarse.faces.max() < coarse.n_vertices


def test_coarse_vertices_are_points_of_the_model_with_their_colours(model):
    coarse = coarser_mesh(model, 5_000)
    # every coarse vertex is one of the model's (refined) points, with that point's colour
    distance, nearest = cKDTree(model.points_xyz).query(coarse.vertices_xyz)
    assert distance.max() < 1e-3  # mm
    np.testing.assert_array_equal(coarse.colors_rgb, model.colors_rgb[nearest])


def test_coarse_mesh_spans_the_same_surface(model):
    coarse = coarser_mesh(model, 5_000)
    full_lo, full_hi = model.mesh.vertices_xyz.min(axis=0), model.mesh.vertices_xyz.max(axis=0)
    lo, hi = coarse.vertices_xyz.min(axis=0), coarse.vertices_xyz.max(axis=0)
    step = np.abs(full_hi - full_lo) / 20  # the coarse grid loses at most a cell or so at the rim
    assert np.all(lo >= full_lo - 1e-3) and np.all(hi <= full_hi + 1e-3)
    assert np.all(lo <= full_lo + step) and np.all(hi >= full_hi - step)


def test_model_without_mesh_and_bad_budget():
    points_only = reconstruct_face(_dome(64), ReconstructionParams(mask_mode="none", representation="points"))
    assert coarser_mesh(points_only, 10) is None
    with pytest.raises(ValueError):
        coarser_mesh(points_only, 0)
