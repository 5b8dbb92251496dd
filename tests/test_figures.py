"""Figures from numpy arrays: typed arrays, palettes, caps, sizes (dashboard.figures)."""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from face3d_core import figures


def _points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32) * 50


def decode(spec: dict) -> np.ndarray:
    dtype = {"f4": np.float32, "u1": np.uint8, "u2": np.uint16, "i4": np.int32}[spec["dtype"]]
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)


def test_typed_array_roundtrip():
    values = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    spec = figures.typed_array(values)
    assert spec["dtype"] == "f4"
    np.testing.assert_array_equal(decode(spec), values)
    with pytest.raises(TypeError):
        figures.typed_array(np.array(["a"]))


def test_palette_maps_every_point_to_its_colour():
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(5000, 3), dtype=np.uint8)
    indices, colorscale = figures.palette_indices(colours)
    assert indices.dtype == np.uint8 and indices.shape == (5000,)
    assert len(colorscale) <= 256
    assert colorscale[0][0] == 0.0 and colorscale[-1][0] == 1.0
    assert set(np.unique(indices).tolist()) <= set(range(len(colorscale)))  # exactly on the stops
    palette = np.array([[int(c) for c in rgb[4:-1].split(",")] for _, rgb in colorscale])
    error = np.abs(palette[indices.astype(int)].astype(int) - colours.astype(int)).mean()
    assert error < 20


def test_few_colours_are_kept_exactly():
    colours = np.array([[10, 20, 30], [200, 100, 0]] * 50, dtype=np.uint8)
    indices, colorscale = figures.palette_indices(colours)
    assert {colorscale[int(i)][1] for i in indices} == {"rgb(10,20,30)", "rgb(200,100,0)"}


def test_point_cloud_uses_typed_arrays_and_is_capped():
    trace = figures.points_trace(_points(200_000), gray_values=np.linspace(0, 1, 200_000))
    assert len(decode(trace["x"])) == figures.MAX_DISPLAY_POINTS
    assert trace["marker"]["color"]["dtype"] == "u1"
    fig = figures.model3d_figure(trace)
    assert figures.figure_json_bytes(fig) < 3_000_000
    assert fig["layout"]["uirevision"] == fig["layout"]["scene"]["uirevision"] == "model3d"
    assert trace["hoverinfo"] == "skip"
    go.Figure(fig)  # a valid plotly figure


