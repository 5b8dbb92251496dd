"""Plotly figures from numpy arrays: depth maps, 3D faces, profiles and difference maps.

Rules that keep figures small and fast (sizes and timings: ``benchmarks/ui_speed.py``, docs/performance.md):

* numpy arrays go to the browser as base64 typed arrays (the 3D figures are built as plain
  dicts with the typed arrays already encoded: no per-attribute validation on every slider
  move); colours are a numeric ``uint8`` array with a colorscale, never per-point colour strings;
* photo colours are quantised to a palette of at most 256 colours: the palette index is the
  numeric colour and the palette is the colorscale (exact, no interpolation);
* dense traces skip hover; point counts are capped for display;
* every figure carries a ``uirevision`` so the camera stays where the user left it.

User text (file names) is escaped before it goes into a figure: plotly renders a subset of
HTML in titles and legend entries.

Display frame of 3D figures: x to the viewer's right, y up, z towards the viewer (the nose
has the largest z), in millimetres.
"""

from __future__ import annotations

import base64
import functools
import html
import logging
from collections.abc import Sequence

import cv2
import numpy as np
import plotly.colors as plotly_colors
import plotly.graph_objects as go
import plotly.io as pio
from PIL import Image
from plotly.subplots import make_subplots

from face3d_core.geometry import nearness_from_z

logger = logging.getLogger(__name__)

#: Exact black-to-white scale (the same mapping as the 8-bit PNG download: 1 = nearest = white).
GRAY_SCALE = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]

#: Colour maps offered for the depth map: label -> plotly colorscale (low = far, high = near).
DEPTH_COLORMAPS: dict[str, str | list] = {
    "Grayscale": GRAY_SCALE,
    "Viridis": "viridis",
    "Inferno": "inferno",
    "Magma": "magma",
    "Turbo": "turbo",
    "Cividis": "cividis",
}
DEFAULT_COLORMAP = "Grayscale"

#: Colours of faces in comparison plots (colour-blind friendly, in order).
FACE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")

#: Camera presets of the 3D view (plotly scene cameras).
CAMERA_PRESETS: dict[str, dict] = {
    "front": {
        "eye": {"x": 0.0, "y": 0.0, "z": 1.9},
        "up": {"x": 0.0, "y": 1.0, "z": 0.0},
        "center": {"x": 0.0, "y": 0.0, "z": 0.0},
    },
    "side": {
        "eye": {"x": 1.9, "y": 0.0, "z": 0.25},
        "up": {"x": 0.0, "y": 1.0, "z": 0.0},
        "center": {"x": 0.0, "y": 0.0, "z": 0.0},
    },
    "top": {
        "eye": {"x": 0.0, "y": 1.9, "z": 0.35},
        "up": {"x": 0.0, "y": 0.0, "z": -1.0},
        "center": {"x": 0.0, "y": 0.0, "z": 0.0},
    },
}
DEFAULT_CAMERA = "front"

#: Display caps (keep a 3D figure well under 3 MB of JSON).
MAX_DISPLAY_POINTS = 80_000
MAX_DISPLAY_TRIANGLES = 80_000
MAX_DEPTH_SIDE = 320
MAX_IMAGE_SIDE = 480

SCENE_BG = "#20242b"
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}

_HIDDEN_AXIS = {"visible": False, "showgrid": False, "zeroline": False, "showticklabels": False, "showspikes": False}

#: Colours of the click-to-measure overlay (on the dark scene background).
MEASURE_POINT_COLOR = "#ffffff"
MEASURE_STRAIGHT_COLOR = "#4dd0e1"
MEASURE_PATH_COLOR = "#ffb000"


def plain(text: str) -> str:
    """Escape user text once for plotly titles, legends and labels (which render a subset of HTML).

    Only ``&``, ``<`` and ``>`` are escaped: plotly turns ``&amp;``, ``&lt;`` and ``&gt;`` back into
    text but shows ``&quot;`` and ``&#x27;`` as they are, and quotes start no markup once ``<`` is
    escaped (``a "b" <i>`` is shown as ``a "b" <i>``).
    """
    return html.escape(str(text), quote=False)


