"""Compare tab callbacks: choose items, run the comparison job, show 3D views, profiles, the difference of two.

An *item* is a face under a depth model in a precision. The pickers (faces, models,
precisions) describe every combination (:func:`compare_items`), shown as chips that can be
removed one by one; Compare runs 2 to 6 of them. An item whose network's weights are missing
is left out with the usual missing-weights help and the others are still compared.

WebGL: a page may hold only a handful of WebGL contexts and each 3D scene is one, so the
3D views show at most 4 items at a time (one figure, one scene each; a pager switches
between items 1-4 and the last 4). ``dcc.Tabs`` unmounts hidden tabs, so the 3D tab's scene
is gone while this tab is shown. The cameras of the scenes are kept in sync in the browser
(``assets/face3d.js``) without a server round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.browser_values import distinct_texts, list_index, mapping
from dashboard.callbacks.depth import NothingSelectedError, depth_request
from dashboard.callbacks.jobs import StartOutcome, register_job_controller
from dashboard.controls import DEFAULT_CONTROLS, Controls3D
from dashboard.errors import AlertInfo, make_alert, safe_message, shown_or_explained
from dashboard.jobs import JobRunner
from dashboard.layout.compare import MAX_COMPARE
from dashboard.services import MAX_UPLOADS, Face3DService
from dashboard.services.comparison import SkippedItem
from dashboard.services.errors import ComparisonMissingError
from dashboard.services.model_status import model_status
from dashboard.sessions import current_session
from face3d_core import figures
from face3d_core.camera import CameraFov
from face3d_core.compare import ComparisonItems, ComparisonResult, PairComparison
from face3d_core.errors import Face3DError
from face3d_core.models.registry import get_spec, list_models
from face3d_core.pipeline import PRECISIONS, DepthRef
from face3d_core.reconstruct import ReconstructionParams
from face3d_core.report import PAIR_METRICS_NOTE, pair_metric_rows

logger = logging.getLogger(__name__)

#: Most chip removals remembered for one choice (every item of the largest choice).
MAX_REMOVALS = 4 * MAX_COMPARE * len(PRECISIONS)
#: Most 3D scenes shown at once (WebGL contexts).
MAX_SCENES = 4
#: Density of the comparison's 3D views: a level below the 3D tab's default (several scenes are
#: drawn at once, each with its own WebGL context); measurements and reports use the 3D tab's.
COMPARE_VIEW_DENSITY = DEFAULT_CONTROLS.density - 1


def item_key(item: Mapping[str, object]) -> str:
    """The key of a comparison item (``sha|model|precision``): the index of its chip's remove button."""
    return f"{item.get('sha')}|{item.get('model')}|{item.get('precision')}"


def choice_signature(faces: object, models: object, precisions: object) -> str:
    """What the pickers chose, as text: removals of chips hold for one choice only."""
    parts = [[str(v) for v in values] if isinstance(values, list) else [] for values in (faces, models, precisions)]
    return "/".join(",".join(part) for part in parts)


def compare_items(faces: object, models: object, precisions: object, removed: object = None) -> list[dict[str, str]]:
    """The items the pickers describe: every chosen face under every chosen model and precision, face by face.

    Items whose key is in ``removed`` (``{"for": signature, "keys": [...]}``) are left out when
    ``removed`` was made for this very choice (:func:`choice_signature`). The list may hold more
    than :data:`MAX_COMPARE` items (the page says so; Compare refuses them).
    """
    wanted_models = [m for m in distinct_texts(models, len(list_models())) if m in list_models()]
    wanted_precisions = [p for p in distinct_texts(precisions, len(PRECISIONS)) if p in PRECISIONS]
    removals = mapping(removed) or {}
    keys: set[str] = set()
    if removals.get("for") == choice_signature(faces, models, precisions):
        keys = set(distinct_texts(removals.get("keys"), MAX_REMOVALS))
    items = []
    for sha in distinct_texts(faces, MAX_UPLOADS):
        for model in wanted_models:
            for precision in wanted_precisions:
                item = {"sha": sha, "model": model, "precision": precision}
                if item_key(item) not in keys:
                    items.append(item)
    return items


