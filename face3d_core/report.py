"""A report to share: one self-contained HTML file with the faces, their 3D models and measurements.

:func:`build_report` turns :class:`ReportFace` values (and, for several faces, a
:class:`~face3d_core.compare.ComparisonResult`) into one HTML page that opens offline, in any
current browser, from a file or an e-mail attachment:

* per face: the photo crop (JPEG), the depth map (heat map, hover for values), the
  interactive 3D model (a light mesh with the photo's colours, the measured points and
  distances drawn on it) and the measurement table (value, 1-sigma uncertainty, between which
  points, notes; the eye distance marked as the scale reference when the scale is assumed);
* for a comparison (faces, or one face under several depth networks): the measurements side by
  side with each column's face and network, the depth profiles through the nose and the eyes,
  and the difference map of two of the items with its numbers.

The figures are the dashboard's (:mod:`face3d_core.figures`); no Dash is needed. Plotly's
JavaScript (4.8 MB as shipped with plotly.py) is embedded **once**, gzip-compressed and
base64-encoded (2 MB), and unpacked by the browser's own ``DecompressionStream`` (Chrome and
Edge 80+, Firefox 113+, Safari 16.4+); ``compress_js=False`` embeds it as plain text instead
(works in older browsers, 2.8 MB more). Every figure is a JSON block (typed arrays in base64)
drawn by ``Plotly.newPlot``; nothing is fetched from the network.

All user text (file names, titles) is HTML-escaped; figure JSON is escaped so it can never
close its ``<script>`` element.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import plotly.io as pio

from face3d_core import __version__, figures
from face3d_core.camera import CameraFov
from face3d_core.coarsen import coarser_mesh
from face3d_core.compare import ComparisonResult, PairComparison
from face3d_core.depthmap import normalize_depth
from face3d_core.geometry import nearness_from_z
from face3d_core.measure import (
    MEASUREMENTS,
    POINT_LABELS,
    FaceMeasurements,
    between_text,
    length_text,
    pose_text,
    sigma_text,
    value_text,
)
from face3d_core.reconstruct import FaceModel3D

logger = logging.getLogger(__name__)

#: Triangles of a report's 3D model (a light mesh of the same surface: about 0.5 MB per face).
REPORT_TRIANGLES = 30_000
#: Longer side of a report's depth heat map, in cells (about 0.2 MB per face).
REPORT_DEPTH_SIDE = 200
#: Longer side of the photo crop in a report, in pixels.
REPORT_IMAGE_SIDE = 360
#: Height of the report's figures, in pixels.
FIGURE_HEIGHT = 340

#: What every report says about millimetres from a photo (the scale is assumed there).
RELATIVE_DEPTH_NOTE = (
    "From a single photo the network gives relative depth only: the millimetres come from assuming "
    "the eyes are 63 mm apart (the adult mean; people differ by about 3.8 mm). How deep the face is "
    "comes from its own symmetry when the head is turned (a turned face is only symmetric at its true "
    "depth), else from typical adult proportions. Distances across the face are therefore proportions "
    "in plausible millimetres, not a person's true size, and distances along the viewing direction "
    "(nose protrusion) are the least certain. Points are found on the 3D surface in the face's own "
    "frame, so the head's pose does not change them; what the camera cannot see is refused, and a "
    "left-right pair whose far side is hidden is measured on the near side and mirrored. ± is one "
    "standard deviation of all this; where the detector put the eyes is not included."
)
METRIC_DEPTH_NOTE = (
    "The depth came in millimetres (a depth sensor or a scan): sizes are measured in the face's own "
    "frame, with the field of view, the depth map's resolution and (for a mirrored pair) the face's "
    "asymmetry as the remaining uncertainty. What the camera cannot see is refused. ± is one "
    "standard deviation; where the detector put the eyes is not included."
)


@dataclass(frozen=True)
class ReportFace:
    """One face of a report.

    Attributes:
        name: Display name (the photo's file name; escaped when written).
        image_rgb: ``(h, w, 3) uint8`` the photo crop the depth map covers.
        depth_norm: ``(h, w) float`` depth map in ``[0, 1]``, 1 = nearest (see :func:`depth_nearness`).
        model: The reconstructed 3D face (mm).
        measurements: Its measurements, or None when it could not be measured.
        fov: The field of view used and where it came from.
        depth_model: Title of the depth network, with the precision where it is not exact (empty
            for a given depth map).
        note: Why there are no measurements, or anything else a reader must know.
    """

    name: str
    image_rgb: np.ndarray
    depth_norm: np.ndarray
    model: FaceModel3D
    measurements: FaceMeasurements | None = None
    fov: CameraFov | None = None
    depth_model: str = ""
    note: str = ""


def depth_nearness(depth: np.ndarray, kind: str = "inverse") -> np.ndarray:
    """A depth map as ``(H, W) float32`` nearness in ``[0, 1]`` (1 = nearest) for :attr:`ReportFace.depth_norm`.

    Args:
        depth: ``(H, W)`` relative inverse depth (``kind="inverse"``: larger = nearer) or
            metric depth along the camera axis (``kind="metric"``: smaller = nearer).
        kind: ``"inverse"`` or ``"metric"``.
    """
    values = np.asarray(depth, dtype=np.float32)
    return normalize_depth(-values if kind == "metric" else values)


# --------------------------------------------------------------------------------------------
# Text of the tables (also used by the dashboard)
# --------------------------------------------------------------------------------------------


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def reference_text(result: FaceMeasurements) -> str:
    """The words that mark the scale reference, e.g. ``"scale reference: assumed 63 mm"``."""
    return f"scale reference: assumed {result['eye_distance'].value_mm:.0f} mm (adult mean), not measured"


def scale_note(result: FaceMeasurements | None) -> str:
    """The honest note under a measurement table (relative or metric depth)."""
    if result is not None and result.scale_source == "metric":
        return METRIC_DEPTH_NOTE
    note = RELATIVE_DEPTH_NOTE
    if result is not None and result.relief.method != "metric":
        note += f" Here: {result.relief.describe()}."
    return note


def side_by_side_rows(results: Sequence[FaceMeasurements | None]) -> list[tuple[str, list[str]]]:
    """Rows ``(label, one cell per face)`` of the measurements of several faces, e.g. ``"44 ± 3"``.

    The first row is each face's head pose. A face that could not be measured gets ``"–"``; a
    refused value, ``"refused"``; a mirrored one, ``"44 ± 3 (mirrored)"``; the eye distance of an
    assumed scale, ``"63 (reference)"``.
    """
    rows = [("Head pose (yaw / pitch)", [_pose_cell(r) for r in results])]
    for name, label, _a, _b in MEASUREMENTS:
        cells = []
        for result in results:
            if result is None:
                cells.append("–")
                continue
            m = result[name]
            if m.reference:
                cells.append(f"{m.value_mm:.0f} (reference)")
            elif m.refused or not _finite(m.value_mm):
                cells.append("refused")
            else:
                sigma = f"{m.sigma_mm:.0f}" if m.sigma_mm >= 1.0 else f"{m.sigma_mm:.1f}"
                cells.append(
                    f"{length_text(m.value_mm, m.sigma_mm)} ± {sigma}"
                    + (" (mirrored)" if m.status == "mirrored" else "")
                )
        rows.append((f"{label} (mm)", cells))
    return rows


def _pose_cell(result: FaceMeasurements | None) -> str:
    if result is None or result.pose is None:
        return "–"
    return f"{result.pose.yaw_deg:.0f}° / {result.pose.pitch_deg:.0f}°"


def refusal_notes(results: Sequence[tuple[str, FaceMeasurements | None]]) -> list[str]:
    """One line per refused or mirrored value of several faces, e.g. ``"b.jpg, Nose width: ... hidden ..."``."""
    lines = []
    for name, result in results:
        if result is None:
            continue
        if result.refusal:
            lines.append(f"{name}: nothing measured ({result.refusal})")
            continue
        for m in result.measurements:
            if m.refused or m.status == "mirrored":
                lines.append(f"{name}, {m.label}: {'refused, ' if m.refused else ''}{m.note}")
    return lines


def pair_metric_rows(pair: PairComparison) -> list[tuple[str, str]]:
    """The numbers comparing two items as ``(label, value)`` rows.

    Normalised depth to 2 decimals (1 % of a face's depth range: the depth maps of one face under
    two networks differ by more than that), the correlation to 2 and the common area in whole percent.
    """
    m = pair.metrics
    a, b = pair.names

    def fmt(value: float | None) -> str:
        return f"{value:.2f}" if _finite(value) else "–"

    return [
        ("RMS difference", fmt(m.rms_difference)),
        ("Mean absolute difference", fmt(m.mean_abs_difference)),
        ("Largest difference (99th percentile)", fmt(m.max_abs_difference)),
        ("Correlation of the depth maps", fmt(m.correlation)),
        ("Nose prominence: " + a, fmt(m.nose_prominence_a)),
        ("Nose prominence: " + b, fmt(m.nose_prominence_b)),
        ("Common face area", f"{100 * m.overlap:.0f} %"),
    ]


def alignment_notes(result: ComparisonResult) -> list[str]:
    """How each compared face was aligned, e.g. ``"b.jpg: head turned 20° to the right, compared as if frontal"``."""
    lines = []
    for name, face in zip(result.names, result.aligned, strict=True):
        if face.pose is not None:
            lines.append(f"{name}: head {face.pose.describe()}, compared as if it faced the camera")
        elif face.note:
            lines.append(f"{name}: {face.note}")
    return lines


PAIR_METRICS_NOTE = (
    "Each face is seen as if it faced the camera (pose-normalised in 3D), its depth in normalised units (its "
    "depth range = 1). Nose prominence: nose tip minus the eyes. Red in the map: the first face is "
    "nearer there; blue: the second; empty where a camera did not see the face."
)


def fov_text(fov: CameraFov | None) -> str:
    """The field of view in words, e.g. ``"FOV 63° from EXIF (35 mm equivalent 26 mm)"``."""
    if fov is None:
        return ""
    if fov.source == "given":
        return f"FOV {fov.fov_deg:.0f}° (set by you)"
    if fov.source == "default":
        return f"FOV {fov.fov_deg:.0f}° (default: no focal length in the photo's EXIF)"
    return f"FOV {fov.fov_deg:.0f}° from EXIF ({fov.detail})"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _measured_overlay(result: FaceMeasurements) -> list[dict]:
    """Markers on the measured points and one segment per measurement, for a report's 3D view."""
    found = [p for p in result.points.points.values() if p.found]
    traces = []
    if found:
        xyz = result.display_xyz(np.array([p.xyz for p in found])).astype(np.float32)
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "x": xyz[:, 0].tolist(),
                "y": xyz[:, 1].tolist(),
                "z": xyz[:, 2].tolist(),
                "text": [figures.plain(POINT_LABELS.get(p.name, p.name)) for p in found],
                "hoverinfo": "text",
                "marker": {"size": 4, "color": figures.MEASURE_POINT_COLOR, "line": {"width": 1, "color": "#000"}},
                "showlegend": False,
            }
        )
    segments: list[list[float | None]] = [[], [], []]
    for m in result.measurements:
        if m.refused or m.ends_xyz is None or m.to_point == "face_plane":
            continue
        a, b = result.display_xyz(m.ends_xyz)
        for axis in range(3):
            segments[axis].extend([float(a[axis]), float(b[axis]), None])
    if segments[0]:
        traces.append(
            {
                "type": "scatter3d",
                "mode": "lines",
                "x": segments[0],
                "y": segments[1],
                "z": segments[2],
                "line": {"width": 4, "color": figures.MEASURE_PATH_COLOR},
                "connectgaps": False,
                "hoverinfo": "skip",
                "showlegend": False,
            }
        )
    return traces