def _base_layout(height: int, **extra) -> dict:
    layout = {
        "height": height,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": FONT,
    }
    layout.update(extra)
    return layout


def _fit(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Return ``(height, width)`` scaled so the longer side is at most ``max_side``."""
    height, width = shape
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def depth_colormap_lut(colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """The colours :func:`depth_figure` gives a depth map, as a lookup table for pictures drawn without plotly.

    Entry ``i`` is the colour of the normalised depth ``i / 255`` (0 = farthest, 255 = nearest),
    sampled from the same colorscale the heat map uses, linearly between its stops as plotly does;
    an unknown name gives the default map's table.

    Args:
        colormap: A key of :data:`DEPTH_COLORMAPS`.

    Returns:
        ``(256, 3) uint8`` RGB, read-only.

    Example:
        >>> depth_colormap_lut("Grayscale")[[0, 255]].tolist()
        [[0, 0, 0], [255, 255, 255]]
    """
    return _colormap_lut(colormap if colormap in DEPTH_COLORMAPS else DEFAULT_COLORMAP)


@functools.lru_cache(maxsize=len(DEPTH_COLORMAPS))
def _colormap_lut(colormap: str) -> np.ndarray:
    scale = DEPTH_COLORMAPS[colormap]
    stops = plotly_colors.get_colorscale(scale) if isinstance(scale, str) else scale
    colours = plotly_colors.sample_colorscale(stops, np.linspace(0.0, 1.0, 256).tolist(), colortype="tuple")
    lut = np.clip(np.rint(np.asarray(colours, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def depth_colormap_gradient(colormap: str = DEFAULT_COLORMAP, stops: int = 9) -> str:
    """A CSS ``linear-gradient`` from far (left) to near (right) in a depth colour map (a legend bar).

    Example:
        >>> depth_colormap_gradient("Grayscale", stops=2)
        'linear-gradient(to right, rgb(0,0,0) 0%, rgb(255,255,255) 100%)'
    """
    lut = depth_colormap_lut(colormap)
    parts = []
    for k in range(stops):
        index = round(k * 255 / (stops - 1))
        r, g, b = (int(v) for v in lut[index])
        parts.append(f"rgb({r},{g},{b}) {round(100 * k / (stops - 1))}%")
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def encode_jpeg_data_url(image_rgb: np.ndarray, quality: int = 88) -> str:
    """Return a ``data:image/jpeg;base64,...`` URL of an RGB image."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - JPEG encoding of uint8 RGB does not fail
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


#: Margins of the photo and depth-map figures: the depth map's horizontal colour bar (with its
#: labels) fits in the bottom one, so plotly never shrinks the map to make room for it and the
#: photo beside it is drawn the same size (a page's box adds these to the picture's height).
PICTURE_MARGIN = {"l": 8, "r": 8, "t": 8, "b": 64}


def _pixel_axes(fig: go.Figure, width: int, height: int) -> None:
    """Hidden axes in the photo's pixels (x 0..W to the right, y 0..H down), square pixels.

    The photo and its depth map get the same axes, so side by side they are drawn the same size
    at the same place. ``layout.meta.aspect_hw`` (H / W) lets a page size the figure's box to the
    picture (``assets/face3d.js``).
    """
    fig.update_xaxes(visible=False, range=[0, width], constrain="domain")
    fig.update_yaxes(visible=False, range=[height, 0], scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_layout(meta={"aspect_hw": round(height / width, 5)})


def image_figure(image_rgb: np.ndarray, height: int = 400) -> go.Figure:
    """A photo as a figure (compressed JPEG inside, axes hidden, aspect kept), in the photo's pixels.

    Args:
        image_rgb: ``(H, W, 3) uint8`` photo; shown at most :data:`MAX_IMAGE_SIDE` pixels on its
            longer side, placed over ``0..W`` x ``0..H`` like :func:`depth_figure` places a depth map.
        height: Figure height in pixels (a page with a responsive graph sizes it instead).
    """
    full_h, full_w = image_rgb.shape[:2]
    h, w = _fit((full_h, full_w), MAX_IMAGE_SIDE)
    small = cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != (full_h, full_w) else image_rgb
    dx, dy = full_w / w, full_h / h
    fig = go.Figure(go.Image(source=encode_jpeg_data_url(small), x0=dx / 2, y0=dy / 2, dx=dx, dy=dy, hoverinfo="skip"))
    fig.update_layout(**_base_layout(height, uirevision="image"))
    fig.update_layout(margin=dict(PICTURE_MARGIN))  # the same box as the depth map
    _pixel_axes(fig, full_w, full_h)
    return fig


def depth_figure(
    depth_norm: np.ndarray, colormap: str = DEFAULT_COLORMAP, height: int = 400, *, max_side: int = MAX_DEPTH_SIDE
) -> go.Figure:
    """A normalised depth map (1 = nearest, shown lightest in grayscale) as a heat map with hover values.

    The colour bar lies horizontally below the map (in the bottom margin), never beside it.

    Args:
        depth_norm: ``(H, W) float`` in ``[0, 1]``, 1 = nearest; NaN = no data.
        colormap: A key of :data:`DEPTH_COLORMAPS`.
        height: Figure height in pixels (a page with a responsive graph sizes it instead).
        max_side: Longer side of the heat map in cells (larger maps are reduced).
    """
    depth = np.asarray(depth_norm, dtype=np.float32)
    h, w = _fit(depth.shape, max_side)
    if (h, w) != depth.shape:
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_AREA)
    scale_x = depth_norm.shape[1] / w
    scale_y = depth_norm.shape[0] / h
    xs = ((np.arange(w, dtype=np.float32) + 0.5) * scale_x).astype(np.float32)
    ys = ((np.arange(h, dtype=np.float32) + 0.5) * scale_y).astype(np.float32)
    colorscale = DEPTH_COLORMAPS.get(colormap, DEPTH_COLORMAPS[DEFAULT_COLORMAP])
    trace = go.Heatmap(
        z=depth,
        x=xs,
        y=ys,
        zmin=0.0,
        zmax=1.0,
        colorscale=colorscale,
        colorbar={
            "orientation": "h",
            "y": -0.02,
            "yanchor": "top",
            "x": 0.5,
            "len": 0.6,
            "thickness": 10,
            "tickvals": [0, 0.5, 1],
            "ticktext": ["far", "depth", "near"],
            "outlinewidth": 0,
        },
        hovertemplate="x %{x:.0f}, y %{y:.0f}<br>depth %{z:.3f} (1 = nearest)<extra></extra>",
    )
    fig = go.Figure(trace)
    fig.update_layout(**_base_layout(height, uirevision="depth"))
    fig.update_layout(margin=dict(PICTURE_MARGIN))  # the colour bar fits in the bottom margin
    _pixel_axes(fig, depth_norm.shape[1], depth_norm.shape[0])
    return fig


#: numpy dtype -> plotly.js typed-array code.
_TYPED_CODES = {
    "float32": "f4",
    "float64": "f8",
    "int32": "i4",
    "uint32": "u4",
    "int16": "i2",
    "uint16": "u2",
    "int8": "i1",
    "uint8": "u1",
}


def typed_array(values: np.ndarray) -> dict:
    """Encode a 1-D numpy array as a plotly.js typed-array spec ``{"dtype", "bdata"}`` (base64).

    The same wire format plotly >= 6 uses; building it here lets the 3D figures skip
    plotly's per-attribute validation on every slider move.
    """
    array = np.ascontiguousarray(values).reshape(-1)
    code = _TYPED_CODES.get(array.dtype.name)
    if code is None:
        raise TypeError(f"cannot send {array.dtype} as a typed array")
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {"dtype": code, "bdata": base64.b64encode(little.tobytes()).decode("ascii")}


def palette_indices(colors_rgb: np.ndarray, max_colors: int = 256) -> tuple[np.ndarray, list[list]]:
    """Quantise per-point colours to a palette for a numeric colour array + colorscale.

    Args:
        colors_rgb: ``(N, 3) uint8`` colours.
        max_colors: Palette size (at most 256).

    Returns:
        ``(indices, colorscale)``: ``(N,) uint8`` palette index per point (use with
        ``cmin=0``, ``cmax=len(palette) - 1``) and a plotly colorscale whose stops sit exactly
        at the indices, so every point gets its palette colour.
    """
    colors = np.ascontiguousarray(np.asarray(colors_rgb, dtype=np.uint8).reshape(-1, 3))
    if colors.shape[0] == 0:
        return np.zeros(0, dtype=np.uint8), [[0.0, "rgb(128,128,128)"], [1.0, "rgb(128,128,128)"]]
    image = Image.fromarray(colors.reshape(-1, 1, 3), "RGB")
    quantised = image.quantize(colors=max(2, min(max_colors, 256)), method=Image.Quantize.FASTOCTREE)
    indices = np.asarray(quantised, dtype=np.uint8).reshape(-1)
    palette = np.asarray(quantised.getpalette()[: 3 * 256], dtype=np.uint8).reshape(-1, 3)
    count = max(int(indices.max()) + 1, 2)
    palette = palette[:count]
    colorscale = [[i / (count - 1), f"rgb({r},{g},{b})"] for i, (r, g, b) in enumerate(palette.tolist())]
    return indices, colorscale


def gray_levels(values: np.ndarray) -> np.ndarray:
    """``[0, 1]`` values as ``uint8`` levels 0-255 (sent as one byte each, shown with :data:`GRAY_SCALE`)."""
    return np.rint(np.clip(np.nan_to_num(np.asarray(values, np.float32), nan=0.0), 0, 1) * 255).astype(np.uint8)


def _subsample(n: int, cap: int, seed: int = 0) -> np.ndarray | None:
    if n <= cap:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=cap, replace=False))


