"""What a user does in the dashboard, as the page's callbacks: each step written once.

Every function takes a :class:`~tests.harness.dash_client.DashHttp` (a real server over HTTP or an
app in process) and labels its requests with a kind (``upload``, ``depth_start``, ``depth_poll``,
``depth_view``, ``model3d_view``, ``slider``, ``thumbnail``, ``compare_view``, ``compare_difference``) for the
timings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from dashboard import ids
from tests.harness.dash_client import CallbackError, DashHttp, Reply, data_url, layout_values, output
from tests.harness.paths import MODEL

DEPTH_JOB = ids.job_store("depth")
DEPTH_INTERVAL = ids.job_interval("depth")


def open_page(client: DashHttp) -> dict[str, Any]:
    """Load the page like a browser (HTML, callback map, layout); return the layout's control values."""
    page = client.get("", kind="page")
    if page.status_code != 200:
        raise CallbackError(f"GET / -> {page.status_code}")
    client.dependencies()
    return layout_values(client.layout())


def upload(client: DashHttp, data: bytes | str, name: str, store: dict | None = None) -> dict | None:
    """Drop one file on the upload area (``data`` as bytes, or the raw ``dcc.Upload`` contents string).

    Returns:
        The callback response (the uploads store and the per-file messages).
    """
    content = data if isinstance(data, str) else data_url(data)
    return client.call(
        (ids.UPLOAD, "contents"),
        {f"{ids.UPLOAD}.contents": [content], f"{ids.UPLOAD}.filename": [name], ids.UPLOADS_STORE: store},
        output_id=ids.UPLOAD_MESSAGES,
        kind="upload",
    )


def gallery(client: DashHttp, store: dict) -> dict | None:
    """The gallery of uploaded photos for a browser-side uploads store (as after a page reload)."""
    return client.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: store}, output_id=ids.GALLERY)


@dataclass(frozen=True)
class DepthStart:
    """The answer to pressing *Generate depth map*.

    Attributes:
        values: The inputs and states the button sent (reused by every poll).
        response: The callback response.
        result: The depth result at once (cached work), else None.
        job: The job the server started (``{"id": ...}``), else None.
    """

    values: dict[str, Any]
    response: dict | None
    result: dict | None
    job: dict | None


def start_depth(client: DashHttp, store: dict, sha: str, model: str = MODEL) -> DepthStart:
    """Press *Generate depth map* for photo ``sha`` (face choice: the photo's default)."""
    values = {
        DEPTH_JOB: None,
        ids.DEPTH_FACE: sha,
        ids.DEPTH_MODEL: model,
        ids.UPLOADS_STORE: store,
        ids.DEPTH_GENERATE: 1,
    }
    response = client.call((ids.DEPTH_GENERATE, "n_clicks"), values, kind="depth_start")
    return DepthStart(
        values, response, output(response, ids.DEPTH_RESULT_STORE, "data"), output(response, DEPTH_JOB, "data")
    )


def poll_depth(client: DashHttp, start: DepthStart, tick: int) -> dict | None:
    """One tick (number ``tick``) of the page's job interval for the job of ``start``."""
    values = start.values | {DEPTH_JOB: start.job, DEPTH_INTERVAL: tick}
    return client.call((DEPTH_INTERVAL, "n_intervals"), values, kind="depth_poll")


def wait_for_depth(client: DashHttp, start: DepthStart, *, timeout_s: float, poll_s: float = 0.5) -> dict:
    """Poll the job of ``start`` like the page does until its depth result arrives.

    ``client`` may be another web machine than the one that started the job.

    Returns:
        The depth result (``{"sha", "model", "face", ...}``); ``start.result`` at once if it had one.

    Raises:
        AssertionError: Generate gave neither result nor job, a poll showed an alert (any side
            update), the job ended without a result, or ``timeout_s`` passed.
    """
    if start.result is not None:
        return start.result
    job = start.job
    if not (isinstance(job, dict) and job.get("id")):
        raise AssertionError(f"Generate gave neither a result nor a job: {start.response}")
    deadline = time.monotonic() + timeout_s
    tick = 0
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        tick += 1
        response = poll_depth(client, start, tick)
        side = (response or {}).get("sideUpdate")
        if side:
            raise AssertionError(f"a poll of job {job['id'][:8]} showed {side}")
        result = output(response, ids.DEPTH_RESULT_STORE, "data")
        if result is not None:
            return result
        now = output(response, DEPTH_JOB, "data", job)
        if not (isinstance(now, dict) and now.get("id")):
            message = output(response, ids.job_message("depth"), "children")
            raise AssertionError(f"job {job['id'][:8]} ended without a result: {message}")
    raise AssertionError(f"the depth job {job['id'][:8]} did not finish within {timeout_s} s")