def remove_item(removed: object, key: object, signature: str) -> dict[str, object]:
    """The removals after the chip ``key`` was removed from the choice ``signature``."""
    removals = mapping(removed) or {}
    kept = distinct_texts(removals.get("keys"), MAX_REMOVALS) if removals.get("for") == signature else []
    return {"for": signature, "keys": [*kept, key] if isinstance(key, str) and key not in kept else kept}


def item_refs(service: Face3DService, items: object, store: object, *, session: str) -> list[DepthRef]:
    """The depth maps of the chosen items (browser values), with each photo's chosen face.

    Raises:
        NothingSelectedError: Fewer than two or more than :data:`MAX_COMPARE` items.
        PhotoMissingError: A photo is not the session's or no longer stored.
        UnknownModelError: An unknown model.
    """
    listed = items[: 4 * (MAX_COMPARE + 1)] if isinstance(items, list) else []
    chosen = [item for item in map(mapping, listed) if item is not None][: MAX_COMPARE + 1]
    if len(chosen) < 2:
        raise NothingSelectedError(
            "Choose at least two faces, or one face and two models, to compare (upload more photos if needed)."
        )
    if len(chosen) > MAX_COMPARE:
        raise NothingSelectedError(f"Choose at most {MAX_COMPARE} items to compare: remove some (×).")
    return [
        depth_request(service, i.get("sha"), i.get("model"), store, session=session, precision=i.get("precision"))
        for i in chosen
    ]


def item_status(service: Face3DService, ref: DepthRef) -> str:
    """What Compare does for an item: ``ready`` (its depth map is stored), ``to compute`` or ``weights missing``."""
    if service.depth_maps.is_cached(ref):
        return "ready"
    status = model_status(ref.model)
    return "to compute" if status.ready or status.downloadable else "weights missing"


def render_items(
    service: Face3DService, items: list[dict[str, str]], store: object, *, session: str
) -> tuple[list[html.Div | html.Span], str]:
    """The chips of the items (name, what Compare will do, a remove button) and the line beside their title.

    Items of photos the session no longer has are left out.
    """
    chips = []
    for item in items:
        try:
            ref = depth_request(
                service, item["sha"], item["model"], store, session=session, precision=item["precision"]
            )
            name = service.access.item_names(session, [ref])[0]
        except Face3DError:
            continue
        status = item_status(service, ref)
        chips.append(
            html.Div(
                [
                    html.Span(name, className="face3d-chip-name"),
                    html.Span(status, className=f"face3d-chip-status face3d-chip-status--{status.replace(' ', '-')}"),
                    html.Button(
                        "×",
                        id={"type": ids.COMPARE_ITEM_REMOVE, "index": item_key(item)},
                        type="button",
                        className="face3d-chip-remove",
                        title=f"Remove {name}",
                        **{"aria-label": f"Remove {name}"},
                    ),
                ],
                className="face3d-chip",
                role="listitem",
            )
        )
    count = len(chips)
    if count > MAX_COMPARE:
        note = f"{count}: at most {MAX_COMPARE}, remove some (×) or choose fewer"
    elif count < 2:
        note = "choose at least two"
    else:
        note = f"{count} of at most {MAX_COMPARE}"
    return chips or [html.Span("None yet.", className="small text-muted")], note


def start_compare(
    service: Face3DService, runner: JobRunner, items: object, store: object, *, session: str
) -> StartOutcome:
    """Compare button: a cached comparison, or one whose depth maps are all cached, at once; else a job.

    Only an item without a depth map (the network must run) makes it a background job for
    ``session``; comparing cached items takes tens of milliseconds and is done in the callback.

    Args:
        service: The dashboard service.
        runner: The job runner.
        items: The chosen items (``[{"sha", "model", "precision"}]``, see :func:`compare_items`).
        store: The uploads store (each photo's chosen face).
        session: The browser session.

    Raises:
        NothingSelectedError: Fewer than two or more than :data:`MAX_COMPARE` items.
        PhotoMissingError: A photo is not the session's or no longer stored.
        ComparisonError: The items cannot be compared (an item chosen twice, a photo without a
            face), when computed here.
    """
    compared = ComparisonItems(tuple(item_refs(service, items, store, session=session)))  # checked here, once
    refs = compared.refs
    key = service.comparisons.key(compared)  # once per comparison: the job gets it too
    service.comparisons.check_alignable(refs, service.access.labels(session, refs))
    names = service.access.item_names(session, refs)
    if service.comparisons.cached(key) is not None:
        return StartOutcome(result={"key": key, "count": len(refs), "skipped": []})
    if all(service.depth_maps.is_cached(ref) for ref in refs):
        # no network to run: aligning and comparing takes tens of milliseconds, done here (no job)
        return StartOutcome(result=service.comparisons.compute(compared, names, key=key).to_store())
    params = {"refs": [ref.to_dict() for ref in refs], "names": names, "key": key}
    return StartOutcome(job_id=runner.submit("compare", params, session))