def _scene(camera: dict | None = None, uirevision: str | None = None, bg: str = SCENE_BG) -> dict:
    scene = {
        "xaxis": dict(_HIDDEN_AXIS),
        "yaxis": dict(_HIDDEN_AXIS),
        "zaxis": dict(_HIDDEN_AXIS),
        "aspectmode": "data",
        "bgcolor": bg,
        "dragmode": "orbit",
        "camera": dict(camera or CAMERA_PRESETS[DEFAULT_CAMERA]),
    }
    if uirevision is not None:
        scene["uirevision"] = uirevision
    return scene


def points_trace(
    points_xyz: np.ndarray,
    *,
    gray_values: np.ndarray | None = None,
    colors_rgb: np.ndarray | None = None,
    marker_size: float = 2.0,
    max_points: int = MAX_DISPLAY_POINTS,
    scene: str = "scene",
    name: str = "points",
    hoverinfo: str = "skip",
    symbol: str = "square",
) -> dict:
    """A point cloud trace (display frame), coloured by gray values or photo colours.

    Args:
        points_xyz: ``(N, 3) float`` points in the display frame (mm).
        gray_values: ``(N,) float`` in ``[0, 1]`` shown as grayscale (1 = white); default: the
            points' nearness from their z (:func:`face3d_core.geometry.nearness_from_z`).
        colors_rgb: ``(N, 3) uint8`` photo colours (used instead of gray when given).
        marker_size: Marker size in pixels.
        max_points: Random subsample above this many points.
        scene: Scene id for multi-scene figures.
        name: Trace name (escaped).
        hoverinfo: ``"skip"`` (no hover or click events: fastest) or ``"none"`` (no hover
            label, but click events for click-to-measure).
        symbol: Marker shape. ``"square"`` (default): WebGL draws each marker as a glyph, and a
            square has far fewer triangles than a circle, so a browser without a GPU draws the
            cloud in about half the time; at 2-3 pixels the two look the same.

    Returns:
        A plotly trace as a dict; arrays are base64 typed arrays (positions ``f4``, colours ``u1``).
    """
    pts = np.asarray(points_xyz, dtype=np.float32).reshape(-1, 3)
    keep = _subsample(pts.shape[0], max_points)
    if keep is not None:
        pts = pts[keep]
    marker: dict = {"size": marker_size, "symbol": symbol, "opacity": 1.0, "line": {"width": 0}}
    if colors_rgb is not None:
        cols = np.asarray(colors_rgb, dtype=np.uint8).reshape(-1, 3)
        if keep is not None:
            cols = cols[keep]
        indices, colorscale = palette_indices(cols)
        marker.update(color=typed_array(indices), colorscale=colorscale, cmin=0, cmax=max(1, len(colorscale) - 1))
    else:
        if gray_values is None:
            values = nearness_from_z(pts[:, 2])
        else:
            values = np.asarray(gray_values, dtype=np.float32).reshape(-1)
            if keep is not None:
                values = values[keep]
        marker.update(color=typed_array(gray_levels(values)), colorscale=GRAY_SCALE, cmin=0, cmax=255)
    return {
        "type": "scatter3d",
        "mode": "markers",
        "name": plain(name),
        "scene": scene,
        "x": typed_array(pts[:, 0]),
        "y": typed_array(pts[:, 1]),
        "z": typed_array(pts[:, 2]),
        "marker": marker,
        "hoverinfo": hoverinfo,
        "showlegend": False,
    }


