"""Depth tab callbacks: start the depth job, show the photo and the depth map side by side."""

from __future__ import annotations

import logging

from dash import ClientsideFunction, Dash, Input, Output, State

from dashboard import ids
from dashboard.browser_values import choice
from dashboard.callbacks.choices import valid_precision
from dashboard.callbacks.jobs import StartOutcome, register_job_controller
from dashboard.callbacks.upload import face_for
from dashboard.errors import shown_or_explained
from dashboard.jobs import JobRunner
from dashboard.services import DepthMissingError, Face3DService
from dashboard.services.errors import NothingSelectedError
from dashboard.services.model_status import precision_choices_here
from dashboard.sessions import current_session
from face3d_core import figures
from face3d_core.depthmap import normalize_depth
from face3d_core.models.estimator import PRECISION_LABELS
from face3d_core.models.registry import get_spec
from face3d_core.pipeline import DepthRef

logger = logging.getLogger(__name__)


def depth_request(
    service: Face3DService, sha: object, model: object, store: object, *, session: str, precision: object = "fp32"
) -> DepthRef:
    """Return the depth map the user asks for: the chosen photo, model, face and precision (browser values).

    A precision this server does not offer (or junk) is its default precision.

    Raises:
        NothingSelectedError: No photo chosen.
        PhotoMissingError: Not the session's photo, or no longer in the cache.
        UnknownModelError: Unknown model.
    """
    if not sha:
        raise NothingSelectedError("Upload a face photo in the Upload tab first, then choose it here.")
    meta = service.access.require_photo(session, sha)
    chosen = valid_precision(precision, precision_choices_here())
    return DepthRef(meta.sha256, model, meta.face_index(face_for(store, meta.sha256)), chosen)


def start_depth(
    service: Face3DService,
    runner: JobRunner,
    sha: object,
    model: object,
    store: object,
    *,
    session: str,
    precision: object = "fp32",
) -> StartOutcome:
    """Generate button: serve a cached depth map at once, otherwise queue the network job for ``session``."""
    ref = depth_request(service, sha, model, store, session=session, precision=precision)
    if service.depth_maps.cached(ref) is not None:
        logger.info("Depth of %s served from the cache", ref.sha[:12])
        return StartOutcome(result=ref.to_dict())
    return StartOutcome(job_id=runner.submit("depth", ref.to_dict(), session))


#: What the Depth tab shows without a result.
EMPTY_DEPTH = (figures.go.Figure(), figures.go.Figure(), "", False, True, True)


def render_depth(service: Face3DService, result: object, colormap: object, *, session: str) -> tuple:
    """Figures and caption for a depth result.

    Returns:
        ``(photo figure, depth figure, caption, empty hidden, results hidden, downloads disabled)``.

    Raises:
        PhotoMissingError: The result's photo is not the session's or no longer stored.
        DepthMissingError: The depth map itself is no longer stored.
    """
    ref = DepthRef.from_dict(result)
    if ref is None:
        return EMPTY_DEPTH
    colormap = choice(colormap, tuple(figures.DEPTH_COLORMAPS), figures.DEFAULT_COLORMAP)
    meta = service.access.require_photo(session, ref.sha)
    face_depth = service.depth_maps.cached(ref)
    if face_depth is None:
        raise DepthMissingError("This depth map is no longer stored on the server. Press Generate to compute it again.")
    depth_norm = normalize_depth(face_depth.depth_rel)
    photo = figures.image_figure(face_depth.image_rgb)
    depth = figures.depth_figure(depth_norm, colormap or figures.DEFAULT_COLORMAP)
    height, width = face_depth.depth_rel.shape
    face_text = "whole photo" if face_depth.face is None else f"face {(ref.face_index or 0) + 1}"
    nearer = (
        "Lighter = nearer."
        if (colormap or figures.DEFAULT_COLORMAP) == "Grayscale"
        else "Colours at the “near” end of the bar are nearer."
    )
    size = f"{width}×{height} px"
    if face_depth.working_copy:  # a large photo (or crop) is worked on as a smaller copy
        size = "working copy {}×{} of {}×{} px".format(width, height, *face_depth.box_size_wh)
    precision = PRECISION_LABELS.get(ref.precision, ref.precision)
    caption = (
        f"{meta.name} · {face_text} · {get_spec(face_depth.model_name).title} · {precision} · {size}. "
        f"{nearer} Hover over the depth map to read values (0 = farthest, 1 = nearest)."
    )
    if face_depth.runtime:
        caption += f" Computed with {face_depth.runtime}."
    return photo, depth, caption, True, False, False


def register(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register the Depth tab's callbacks."""
    register_job_controller(
        app,
        runner,
        "depth",
        trigger_id=ids.DEPTH_GENERATE,
        result_store_id=ids.DEPTH_RESULT_STORE,
        states=[
            State(ids.DEPTH_FACE, "value"),
            State(ids.DEPTH_MODEL, "value"),
            State(ids.UPLOADS_STORE, "data"),
            State(ids.DEPTH_PRECISION, "value"),
        ],
        start=lambda sha, model, store, precision, session: start_depth(
            service, runner, sha, model, store, session=session, precision=precision
        ),
    )

    @app.callback(
        Output(ids.DEPTH_ORIGINAL_GRAPH, "figure"),
        Output(ids.DEPTH_MAP_GRAPH, "figure"),
        Output(ids.DEPTH_CAPTION, "children"),
        Output(ids.DEPTH_EMPTY, "hidden"),
        Output(ids.DEPTH_RESULTS, "hidden"),
        Output(ids.DEPTH_DOWNLOAD_PNG8, "disabled"),
        Output(ids.DEPTH_DOWNLOAD_PNG16, "disabled"),
        Output(ids.DEPTH_DOWNLOAD_NPY, "disabled"),
        Input(ids.DEPTH_RESULT_STORE, "data"),
        Input(ids.DEPTH_COLORMAP, "value"),
    )
    def _render(result, colormap):
        photo, depth, caption, empty_hidden, results_hidden, disabled = shown_or_explained(
            lambda: render_depth(service, result, colormap, session=current_session()), EMPTY_DEPTH
        )
        return photo, depth, caption, empty_hidden, results_hidden, disabled, disabled, disabled

    app.clientside_callback(  # the photo's and the depth map's boxes take the picture's aspect ratio
        ClientsideFunction(namespace="face3d", function_name="aspectStyle"),
        Output(ids.DEPTH_RESULTS, "style"),
        Input(ids.DEPTH_MAP_GRAPH, "figure"),
    )