def generate_depth(
    client: DashHttp, store: dict, sha: str, *, timeout_s: float, poll_s: float = 0.2, model: str = MODEL
) -> dict:
    """Press *Generate depth map* and wait for the result (see :func:`wait_for_depth`)."""
    return wait_for_depth(client, start_depth(client, store, sha, model), timeout_s=timeout_s, poll_s=poll_s)


def view_depth(client: DashHttp, result: dict, colormap: str | None = None) -> dict | None:
    """Show a depth result on the *Depth* tab (the photo, the depth map and its caption)."""
    return client.call(
        (ids.DEPTH_RESULT_STORE, "data"),
        {ids.DEPTH_RESULT_STORE: result, ids.DEPTH_COLORMAP: colormap},
        output_id=ids.DEPTH_MAP_GRAPH,
        kind="depth_view",
    )


def download_depth_png8(client: DashHttp, result: dict) -> dict | None:
    """Press the 8-bit PNG download button of a depth result (the response carries the file)."""
    return client.call(
        (ids.DEPTH_DOWNLOAD_PNG8, "n_clicks"), {ids.DEPTH_DOWNLOAD_PNG8: 1, ids.DEPTH_RESULT_STORE: result}
    )


#: Download buttons by format.
DEPTH_DOWNLOADS = {"png8": ids.DEPTH_DOWNLOAD_PNG8, "png16": ids.DEPTH_DOWNLOAD_PNG16, "npy": ids.DEPTH_DOWNLOAD_NPY}
MODEL_DOWNLOADS = {
    "ply": ids.MODEL3D_DOWNLOAD_PLY,
    "obj": ids.MODEL3D_DOWNLOAD_OBJ,
    "glb": ids.MODEL3D_DOWNLOAD_GLB,
    "stl": ids.MODEL3D_DOWNLOAD_STL,
    "measure_csv": ids.MODEL3D_DOWNLOAD_MEASURE_CSV,
    "measure_json": ids.MODEL3D_DOWNLOAD_MEASURE_JSON,
    "relief_stl": ids.MODEL3D_DOWNLOAD_RELIEF_STL,
    "relief_3mf": ids.MODEL3D_DOWNLOAD_RELIEF_3MF,
    "report": ids.MODEL3D_DOWNLOAD_REPORT,
}


def download(client: DashHttp, kind: str, values: dict[str, Any]) -> dict | None:
    """Press a download button (``png8``, ``png16``, ``npy``, ``ply``, ``obj``, ``glb``, ``stl``,
    ``measure_csv``, ``measure_json``, ``relief_stl``, ``relief_3mf``, ``report``).

    Args:
        client: The client.
        kind: The format.
        values: The depth result (``ids.DEPTH_RESULT_STORE``) for depth formats, or the 3D view's
            values (:func:`model3d_values`, plus the field of view and relief controls where the
            page has them) for 3D formats.

    Returns:
        The callback response; ``output(response, ids.DOWNLOAD, "data")`` is the link to the file
        (``{"url", "filename", "size"}``): :func:`fetch_download` fetches it.
    """
    button = DEPTH_DOWNLOADS.get(kind) or MODEL_DOWNLOADS[kind]
    return client.call((button, "n_clicks"), {**values, button: 1}, kind=f"download_{kind}")


def fetch_download(client: DashHttp, response: dict | None, *, kind: str = "download_fetch") -> Reply:
    """Follow the link a download button answered with, as the page does (same session cookie).

    Raises:
        CallbackError: The response holds no link.
    """
    link = output(response, ids.DOWNLOAD, "data")
    if isinstance(link, dict) and isinstance(link.get("content"), str):  # a server before issue 16: inside the JSON
        import base64

        data = base64.b64decode(link["content"]) if link.get("base64") else link["content"].encode()
        return Reply(200, data, {"Content-Length": str(len(data))})
    if not (isinstance(link, dict) and isinstance(link.get("url"), str)):
        raise CallbackError(f"no download link in the response: {str(response)[:300]}")
    return client.get(link["url"], kind=kind)