def mesh_trace(
    vertices_xyz: np.ndarray,
    triangles: np.ndarray,
    *,
    gray_values: np.ndarray | None = None,
    colors_rgb: np.ndarray | None = None,
    max_triangles: int = MAX_DISPLAY_TRIANGLES,
    scene: str = "scene",
    hoverinfo: str = "skip",
) -> dict:
    """A triangle mesh trace (display frame) with lighting, as a dict with typed arrays.

    Grayscale uses per-vertex intensity (smoothly interpolated); photo colours use one palette
    colour per triangle (``intensitymode="cell"``), since interpolating palette indices would
    mix unrelated colours. Callers keep meshes under ``max_triangles`` (a coarser grid); beyond
    it triangles are dropped at random as a last resort. ``hoverinfo`` as in :func:`points_trace`.
    """
    verts = np.asarray(vertices_xyz, dtype=np.float32).reshape(-1, 3)
    tris = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    keep = _subsample(tris.shape[0], max_triangles)
    if keep is not None:
        tris = tris[keep]
    index_type = np.uint16 if verts.shape[0] <= np.iinfo(np.uint16).max else np.int32
    trace = {
        "type": "mesh3d",
        "scene": scene,
        "x": typed_array(verts[:, 0]),
        "y": typed_array(verts[:, 1]),
        "z": typed_array(verts[:, 2]),
        "i": typed_array(tris[:, 0].astype(index_type)),
        "j": typed_array(tris[:, 1].astype(index_type)),
        "k": typed_array(tris[:, 2].astype(index_type)),
        "hoverinfo": hoverinfo,
        "showscale": False,
        "flatshading": False,
        "lighting": {"ambient": 0.55, "diffuse": 0.75, "specular": 0.12, "roughness": 0.7, "fresnel": 0.1},
        "lightposition": {"x": 0, "y": 500, "z": 2000},
    }
    if colors_rgb is not None:
        cols = np.asarray(colors_rgb, dtype=np.uint8).reshape(-1, 3)
        face_cols = cols[tris].mean(axis=1).round().astype(np.uint8) if tris.size else cols[:0]
        indices, colorscale = palette_indices(face_cols)
        trace.update(
            intensity=typed_array(indices),
            intensitymode="cell",
            colorscale=colorscale,
            cmin=0,
            cmax=max(1, len(colorscale) - 1),
        )
        return trace
    if gray_values is None:
        gray_values = nearness_from_z(verts[:, 2])
    trace.update(
        intensity=typed_array(gray_levels(gray_values)), intensitymode="vertex", colorscale=GRAY_SCALE, cmin=0, cmax=255
    )
    return trace