def pages(count: int) -> list[list[int]]:
    """Groups of face indices shown together in 3D (at most :data:`MAX_SCENES` each)."""
    if count <= MAX_SCENES:
        return [list(range(count))]
    return [list(range(MAX_SCENES)), list(range(count - MAX_SCENES, count))]


def page_options(count: int) -> list[dict]:
    """Pager options for the 3D views (empty when all items fit)."""
    groups = pages(count)
    if len(groups) == 1:
        return []
    return [{"label": f"Items {g[0] + 1}–{g[-1] + 1}", "value": i} for i, g in enumerate(groups)]


def compare_settings(service: Face3DService, refs: Sequence[DepthRef]) -> list[tuple[ReconstructionParams, CameraFov]]:
    """``(params, field of view)`` of each compared item: the 3D tab's defaults, each photo's own EXIF field of view."""
    settings = []
    for ref in refs:
        fov = service.cameras.fov(ref.sha)
        settings.append((DEFAULT_CONTROLS.to_params(fov.fov_deg), fov))
    return settings


def metrics_table(pair: PairComparison) -> html.Div:
    """The small table of numbers of two items."""
    rows = pair_metric_rows(pair)
    return html.Div(
        [
            dbc.Table(
                [
                    html.Tbody(
                        [
                            html.Tr(
                                [
                                    html.Td(label, className="text-truncate", style={"maxWidth": "16rem"}),
                                    html.Td(value, className="text-end font-monospace"),
                                ]
                            )
                            for label, value in rows
                        ]
                    )
                ],
                size="sm",
                striped=True,
                className="mb-2 small",
            ),
            html.Div(PAIR_METRICS_NOTE, className="small text-muted"),
        ]
    )


def compare_3d(service: Face3DService, result: ComparisonResult, page: int, camera: dict | None = None) -> dict:
    """The 3D views of one page of items, one scene each, sharing the camera preset; titles say face and model.

    Each item is drawn at :data:`COMPARE_VIEW_DENSITY` (a points-only reconstruction of its own,
    kept in memory like the 3D tab's).
    """
    groups = pages(len(result.names))
    group = groups[page if isinstance(page, int) and 0 <= page < len(groups) else 0]
    traces, names = [], []
    refs = result.refs
    view = Controls3D(density=COMPARE_VIEW_DENSITY)
    for index in group:
        fov_deg = service.cameras.fov(refs[index].sha).fov_deg
        params = view.to_params(fov_deg).replace(representation="points", texture=False)  # points only: no mesh
        face_model = service.models3d.model(refs[index], params)
        traces.append(figures.points_trace(face_model.points_xyz, gray_values=face_model.depth_values, marker_size=2.5))
        names.append(result.names[index])
    return figures.compare_3d_figure(
        traces,
        names,
        camera=camera or figures.CAMERA_PRESETS["front"],
        uirevision=f"compare-{'-'.join(s[:8] for s in result.shas)}-{page}",
    )


#: What the Compare tab shows without a comparison.
EMPTY_COMPARE = (False, True, figures.go.Figure(), "", [], figures.go.Figure(), [], [], 0, 1, None)
#: The difference section without a comparison.
EMPTY_PAIR = (figures.go.Figure(), None)


def session_result(service: Face3DService, data: object, *, session: str) -> ComparisonResult | None:
    """The comparison the page's result store names, as ``session`` sees it (None when it names none).

    Raises:
        ComparisonMissingError: The comparison is not stored (any more) or shows a photo that is
            not the session's (the same answer for both).
    """
    key = (mapping(data) or {}).get("key")
    if not key:
        return None
    result = service.access.comparison(session, service.comparisons.cached(key))
    if result is None:
        raise ComparisonMissingError(
            "This comparison is no longer stored on the server. Press Compare to run it again "
            "(upload the photos again if they are gone from the gallery)."
        )
    return result