def model3d_values(result: dict, controls: dict[str, Any], view: dict | None = None) -> dict[str, Any]:
    """Inputs of the *3D model* view: the depth result, the slider and radio values, the camera store.

    Args:
        result: The depth result to shape.
        controls: Values by component id (e.g. the layout's defaults from :func:`open_page`).
        view: The camera store (None: a fresh page).
    """
    names = (ids.MODEL3D_SMOOTHING, ids.MODEL3D_DENSITY, ids.MODEL3D_DEPTH_SCALE, ids.MODEL3D_DISPLAY)
    values = {name: controls.get(name) for name in (*names, ids.MODEL3D_COLORS)}
    return {ids.MODEL3D_SOURCE_STORE: result, **values, ids.MODEL3D_VIEW_STORE: view}


def measure_click(client: DashHttp, values: dict[str, Any], xyz: Any, state: dict | None) -> dict | None:
    """Click a point of the 3D model (model coordinates, mm) to measure: the first or the second point.

    Args:
        client: The client.
        values: The 3D view's values (:func:`model3d_values`, with the field of view controls).
        xyz: The clicked point ``(x, y, z)``.
        state: The measurement store after the previous click (None: the first click).

    Returns:
        The callback response (``ids.MODEL3D_MEASURE_STORE`` and ``ids.MODEL3D_MEASURE_STATUS``).
    """
    click = {"x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2])}
    chosen = {**values, ids.MODEL3D_MEASURE_CLICK: click, ids.MODEL3D_MEASURE_STORE: state}
    return client.call((ids.MODEL3D_MEASURE_CLICK, "data"), chosen, kind="measure_click")


def figure_points(figure: dict) -> Any:
    """``(N, 3)`` float64 positions of a 3D figure's first trace (plotly's typed arrays decoded)."""
    import base64

    import numpy as np

    trace = figure["data"][0]

    def axis(spec: Any) -> Any:
        if isinstance(spec, dict):
            return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
        return np.asarray(spec, dtype=np.float64)

    return np.stack([axis(trace[name]) for name in "xyz"], axis=1).astype(np.float64)


def points_to_measure(figure: dict, apart_mm: float = 30.0) -> tuple[Any, Any]:
    """Two vertices of a 3D figure's mesh about ``apart_mm`` apart on its largest connected piece.

    Where the first trace is a mesh (``i``, ``j``, ``k``), the piece is found from its triangles (a
    click on another piece could not be measured along the surface); a point cloud is one piece.
    """
    import base64

    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    vertices = figure_points(figure)
    trace = figure["data"][0]
    keep = np.ones(len(vertices), bool)
    if all(name in trace for name in "ijk"):

        def ints(spec: Any) -> Any:
            if isinstance(spec, dict):
                return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"])).astype(np.int64)
            return np.asarray(spec, dtype=np.int64)

        i, j, k = (ints(trace[name]) for name in "ijk")
        rows, cols = np.concatenate([i, j, k]), np.concatenate([j, k, i])
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vertices), len(vertices)))
        _, labels = connected_components(graph, directed=False)
        keep = labels == np.bincount(labels).argmax()
    piece = vertices[keep]
    middle = np.median(piece, axis=0)
    ends = [
        piece[np.argmin(np.linalg.norm(piece - (middle + [dx, 0, 0]), axis=1))] for dx in (-apart_mm / 2, apart_mm / 2)
    ]
    return ends[0], ends[1]


def view_3d(client: DashHttp, values: dict[str, Any]) -> dict | None:
    """Build the 3D model of the depth result in ``values`` (see :func:`model3d_values`)."""
    return client.call((ids.MODEL3D_SOURCE_STORE, "data"), values, output_id=ids.MODEL3D_GRAPH, kind="model3d_view")


def move_control(client: DashHttp, values: dict[str, Any], component: str) -> dict | None:
    """A slider or radio of the 3D view took the value it has in ``values``: the 3D model is reshaped."""
    return client.call((component, "value"), values, output_id=ids.MODEL3D_GRAPH, kind="slider")