def model3d_figure(
    trace: dict,
    *,
    camera: dict | None = None,
    uirevision: str = "model3d",
    height: int = 560,
    overlays: Sequence[dict] = (),
) -> dict:
    """One 3D view (a figure dict); the camera is kept across updates while ``uirevision`` is the same.

    ``overlays`` are drawn over the model (e.g. :func:`measure_overlay`), after it in ``data``.
    """
    layout = _base_layout(height, uirevision=uirevision)
    layout["scene"] = _scene(camera, uirevision)
    return {"data": [trace, *overlays], "layout": layout}


def _xyz(points_xyz: np.ndarray | None) -> dict:
    pts = np.zeros((0, 3), np.float32) if points_xyz is None else np.asarray(points_xyz, np.float32).reshape(-1, 3)
    return {"x": pts[:, 0].tolist(), "y": pts[:, 1].tolist(), "z": pts[:, 2].tolist()}


def measure_points_trace(points_xyz: np.ndarray | None = None) -> dict:
    """The picked points of click-to-measure (up to two, ``(K, 3)`` mm; None: none yet)."""
    return {
        "type": "scatter3d",
        "mode": "markers",
        "name": "picked points",
        **_xyz(points_xyz),
        "marker": {"size": 7, "color": MEASURE_POINT_COLOR, "line": {"width": 2, "color": "#000000"}},
        "hoverinfo": "skip",
        "showlegend": False,
    }