def skipped_alerts(data: object) -> list[dbc.Alert]:
    """The usual missing-weights alert for each item the last comparison left out (with the file and command)."""
    alerts = []
    raw = (mapping(data) or {}).get("skipped")
    for entry in raw[:MAX_COMPARE] if isinstance(raw, list) else []:
        item = SkippedItem.from_dict(entry)
        if item is None:
            continue
        spec = get_spec(item.model)
        title = f"Not compared: {item.name}. {item.title}"
        info = AlertInfo(title, safe_message(title, item.message), "warning", file_name=spec.file_name, url=spec.url)
        alerts.append(make_alert(info))
    return alerts


def render_compare(service: Face3DService, data: object, page: object, *, session: str, phone: bool = False) -> tuple:
    """Everything the Compare tab shows for a comparison result (only of the session's own photos).

    On a phone (``phone``) the two depth profiles lie one above the other.

    Returns:
        ``(empty hidden, results hidden, 3D figure, 3D note, page options, profiles figure,
        first item's options, second item's options, first item, second item, skipped-item alerts)``
        (the difference of the two comes from :func:`render_pair`).

    Raises:
        ComparisonMissingError: See :func:`session_result`.
    """
    result = session_result(service, data, session=session)
    skipped = skipped_alerts(data) or None
    if result is None:
        return EMPTY_COMPARE[:-1] + (skipped,)
    count = len(result.names)
    fig3d = compare_3d(service, result, list_index(page, len(pages(count))) or 0)
    note = (
        f"{count} items: 3D views show up to {MAX_SCENES} at a time (a browser allows only a few 3D "
        "views per page). Rotate one view and the others follow."
        if count > MAX_SCENES
        else "Rotate one view and the others follow."
    )
    profiles = figures.profiles_figure(
        result.names,
        [(p.positions, p.values) for p in result.nose],
        [(p.positions, p.values) for p in result.eyes],
        stacked=phone,
    )
    options = [{"label": f"{index + 1}. {name}", "value": index} for index, name in enumerate(result.names)]
    return True, False, fig3d, note, page_options(count), profiles, options, options, 0, 1, skipped


def valid_pair(first: object, second: object, count: int) -> tuple[int, int]:
    """The two items of the difference map (browser values): valid, different indices; else the first two."""
    a, b = list_index(first, count), list_index(second, count)
    return (0, 1) if a is None or b is None or a == b else (a, b)


def render_pair(service: Face3DService, data: object, first: object, second: object, *, session: str) -> tuple:
    """The difference map of two items of the comparison and its numbers.

    Returns:
        ``(difference figure, metrics table)``; the same item twice says so instead.

    Raises:
        ComparisonMissingError: See :func:`session_result`.
    """
    result = session_result(service, data, session=session)
    if result is None:
        return EMPTY_PAIR
    if first == second and isinstance(first, int):
        return figures.go.Figure(), html.Div("Choose two different items.", className="text-muted small")
    pair = result.pair(*valid_pair(first, second, len(result.names)))
    return figures.difference_figure(pair.diff, *pair.names), metrics_table(pair)


def swap_pair(first: object, second: object) -> tuple[object, object]:
    """The swap button: the second item becomes the first."""
    return second, first