def model_figure(face: ReportFace, *, max_triangles: int = REPORT_TRIANGLES, height: int = FIGURE_HEIGHT) -> dict:
    """The interactive 3D view of a report: a light mesh (photo colours when the model has them) + measurements."""
    model = face.model
    photo = model.params.color_mode == "photo"
    if model.mesh is not None and model.mesh.n_faces > 0:
        mesh = model.mesh if model.mesh.n_faces <= max_triangles else coarser_mesh(model, max_triangles)
        trace = figures.mesh_trace(
            mesh.vertices_xyz,
            mesh.faces,
            colors_rgb=mesh.colors_rgb if photo and mesh.colors_rgb is not None else None,
            gray_values=nearness_from_z(mesh.vertices_xyz[:, 2]),
            max_triangles=max_triangles,
        )
    else:
        trace = figures.points_trace(
            model.points_xyz,
            colors_rgb=model.colors_rgb if photo else None,
            gray_values=model.depth_values,
            max_points=max_triangles // 2,
        )
    overlays = _measured_overlay(face.measurements) if face.measurements is not None else []
    return figures.model3d_figure(trace, uirevision="report", height=height, overlays=overlays)


def _small_image(image_rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image_rgb
    return cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212529;
  background: #f4f6f8; line-height: 1.45; }
main { max-width: 1280px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 1.6rem; }
.muted { color: #6c757d; font-size: 0.9rem; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 16px 20px;
  margin: 18px 0; }
section h2 { font-size: 1.2rem; margin: 0 0 8px; overflow-wrap: anywhere; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; align-items: start; }
.row.two { grid-template-columns: minmax(300px, 3fr) minmax(260px, 2fr); }
figure { margin: 0; }
figcaption { font-size: 0.8rem; color: #6c757d; margin-top: 2px; }
img.crop { width: 100%; max-height: 340px; object-fit: contain; background: #20242b; border-radius: 4px; }
.plot { width: 100%; min-height: 240px; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e9ecef; vertical-align: top; }
th { background: #f8f9fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; font-size: 0.72rem; background: #fff3cd; color: #664d03; border-radius: 4px;
  padding: 0 5px; margin-left: 4px; }
.pose { font-size: 0.9rem; margin: 4px 0; }
.note { font-size: 0.85rem; color: #495057; background: #f8f9fa; border-left: 3px solid #adb5bd;
  padding: 6px 10px; margin: 8px 0 0; }
#face3d-load-error { display: none; background: #f8d7da; color: #842029; padding: 10px 16px; border-radius: 6px; }
"""

_LOADER = """
(function () {
  "use strict";
  function fail(message) {
    var box = document.getElementById("face3d-load-error");
    box.textContent = message;
    box.style.display = "block";
  }
  function draw() {
    var plots = document.querySelectorAll("[data-figure]");
    for (var i = 0; i < plots.length; i++) {
      var spec = JSON.parse(document.getElementById(plots[i].getAttribute("data-figure")).textContent);
      window.Plotly.newPlot(plots[i], spec.data, spec.layout, spec.config);
    }
    document.body.setAttribute("data-face3d-ready", "1");
  }
  if (window.Plotly) { draw(); return; }
  var packed = document.getElementById("face3d-plotly-gz");
  if (!packed || !window.DecompressionStream) {
    fail("This browser cannot unpack the plots embedded in this report (it needs Chrome or Edge 80+, " +
         "Firefox 113+ or Safari 16.4+). The tables are still here.");
    return;
  }
  var text = atob(packed.textContent.trim());
  var bytes = new Uint8Array(text.length);
  for (var k = 0; k < text.length; k++) { bytes[k] = text.charCodeAt(k); }
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  new Response(stream).text().then(function (source) {
    var script = document.createElement("script");
    script.textContent = source;
    document.head.appendChild(script);
    draw();
  }).catch(function (error) { fail("The plots of this report could not be unpacked: " + error); });
})();
"""

_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["resetCameraLastSave3d"]}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json_for_script(value: object) -> str:
    """JSON that can sit inside ``<script type="application/json">`` (no ``<``, ``>`` or ``&`` left)."""
    text = pio.json.to_json_plotly(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class _Page:
    """Collects figures (as JSON blocks) while the HTML body is written."""

    def __init__(self) -> None:
        self.blocks: list[str] = []

    def plot(self, fig, caption: str = "", *, height: int = FIGURE_HEIGHT) -> str:
        """A ``<figure>`` whose plot is drawn from an embedded JSON block."""
        index = len(self.blocks)
        spec = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else dict(fig)
        spec = {"data": spec.get("data", []), "layout": spec.get("layout", {}), "config": _PLOT_CONFIG}
        self.blocks.append(f'<script type="application/json" id="face3d-fig-{index}">{_json_for_script(spec)}</script>')
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        return (
            f'<figure><div class="plot" data-figure="face3d-fig-{index}" style="height:{int(height)}px"></div>'
            f"{cap}</figure>"
        )


def _measurement_table(result: FaceMeasurements) -> str:
    rows = []
    for m in result.measurements:
        badge = f'<span class="badge">{_esc(reference_text(result))}</span>' if m.reference else ""
        note = "" if m.reference or not m.note else f'<div class="muted">{_esc(m.note)}</div>'
        rows.append(
            "<tr>"
            f"<td>{_esc(m.label)}{badge}{note}</td>"
            f'<td class="num">{_esc(value_text(m))}</td>'
            f'<td class="num">{_esc(sigma_text(m))}</td>'
            f"<td>{_esc(between_text(m.from_point, m.to_point))}</td>"
            "</tr>"
        )
    return (
        f'<p class="pose">{_esc(pose_text(result))}</p>'
        "<table><thead><tr><th>Measurement</th><th>Value</th><th>± (1σ)</th><th>Between</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _face_section(page: _Page, face: ReportFace, number: int) -> str:
    model = face.model
    size = model.bounds_mm[1] - model.bounds_mm[0]
    facts = [
        face.depth_model,
        fov_text(face.fov),
        f"{model.n_points:,} points, {model.n_faces:,} triangles",
        f"{size[0]:.0f} × {size[1]:.0f} × {size[2]:.0f} mm (W × H × D)",
    ]
    crop = figures.encode_jpeg_data_url(_small_image(face.image_rgb, REPORT_IMAGE_SIDE), quality=85)
    depth = figures.depth_figure(face.depth_norm, height=FIGURE_HEIGHT, max_side=REPORT_DEPTH_SIDE)
    parts = [
        f'<section class="face" id="face-{number}">',
        f"<h2>{number}. {_esc(face.name)}</h2>",
        f'<p class="muted">{_esc(" · ".join(f for f in facts if f))}</p>',
        '<div class="row">',
        f'<figure><img class="crop" src="{crop}" alt="{_esc("Photo crop of " + face.name)}">'
        "<figcaption>Photo (the crop the depth network saw)</figcaption></figure>",
        page.plot(depth, "Depth map: lighter = nearer (hover for values)"),
        page.plot(model_figure(face), "3D model in mm: drag to rotate, scroll to zoom; measured points in white"),
        "</div>",
    ]
    if face.measurements is not None:
        parts.append("<h3>Measurements</h3>")
        parts.append(_measurement_table(face.measurements))
        parts.append(f'<p class="note">{_esc(scale_note(face.measurements))}</p>')
    else:
        parts.append(f'<p class="note">No measurements: {_esc(face.note or "the face could not be measured.")}</p>')
    if face.measurements is not None and face.note:
        parts.append(f'<p class="note">{_esc(face.note)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _comparison_sections(
    page: _Page, faces: Sequence[ReportFace], comparison: ComparisonResult | None, pair: tuple[int, int] | None
) -> str:
    parts = []
    header = "".join(
        f"<th>{_esc(face.name)}"
        + (f'<div class="muted">{_esc(face.depth_model)}</div>' if face.depth_model else "")
        + "</th>"
        for face in faces
    )
    body = "".join(
        f"<tr><td>{_esc(label)}</td>{''.join(f'<td class=num>{_esc(c)}</td>' for c in cells)}</tr>"
        for label, cells in side_by_side_rows([face.measurements for face in faces])
    )
    measured = [face.measurements for face in faces if face.measurements is not None]
    parts.append(
        '<section id="side-by-side"><h2>Measurements side by side</h2>'
        f"<table><thead><tr><th>Measurement</th>{header}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="note">Values ± one standard deviation, in mm, each face measured in its own frame. '
        f"{_esc(scale_note(measured[0] if measured else None))}</p>"
        + "".join(
            f'<p class="muted">{_esc(line)}</p>'
            for line in refusal_notes([(face.name, face.measurements) for face in faces])
        )
        + "</section>"
    )
    if comparison is not None:
        profiles = figures.profiles_figure(
            comparison.names,
            [(p.positions, p.values) for p in comparison.nose],
            [(p.positions, p.values) for p in comparison.eyes],
            height=FIGURE_HEIGHT,
        )
        parts.append(
            '<section id="profiles"><h2>Depth profiles</h2>'
            + page.plot(
                profiles,
                "Each face seen as if it faced the camera (pose-normalised in 3D); positions in eye distances (IOD)",
            )
            + "".join(f'<p class="muted">{_esc(line)}</p>' for line in alignment_notes(comparison))
            + "</section>"
        )
        if pair is not None:
            compared = comparison.pair(*pair)
            diff = figures.difference_figure(compared.diff, *compared.names)
            rows = "".join(
                f"<tr><td>{_esc(label)}</td><td class=num>{_esc(value)}</td></tr>"
                for label, value in pair_metric_rows(compared)
            )
            first, second = compared.names
            parts.append(
                f'<section id="difference"><h2>Difference: {_esc(first)} minus {_esc(second)}</h2><div class="row two">'
                + page.plot(diff, f"{first} minus {second}, normalised depth")
                + f"<div><table><tbody>{rows}</tbody></table>"
                f'<p class="note">{_esc(PAIR_METRICS_NOTE)}</p></div></div></section>'
            )
    return "\n".join(parts)


@functools.lru_cache(maxsize=2)
def _plotly_script(compress: bool) -> str:
    """Plotly's JavaScript as one ``<script>`` element (packed once per process: about 0.4 s)."""
    from plotly.offline import get_plotlyjs

    source = get_plotlyjs()
    if not compress:
        return f"<script>{source}</script>"
    packed = base64.b64encode(gzip.compress(source.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")
    return f'<script type="application/octet-stream" id="face3d-plotly-gz">{packed}</script>'


def build_report(
    faces: Sequence[ReportFace],
    *,
    comparison: ComparisonResult | None = None,
    pair: tuple[int, int] | None = (0, 1),
    title: str | None = None,
    created: dt.datetime | None = None,
    compress_js: bool = True,
) -> str:
    """Write the report as one self-contained HTML page (see the module docstring).

    Args:
        faces: The faces, in order (at least one).
        comparison: Their comparison (profiles, difference map), for two or more faces.
        pair: The two items of ``comparison`` whose difference map is shown, first minus second
            (None: no difference map).
        title: The page title (default: "face3d report: <name>", "face3d comparison of N faces", or of
            "N items" where a photo appears more than once, e.g. under several models).
        created: Time stamp written in the report (default: now, local time).
        compress_js: Embed Plotly's JavaScript gzip-compressed (2 MB instead of 4.8 MB; needs a
            browser with ``DecompressionStream``).

    Returns:
        The HTML text (UTF-8).

    Raises:
        ValueError: No faces.
    """
    faces = list(faces)
    if not faces:
        raise ValueError("a report needs at least one face")
    if title is None:
        photos = len(set(comparison.shas)) if comparison is not None else len(faces)
        what = "faces" if photos == len(faces) else "items"  # one face under several models is not several faces
        title = f"face3d report: {faces[0].name}" if len(faces) == 1 else f"face3d comparison of {len(faces)} {what}"
    created = created or dt.datetime.now().astimezone()
    page = _Page()
    body = []
    if len(faces) > 1:
        body.append(_comparison_sections(page, faces, comparison, pair))
    body.extend(_face_section(page, face, number) for number, face in enumerate(faces, start=1))
    stamp = created.strftime("%Y-%m-%d %H:%M")
    text = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="face3d ' + _esc(__version__) + '">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_CSS}</style></head><body><main>",
            f"<header><h1>{_esc(title)}</h1>",
            f'<p class="muted">Made with face3d {_esc(__version__)} on {_esc(stamp)}. '
            "This file works offline: everything it shows is inside it.</p></header>",
            '<div id="face3d-load-error" role="alert"></div>',
            *body,
            "</main>",
            *page.blocks,
            _plotly_script(compress_js),
            f"<script>{_LOADER}</script>",
            "</body></html>",
        ]
    )
    logger.info("Report %r: %d faces, %.2f MB", title, len(faces), len(text.encode("utf-8")) / 1e6)
    return text