def measure_line_trace(points_xyz: np.ndarray | None = None, *, surface: bool = False) -> dict:
    """A measured distance: the straight segment (dashed) or the path along the surface (``surface=True``).

    Args:
        points_xyz: ``(K, 3)`` polyline in mm (None: nothing drawn yet).
        surface: Draw it as the surface path (solid, amber) instead of the straight line.
    """
    line = (
        {"width": 7, "color": MEASURE_PATH_COLOR}
        if surface
        else {"width": 4, "color": MEASURE_STRAIGHT_COLOR, "dash": "dash"}
    )
    return {
        "type": "scatter3d",
        "mode": "lines",
        "name": "along the surface" if surface else "straight line",
        **_xyz(points_xyz),
        "line": line,
        "hoverinfo": "skip",
        "showlegend": False,
    }


#: Indices of the click-to-measure traces in a 3D figure built with ``overlays=measure_overlay()``.
MEASURE_POINTS_INDEX, MEASURE_STRAIGHT_INDEX, MEASURE_PATH_INDEX = 1, 2, 3


def measure_overlay(
    points_xyz: np.ndarray | None = None, straight_xyz: np.ndarray | None = None, path_xyz: np.ndarray | None = None
) -> list[dict]:
    """The three click-to-measure traces (picked points, straight line, surface path), in that order.

    A 3D view always carries them (empty until the user picks points), so a click only
    patches their coordinates (:data:`MEASURE_POINTS_INDEX` ...) and never resends the model.
    """
    return [
        measure_points_trace(points_xyz),
        measure_line_trace(straight_xyz),
        measure_line_trace(path_xyz, surface=True),
    ]


#: Scenes per row of :func:`compare_3d_figure`.
COMPARE_COLUMNS = 2


def compare_grid(count: int) -> tuple[int, int]:
    """``(rows, columns)`` of ``count`` comparison views: two per row (one alone in a row of its own)."""
    cols = min(count, COMPARE_COLUMNS)
    return -(-count // cols), cols


def _grid_domains(count: int) -> list[tuple[list[float], list[float]]]:
    """Paper domains ``(x, y)`` of ``count`` scenes, :data:`COMPARE_COLUMNS` per row, filled row by row."""
    rows, cols = compare_grid(count)
    gap_x, gap_y = 0.02, 0.08 / rows
    domains = []
    for index in range(count):
        row, col = divmod(index, cols)
        x0 = col / cols + (gap_x / 2 if col else 0)
        x1 = (col + 1) / cols - (gap_x / 2 if col < cols - 1 else 0)
        y1 = 1 - row / rows - (gap_y / 2 if row else 0)
        y0 = 1 - (row + 1) / rows + (gap_y / 2 if row < rows - 1 else 0)
        domains.append(([round(x0, 4), round(x1, 4)], [round(y0, 4), round(y1, 4)]))
    return domains


#: Longest face name in a comparison view's title (the middle is cut; the full name shows on hover).
TITLE_CHARS = 24


def short_name(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (``"fr_obama_o…portrait.jpg"``)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head) :]}"