def thumbnail(client: DashHttp, sha: str) -> Reply:
    """The JPEG thumbnail of an uploaded photo."""
    return client.get(f"face3d/thumb/{sha}.jpg", kind="thumbnail")


def generate_comparison(
    client: DashHttp, store: dict, shas: list[str], *, timeout_s: float, poll_s: float = 0.2, model: str = MODEL
) -> dict:
    """Press *Compare* for the photos ``shas`` and poll its job like the page until the result arrives.

    Returns:
        The comparison result (``{"key", "count", "skipped"}``).

    Raises:
        AssertionError: No result or job, an alert during a poll, or ``timeout_s`` passed.
    """
    job_store, interval = ids.job_store("compare"), ids.job_interval("compare")
    values = {
        job_store: None,
        ids.COMPARE_ITEMS_STORE: [{"sha": sha, "model": model, "precision": "fp32"} for sha in shas],
        ids.UPLOADS_STORE: store,
        ids.COMPARE_RUN: 1,
    }
    response = client.call((ids.COMPARE_RUN, "n_clicks"), values, kind="compare_start")
    result = output(response, ids.COMPARE_RESULT_STORE, "data")
    job = output(response, job_store, "data")
    deadline = time.monotonic() + timeout_s
    tick = 0
    while result is None:
        if not (isinstance(job, dict) and job.get("id")):
            raise AssertionError(f"Compare gave neither a result nor a job: {response}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the comparison did not finish within {timeout_s} s")
        time.sleep(poll_s)
        tick += 1
        response = client.call(
            (interval, "n_intervals"), values | {job_store: job, interval: tick}, kind="compare_poll"
        )
        if (response or {}).get("sideUpdate"):
            raise AssertionError(f"a poll of the comparison showed {response['sideUpdate']}")
        result = output(response, ids.COMPARE_RESULT_STORE, "data")
        job = output(response, job_store, "data", job)
    return result


def view_comparison(client: DashHttp, key: str, count: int, page: int = 0) -> dict | None:
    """Show a computed comparison (3D views, profiles, the items' names) on the *Compare* tab."""
    return client.call(
        (ids.COMPARE_RESULT_STORE, "data"),
        {ids.COMPARE_RESULT_STORE: {"key": key, "count": count}, ids.COMPARE_PAGE: page},
        output_id=ids.COMPARE_3D_GRAPH,
        kind="compare_view",
    )


def view_difference(client: DashHttp, key: str, count: int, first: int = 0, second: int = 1) -> dict | None:
    """Show the difference map of two items of a computed comparison (and its numbers)."""
    return client.call(
        (ids.COMPARE_RESULT_STORE, "data"),
        {
            ids.COMPARE_RESULT_STORE: {"key": key, "count": count},
            ids.COMPARE_PAIR_FIRST: first,
            ids.COMPARE_PAIR_SECOND: second,
        },
        output_id=ids.COMPARE_DIFF_GRAPH,
        kind="compare_difference",
    )


def press_upload_again(client: DashHttp, alert: dict | None) -> dict | None:
    """Press the "Upload again" button of the alert a callback response showed (a pattern-matching id)."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            button_id = node.get("id")
            if isinstance(button_id, dict) and button_id.get("type") == ids.UPLOAD_AGAIN:
                found.append(button_id)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk((alert or {}).get("sideUpdate", {}))
    if not found:
        raise AssertionError(f"no Upload again button in {str(alert)[:300]}")
    pattern = json.dumps({"index": ["ALL"], "type": ids.UPLOAD_AGAIN}, separators=(",", ":"))
    dep = next(d for d in client.dependencies() if any(i["id"] == pattern for i in d["inputs"]))
    button = found[0]
    changed = json.dumps(dict(sorted(button.items())), separators=(",", ":"))
    body = {
        "output": dep["output"],
        "outputs": {"id": dep["output"].split("@")[0].rsplit(".", 1)[0], "property": "value"},
        "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
        "state": [],
        "changedPropIds": [f"{changed}.n_clicks"],
    }
    reply = client._request("POST", "_dash-update-component", "upload_again", body)
    if reply.status_code != 200:
        raise CallbackError(f"Upload again: HTTP {reply.status_code}: {reply.text[:300]}")
    return reply.json()
