"""Figures from numpy arrays: typed arrays, palettes, caps, sizes (dashboard.figures)."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard import figures


def _points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32) * 50


def test_palette_maps_every_point_to_its_colour_exactly():
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(5000, 3), dtype=np.uint8)
    colours[:10] = [255, 0, 0]
    indices, colorscale = figures.palette_indices(colours)
    assert indices.dtype == np.float32 and indices.shape == (5000,)
    assert len(colorscale) <= 256
    stops = [s for s, _ in colorscale]
    assert stops[0] == 0.0 and stops[-1] == 1.0
    # every index sits exactly on a stop, so no colour is interpolated
    count = len(colorscale)
    assert set(np.unique(indices).tolist()) <= set(range(count))
    # the palette colour of a point is close to its true colour
    palette = np.array([[int(c) for c in rgb[4:-1].split(",")] for _, rgb in colorscale])
    error = np.abs(palette[indices.astype(int)].astype(int) - colours.astype(int)).mean()
    assert error < 20


def test_few_colours_are_kept_exactly():
    colours = np.array([[10, 20, 30], [200, 100, 0]] * 50, dtype=np.uint8)
    indices, colorscale = figures.palette_indices(colours)
    used = {colorscale[int(i)][1] for i in indices}
    assert used == {"rgb(10,20,30)", "rgb(200,100,0)"}


def test_point_cloud_uses_typed_arrays_and_is_capped():
    trace = figures.points_trace(_points(200_000), gray_values=np.linspace(0, 1, 200_000))
    assert len(trace.x) == figures.MAX_DISPLAY_POINTS
    fig = figures.model3d_figure(trace)
    text = fig.to_json()
    assert '"bdata"' in text  # base64 typed arrays, not lists of numbers
    assert '"dtype":"f4"' in text.replace(" ", "")
    assert figures.figure_json_bytes(fig) < 3_000_000
    assert fig.layout.uirevision == fig.layout.scene.uirevision == "model3d"
    assert fig.data[0].hoverinfo == "skip"


def test_photo_coloured_points_carry_no_colour_strings():
    colours = np.random.default_rng(0).integers(0, 256, size=(50_000, 3), dtype=np.uint8)
    fig = figures.model3d_figure(figures.points_trace(_points(50_000), colors_rgb=colours))
    marker = json.loads(fig.to_json())["data"][0]["marker"]
    assert isinstance(marker["color"], dict) and "bdata" in marker["color"]
    assert figures.figure_json_bytes(fig) < 2_000_000


def test_mesh_photo_colours_are_per_triangle():
    verts = _points(300)
    tris = np.random.default_rng(2).integers(0, 300, size=(500, 3)).astype(np.int32)
    colours = np.random.default_rng(3).integers(0, 256, size=(300, 3), dtype=np.uint8)
    trace = figures.mesh_trace(verts, tris, colors_rgb=colours)
    assert trace.intensitymode == "cell" and len(trace.intensity) == 500
    gray = figures.mesh_trace(verts, tris, gray_values=np.linspace(0, 1, 300))
    assert gray.intensitymode == "vertex" and len(gray.intensity) == 300


def test_depth_figure_hover_and_size():
    depth = np.random.default_rng(0).random((1000, 800)).astype(np.float32)
    fig = figures.depth_figure(depth, "Grayscale")
    heat = fig.data[0]
    assert heat.z.shape == (320, 256)  # downsampled for display
    assert "depth" in heat.hovertemplate and heat.zmin == 0 and heat.zmax == 1
    assert fig.layout.yaxis.autorange == "reversed"
    assert figures.figure_json_bytes(fig) < 1_000_000
    # x/y hover coordinates stay in the original pixel frame
    assert heat.x[-1] == pytest.approx(800 - 800 / 256 / 2, rel=1e-3)


def test_grayscale_is_lighter_for_nearer():
    scale = go.Heatmap(colorscale=figures.DEPTH_COLORMAPS["Grayscale"]).colorscale
    assert scale[0] == (0.0, "rgb(0,0,0)") and scale[-1] == (1.0, "rgb(255,255,255)")


def test_compare_figure_has_one_scene_per_face_and_at_most_four():
    traces = [figures.points_trace(_points(1000, i)) for i in range(4)]
    fig = figures.compare_3d_figure(traces, ["a", "b", "c", "<d>"])
    layout = fig.layout.to_plotly_json()
    scenes = [k for k in layout if k.startswith("scene")]
    assert sorted(scenes) == ["scene", "scene2", "scene3", "scene4"]
    assert {fig.data[i].scene for i in range(4)} == {"scene", "scene2", "scene3", "scene4"}
    assert all(layout[s]["camera"] == layout["scene"]["camera"] for s in scenes)
    assert "&lt;d&gt;" in json.dumps(layout["annotations"])
    with pytest.raises(ValueError):
        figures.compare_3d_figure([figures.points_trace(_points(10))] * 5, list("abcde"))


def test_camera_presets_are_distinct():
    eyes = {tuple(p["eye"].values()) for p in figures.CAMERA_PRESETS.values()}
    assert len(eyes) == 3


def test_difference_figure_is_symmetric_about_zero():
    diff = np.linspace(-0.3, 0.1, 100, dtype=np.float32).reshape(10, 10)
    diff[0, 0] = np.nan
    fig = figures.difference_figure(diff, "a", "b")
    assert fig.data[0].zmin == -fig.data[0].zmax and fig.data[0].zmid == 0