def scene_title(name: str) -> str:
    """A comparison view's title: the face (cut to :data:`TITLE_CHARS`), then the model on a line of its own.

    ``name`` is ``"face · model[ · precision]"`` (:func:`face3d_core.compare.item_name`); each part is escaped.
    """
    face, _, network = str(name).partition(" · ")
    lines = [plain(short_name(face))] + ([plain(network)] if network else [])
    return "<br>".join(lines)


def compare_3d_figure(
    traces: Sequence[dict],
    names: Sequence[str],
    *,
    camera: dict | None = None,
    uirevision: str = "compare",
    height: int = 420,
) -> dict:
    """Several faces side by side, one 3D scene each, two per row (at most 4: each scene is a WebGL context).

    Args:
        traces: One trace per face (see :func:`points_trace`).
        names: The items' names (``"face · model"``, escaped here), shown in each scene's corner.
        camera: The camera every scene starts with.
        uirevision: Keeps the cameras while it stays the same.
        height: Height of one row in pixels (a page may instead size the figure itself).
    """
    count = len(traces)
    if not 1 <= count <= 4:
        raise ValueError("compare_3d_figure shows 1 to 4 faces")
    rows, _ = compare_grid(count)
    layout = _base_layout(height * rows, uirevision=uirevision)
    layout["margin"] = {"l": 4, "r": 4, "t": 4, "b": 4}
    annotations, data = [], []
    for index, ((x_domain, y_domain), trace, name) in enumerate(zip(_grid_domains(count), traces, names, strict=True)):
        key = "scene" if index == 0 else f"scene{index + 1}"
        layout[key] = {**_scene(camera, uirevision), "domain": {"x": x_domain, "y": y_domain}}
        data.append({**trace, "scene": key})
        annotations.append(  # inside the scene's bottom-left corner: never over the next scene, whatever the
            {  # size, nor under the mode bar (top right of the figure; always shown on a touch screen)
                "text": scene_title(name),
                "hovertext": plain(name),
                "x": x_domain[0],
                "y": y_domain[0],
                "xref": "paper",
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "bottom",
                "align": "left",
                "showarrow": False,
                "font": {"size": 12, "color": "#f8f9fa"},
                "bgcolor": "rgba(32, 36, 43, 0.8)",
                "borderpad": 3,
            }
        )
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