def test_gray_is_lighter_for_nearer():
    trace = figures.points_trace(_points(3), gray_values=np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(decode(trace["marker"]["color"]), [0, 128, 255])
    assert trace["marker"]["colorscale"] == figures.GRAY_SCALE


def test_photo_coloured_points_carry_no_colour_strings():
    colours = np.random.default_rng(0).integers(0, 256, size=(50_000, 3), dtype=np.uint8)
    fig = figures.model3d_figure(figures.points_trace(_points(50_000), colors_rgb=colours))
    marker = json.loads(json.dumps(fig))["data"][0]["marker"]
    assert set(marker["color"]) == {"dtype", "bdata"}
    assert figures.figure_json_bytes(fig) < 1_500_000


def test_mesh_photo_colours_are_per_triangle():
    verts = _points(300)
    tris = np.random.default_rng(2).integers(0, 300, size=(500, 3)).astype(np.int32)
    colours = np.random.default_rng(3).integers(0, 256, size=(300, 3), dtype=np.uint8)
    trace = figures.mesh_trace(verts, tris, colors_rgb=colours)
    assert trace["intensitymode"] == "cell" and len(decode(trace["intensity"])) == 500
    assert trace["i"]["dtype"] == "u2"  # small meshes send 16-bit indices
    gray = figures.mesh_trace(verts, tris, gray_values=np.linspace(0, 1, 300))
    assert gray["intensitymode"] == "vertex" and len(decode(gray["intensity"])) == 300
    go.Figure(figures.model3d_figure(gray))


def test_depth_figure_hover_and_size():
    depth = np.random.default_rng(0).random((1000, 800)).astype(np.float32)
    fig = figures.depth_figure(depth, "Grayscale")
    heat = fig.data[0]
    assert heat.z.shape == (320, 256)  # downsampled for display
    assert "depth" in heat.hovertemplate and heat.zmin == 0 and heat.zmax == 1
    assert tuple(fig.layout.yaxis.range) == (1000, 0) and tuple(fig.layout.xaxis.range) == (0, 800)  # y down
    assert figures.figure_json_bytes(fig) < 1_000_000
    assert heat.x[-1] == pytest.approx(800 - 800 / 256 / 2, rel=1e-3)  # hover in original pixels


def test_photo_and_depth_map_share_pixel_axes():
    """Side by side, the photo and its depth map are drawn the same size at the same place."""
    image = np.zeros((585, 660, 3), np.uint8)  # downsampled to 480 px for display, the depth map to 320 px
    photo = figures.image_figure(image)
    depth = figures.depth_figure(np.zeros((585, 660), np.float32))
    for axis in ("xaxis", "yaxis"):
        assert tuple(photo.layout[axis].range) == tuple(depth.layout[axis].range)
        assert photo.layout[axis].constrain == depth.layout[axis].constrain == "domain"
    assert photo.layout.margin == depth.layout.margin
    assert photo.layout.meta == depth.layout.meta == {"aspect_hw": round(585 / 660, 5)}
    pic = photo.data[0]  # the downsampled photo's pixels still cover 0..660 x 0..585
    assert pic.x0 - pic.dx / 2 == pytest.approx(0) and pic.x0 + (480 - 0.5) * pic.dx == pytest.approx(660)
    rows = depth.data[0].y
    assert rows[0] - (rows[1] - rows[0]) / 2 == pytest.approx(0, abs=1e-3)
    assert rows[-1] + (rows[1] - rows[0]) / 2 == pytest.approx(585, rel=1e-4)


def test_grayscale_depth_map_is_black_far_white_near():
    scale = go.Heatmap(colorscale=figures.DEPTH_COLORMAPS["Grayscale"]).colorscale
    assert scale[0] == (0.0, "rgb(0,0,0)") and scale[-1] == (1.0, "rgb(255,255,255)")


def test_compare_figure_has_one_scene_per_face_and_at_most_four():
    traces = [figures.points_trace(_points(1000, i)) for i in range(4)]
    fig = figures.compare_3d_figure(traces, ["a", "b", "c", "<d>"])
    layout = fig["layout"]
    scenes = sorted(k for k in layout if k.startswith("scene"))
    assert scenes == ["scene", "scene2", "scene3", "scene4"]
    assert [t["scene"] for t in fig["data"]] == scenes
    assert all(layout[s]["camera"] == layout["scene"]["camera"] for s in scenes)
    domains = [layout[s]["domain"] for s in scenes]
    assert all(0 <= d["x"][0] < d["x"][1] <= 1 and 0 <= d["y"][0] < d["y"][1] <= 1 for d in domains)
    assert "&lt;d&gt;" in json.dumps(layout["annotations"])
    go.Figure(fig)
    with pytest.raises(ValueError):
        figures.compare_3d_figure([figures.points_trace(_points(10))] * 5, list("abcde"))


def test_comparison_view_titles_say_face_and_model_in_the_scene_corner():
    """Two lines (face, model) inside each scene's bottom-left corner: never into the next scene, never under the
    mode bar (top right, always shown on a touch screen: it hid the titles of the top row on a phone)."""
    long = "a_very_long_photo_name_from_a_phone_camera.jpg"
    fig = figures.compare_3d_figure(
        [figures.points_trace(_points(10, i)) for i in range(2)], [f"{long} · DPT-Hybrid · bf16", "<b>.png · LeViT"]
    )
    first, second = fig["layout"]["annotations"]
    assert first["text"] == "a_very_long…e_camera.jpg<br>DPT-Hybrid · bf16" and len(figures.short_name(long)) == 24
    assert first["hovertext"] == f"{long} · DPT-Hybrid · bf16"  # the whole name on hover
    assert second["text"] == "&lt;b&gt;.png<br>LeViT"
    for note, key in ((first, "scene"), (second, "scene2")):
        domain = fig["layout"][key]["domain"]
        assert (note["x"], note["y"], note["xanchor"], note["yanchor"]) == (
            domain["x"][0],
            domain["y"][0],
            "left",
            "bottom",
        )
    assert figures.short_name("short.jpg") == "short.jpg"


def test_profiles_lie_side_by_side_or_one_above_the_other_on_a_phone():
    profile = (np.linspace(-1, 1, 5), np.linspace(0, 1, 5))
    wide = figures.profiles_figure(["a", "b"], [profile] * 2, [profile] * 2)
    phone = figures.profiles_figure(["a", "b"], [profile] * 2, [profile] * 2, stacked=True)
    assert wide.layout.xaxis.domain[1] < wide.layout.xaxis2.domain[0]  # beside
    assert phone.layout.yaxis2.domain[1] < phone.layout.yaxis.domain[0]  # below, full width
    assert phone.layout.xaxis.domain == phone.layout.xaxis2.domain == (0.0, 1.0)
    assert [t.name for t in phone.data if t.showlegend] == ["a", "b"]  # one legend entry per item
    assert (
        phone.layout.margin.t >= 60 > wide.layout.margin.t
    )  # a touch screen's mode bar (always shown) clears the title


def test_camera_presets_are_distinct():
    eyes = {tuple(p["eye"].values()) for p in figures.CAMERA_PRESETS.values()}
    assert len(eyes) == 3


def test_difference_figure_is_symmetric_about_zero_and_cropped():
    diff = np.full((20, 20), np.nan, dtype=np.float32)
    diff[5:15, 4:12] = np.linspace(-0.3, 0.1, 80, dtype=np.float32).reshape(10, 8)
    fig = figures.difference_figure(diff, "a", "b")
    assert fig.data[0].zmin == -fig.data[0].zmax and fig.data[0].zmid == 0
    assert np.asarray(fig.data[0].z).shape == (10, 8)


def _plotly_text(escaped: str) -> str:
    """What plotly.js shows for a title or legend text: its own entity decoding, read from its bundle."""
    import codecs
    import re
    from pathlib import Path

    import plotly

    bundle = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    table = re.search(r'\{mu:"[^}]*\}', bundle).group(0)
    named = {k: codecs.decode(v, "unicode_escape") for k, v in re.findall(r'(\w+):"((?:[^"\\]|\\.)*)"', table)}

    def one(match: re.Match) -> str:
        code = match.group(1)
        if code.startswith("#x"):
            return chr(int(code[2:], 16))
        if code.startswith("#"):
            return chr(int(code[1:]))
        return named.get(code, match.group(0))

    return re.sub(r"&(#\d+|#x[\da-fA-F]+|[a-z]+);", one, escaped)


@pytest.mark.parametrize("name", ['say "cheese".jpg', "bob's face.jpg", "a & b <i>x</i>.png", "<img src=x>"])
def test_user_text_is_escaped_once_plotly_shows_it_as_typed(name):
    """Plotly decodes &amp; &lt; &gt; but shows &quot; as it is: a name is escaped exactly once, for plotly."""
    shown = figures.plain(name)
    assert "<" not in shown and ">" not in shown  # no markup can start
    assert _plotly_text(shown) == name  # what the user sees is the file's name, not "&quot;"
    fig = figures.profiles_figure([name], [(np.zeros(3), np.zeros(3))], [(np.zeros(3), np.zeros(3))])
    assert _plotly_text(fig.data[0].name) == name


def test_profiles_escape_user_text():
    fig = figures.profiles_figure(
        ["<img src=x onerror=alert(1)>"], [(np.zeros(3), np.zeros(3))], [(np.zeros(3), np.zeros(3))]
    )
    assert "<img" not in fig.data[0].name and "&lt;img" in fig.data[0].name


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_compare_views_are_two_per_row_and_never_overlap(count):
    traces = [figures.points_trace(_points(100, i)) for i in range(count)]
    layout = figures.compare_3d_figure(traces, [f"f{i}" for i in range(count)])["layout"]
    boxes = [layout["scene" if i == 0 else f"scene{i + 1}"]["domain"] for i in range(count)]
    rows = {tuple(b["y"]) for b in boxes}
    assert len(rows) == (count + 1) // 2 and figures.compare_grid(count) == ((count + 1) // 2, min(count, 2))
    for i, a in enumerate(boxes):
        width = a["x"][1] - a["x"][0]
        assert width >= (0.98 if count == 1 else 0.48)  # each view takes its share of the card's width
        for b in boxes[i + 1 :]:
            apart_x = a["x"][1] <= b["x"][0] or b["x"][1] <= a["x"][0]
            apart_y = a["y"][1] <= b["y"][0] or b["y"][1] <= a["y"][0]
            assert apart_x or apart_y
    first_row = [b for b in boxes if b["y"][1] == 1.0]
    assert len(first_row) == min(count, 2)  # filled row by row from the top


def test_difference_map_colour_bar_sits_below_the_map():
    diff = np.linspace(-0.3, 0.3, 64 * 48, dtype=np.float32).reshape(64, 48)
    fig = figures.difference_figure(diff, "a", "b")
    bar = fig.data[0].colorbar
    assert bar.orientation == "h" and bar.yanchor == "top" and bar.y <= 0  # under the plot area, not beside it
    assert fig.layout.margin.b >= 48