def register(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register the Compare tab's callbacks."""
    register_job_controller(
        app,
        runner,
        "compare",
        trigger_id=ids.COMPARE_RUN,
        result_store_id=ids.COMPARE_RESULT_STORE,
        states=[State(ids.COMPARE_ITEMS_STORE, "data"), State(ids.UPLOADS_STORE, "data")],
        start=lambda items, store, session: start_compare(service, runner, items, store, session=session),
    )

    @app.callback(
        Output(ids.COMPARE_REMOVED_STORE, "data"),
        Input({"type": ids.COMPARE_ITEM_REMOVE, "index": ALL}, "n_clicks"),
        State(ids.COMPARE_REMOVED_STORE, "data"),
        State(ids.COMPARE_FACES, "value"),
        State(ids.COMPARE_MODELS, "value"),
        State(ids.COMPARE_PRECISIONS, "value"),
        prevent_initial_call=True,
    )
    def _remove(_clicks, removed, faces, models, precisions):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate  # chips drawn again, not a click
        return remove_item(removed, trigger.get("index"), choice_signature(faces, models, precisions))

    @app.callback(
        Output(ids.COMPARE_ITEMS_STORE, "data"),
        Output(ids.COMPARE_ITEMS, "children"),
        Output(ids.COMPARE_ITEMS_NOTE, "children"),
        Input(ids.COMPARE_FACES, "value"),
        Input(ids.COMPARE_MODELS, "value"),
        Input(ids.COMPARE_PRECISIONS, "value"),
        Input(ids.COMPARE_REMOVED_STORE, "data"),
        Input(ids.UPLOADS_STORE, "data"),
        Input(ids.COMPARE_RESULT_STORE, "data"),  # "to compute" becomes "ready"
    )
    def _items(faces, models, precisions, removed, store, _result):
        items = compare_items(faces, models, precisions, removed)
        chips, note = render_items(service, items, store, session=current_session())
        return items, chips, note

    @app.callback(
        Output(ids.COMPARE_EMPTY, "hidden"),
        Output(ids.COMPARE_RESULTS, "hidden"),
        Output(ids.COMPARE_3D_GRAPH, "figure"),
        Output(ids.COMPARE_3D_NOTE, "children"),
        Output(ids.COMPARE_PAGE, "options"),
        Output(ids.COMPARE_PROFILES_GRAPH, "figure"),
        Output(ids.COMPARE_PAIR_FIRST, "options"),
        Output(ids.COMPARE_PAIR_SECOND, "options"),
        Output(ids.COMPARE_PAIR_FIRST, "value"),
        Output(ids.COMPARE_PAIR_SECOND, "value"),
        Output(ids.COMPARE_SKIPPED, "children"),
        Input(ids.COMPARE_RESULT_STORE, "data"),
        Input(ids.COMPARE_PAGE, "value"),
        State(ids.PAGE_VIEWPORT, "data"),
    )
    def _render(data, page, viewport):
        phone = isinstance(viewport, dict) and viewport.get("phone") is True
        shown = shown_or_explained(
            lambda: render_compare(service, data, page, session=current_session(), phone=phone), EMPTY_COMPARE
        )
        if ctx.triggered_id == ids.COMPARE_PAGE:  # another page of 3D views: the chosen pair stays
            shown = (*shown[:8], no_update, no_update, *shown[10:])
        return shown

    @app.callback(
        Output(ids.COMPARE_DIFF_GRAPH, "figure"),
        Output(ids.COMPARE_METRICS, "children"),
        Input(ids.COMPARE_RESULT_STORE, "data"),
        Input(ids.COMPARE_PAIR_FIRST, "value"),
        Input(ids.COMPARE_PAIR_SECOND, "value"),
    )
    def _pair(data, first, second):
        return shown_or_explained(
            lambda: render_pair(service, data, first, second, session=current_session()), EMPTY_PAIR
        )

    @app.callback(
        Output(ids.COMPARE_PAIR_FIRST, "value", allow_duplicate=True),
        Output(ids.COMPARE_PAIR_SECOND, "value", allow_duplicate=True),
        Input(ids.COMPARE_PAIR_SWAP, "n_clicks"),
        State(ids.COMPARE_PAIR_FIRST, "value"),
        State(ids.COMPARE_PAIR_SECOND, "value"),
        prevent_initial_call=True,
    )
    def _swap(_clicks, first, second):
        return swap_pair(first, second)

    app.clientside_callback(  # the difference map's box takes the map's aspect ratio
        ClientsideFunction(namespace="face3d", function_name="aspectStyle"),
        Output(ids.COMPARE_DIFF_BOX, "style"),
        Input(ids.COMPARE_DIFF_GRAPH, "figure"),
    )

    app.clientside_callback(  # two views per row: the box is as tall as the rows need
        ClientsideFunction(namespace="face3d", function_name="compareBoxClass"),
        Output(ids.COMPARE_3D_BOX, "className"),
        Input(ids.COMPARE_3D_GRAPH, "figure"),
    )

    app.clientside_callback(
        ClientsideFunction(namespace="face3d", function_name="syncCameras"),
        Output(ids.COMPARE_CAMERA_SYNC, "data"),
        Input(ids.COMPARE_3D_GRAPH, "relayoutData"),
        State(ids.COMPARE_3D_GRAPH, "id"),
        prevent_initial_call=True,
    )