def profiles_figure(
    names: Sequence[str],
    nose_profiles: Sequence[tuple[np.ndarray, np.ndarray]],
    eye_profiles: Sequence[tuple[np.ndarray, np.ndarray]],
    height: int = 360,
    *,
    stacked: bool = False,
) -> go.Figure:
    """Overlaid depth profiles: vertical through the nose (left) and horizontal through the eyes (right).

    Args:
        names: Item names (escaped here).
        nose_profiles: ``(positions, values)`` per item; positions in inter-ocular distances.
        eye_profiles: The same for the horizontal profile.
        height: Figure height.
        stacked: The eyes' profile below the nose's instead of beside it (a phone's narrow screen).
    """
    rows, cols = (2, 1) if stacked else (1, 2)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        horizontal_spacing=0.08,
        vertical_spacing=0.2,
        subplot_titles=("Vertical, through the nose", "Horizontal, through the eyes"),
    )
    cells = ((1, 1), (2, 1)) if stacked else ((1, 1), (1, 2))
    for index, name in enumerate(names):
        color = FACE_COLORS[index % len(FACE_COLORS)]
        label = plain(name)
        for (row, col), (positions, values) in zip(cells, (nose_profiles[index], eye_profiles[index]), strict=True):
            fig.add_trace(
                go.Scatter(
                    x=np.asarray(positions, dtype=np.float32),
                    y=np.asarray(values, dtype=np.float32),
                    mode="lines",
                    line={"color": color, "width": 2},
                    name=label,
                    legendgroup=label,
                    showlegend=(row, col) == (1, 1),
                    connectgaps=False,
                    hovertemplate=f"{label}<br>position %{{x:.2f}} IOD<br>depth %{{y:.2f}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
    fig.update_layout(
        **_base_layout(height, uirevision="profiles"),
        legend={"orientation": "h", "y": -0.12 if stacked else -0.2, "x": 0.0},
        hovermode="closest",
    )
    # stacked (a phone, a touch screen): the mode bar is always shown; room above the first title keeps it clear
    fig.update_layout(margin={"l": 50, "r": 10, "t": 64 if stacked else 30, "b": 40})
    (nose_row, nose_col), (eyes_row, eyes_col) = cells
    fig.update_xaxes(title_text="forehead ← nose tip → chin (IOD)", row=nose_row, col=nose_col, zeroline=True)
    fig.update_xaxes(title_text="image left ← centre → right (IOD)", row=eyes_row, col=eyes_col, zeroline=True)
    fig.update_yaxes(title_text="normalised depth (1 = nearest)", row=1, col=1)
    if stacked:
        fig.update_yaxes(title_text="normalised depth", row=2, col=1)
    fig.update_xaxes(gridcolor="#e9ecef")
    fig.update_yaxes(gridcolor="#e9ecef", rangemode="normal")
    return fig


def difference_figure(diff: np.ndarray, name_a: str, name_b: str, height: int = 360) -> go.Figure:
    """Heat map of ``a - b`` in the canonical frame (red: a nearer, blue: b nearer)."""
    values = np.asarray(diff, dtype=np.float32)
    rows = np.flatnonzero(np.isfinite(values).any(axis=1))
    cols = np.flatnonzero(np.isfinite(values).any(axis=0))
    if rows.size and cols.size:  # show only the compared region, as large as the figure allows
        values = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    finite = values[np.isfinite(values)]
    limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    limit = max(limit, 0.05)
    a, b = plain(name_a), plain(name_b)
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=-limit,
            zmax=limit,
            zmid=0.0,
            colorscale="RdBu",
            reversescale=True,
            # below the map, like the depth map's: a bar beside it would reach into whatever is next to it
            colorbar={
                "orientation": "h",
                "y": -0.02,
                "yanchor": "top",
                "x": 0.5,
                "len": 0.7,
                "thickness": 10,
                "title": {"text": "1st − 2nd (red: 1st nearer)", "side": "top"},
                "outlinewidth": 0,
            },
            hovertemplate=f"{a} − {b}: %{{z:.2f}}<extra></extra>",
        )
    )
    fig.update_layout(**_base_layout(height, uirevision="diff"))
    fig.update_layout(margin={"l": 8, "r": 8, "t": 8, "b": 64})  # room for the colour bar below
    fig.update_layout(meta={"aspect_hw": round(values.shape[0] / max(values.shape[1], 1), 5)})
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return fig


def warm_up() -> None:
    """Build one small figure of each kind once, so plotly's lazy imports do not slow the first user."""
    points = np.zeros((3, 3), np.float32)
    points[:, 0] = (0, 1, 0)
    points[:, 1] = (0, 0, 1)
    tris = np.array([[0, 1, 2]], np.int32)
    colours = np.full((3, 3), 128, np.uint8)
    pio.json.to_json_plotly(model3d_figure(points_trace(points, colors_rgb=colours)))
    pio.json.to_json_plotly(model3d_figure(mesh_trace(points, tris, gray_values=np.ones(3, np.float32))))
    depth_figure(np.zeros((4, 4), np.float32)).to_json()
    image_figure(np.zeros((4, 4, 3), np.uint8)).to_json()


def figure_json_bytes(fig: go.Figure | dict) -> int:
    """Size of a figure as Dash sends it (plotly JSON, typed arrays base64), in bytes."""
    return len(pio.json.to_json_plotly(fig).encode("utf-8"))
