"""Downloads: one callback for every download button of the page.

The depth map (8-bit PNG, 16-bit PNG, .npy) and the 3D model (PLY, OBJ zip, GLB, STL) are made
here; the measurements, the printable relief and the reports by
:func:`dashboard.callbacks.measure.download_file`. Files are made from the cache (nothing is
recomputed by the network), kept for the session (:class:`dashboard.services.downloads.Downloads`)
and streamed by the ``/face3d/download`` route: the callback answers with a small link in the
``ids.DOWNLOAD`` store (outside the tabs, so it works whichever tab is shown), which the page
follows (``face3d.startDownload``), never with the file as base64 inside its JSON. While a file
is being made the page says so (``ids.DOWNLOAD_STATUS``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, set_props
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.browser_values import mapping
from dashboard.callbacks.measure import DOWNLOAD_BUTTONS, download_file
from dashboard.callbacks.view3d import shown_model, view_dependencies
from dashboard.controls import ModelView
from dashboard.services import DepthMissingError, Face3DService
from dashboard.sessions import current_session
from face3d_core.pipeline import DepthRef

logger = logging.getLogger(__name__)

#: Button -> depth map format (see :data:`dashboard.services.exports.DEPTH_FORMATS`).
DEPTH_BUTTONS = {
    ids.DEPTH_DOWNLOAD_PNG8: "png8",
    ids.DEPTH_DOWNLOAD_PNG16: "png16",
    ids.DEPTH_DOWNLOAD_NPY: "npy",
}
MODEL_BUTTONS = {
    ids.MODEL3D_DOWNLOAD_PLY: "ply",
    ids.MODEL3D_DOWNLOAD_OBJ: "obj",
    ids.MODEL3D_DOWNLOAD_GLB: "glb",
    ids.MODEL3D_DOWNLOAD_STL: "stl",
}


def depth_file(service: Face3DService, ref: DepthRef | None, kind: str, *, session: str) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the depth map in ``kind`` (png8, png16, npy).

    Raises:
        DepthMissingError: No depth map for this result in the cache.
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    if ref is None:
        raise DepthMissingError("Generate the depth map first.")
    meta = service.access.require_photo(session, ref.sha)
    return service.exports.depth_file(ref, kind, meta.name)


def model_file(service: Face3DService, view: ModelView, fmt: str, *, session: str) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the 3D model as shown (same slider values and field of view).

    Raises:
        DepthMissingError: No 3D model yet.
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    shown = shown_model(service, view, session=session)
    if shown is None:
        raise DepthMissingError("Generate the 3D model first.")
    return service.exports.model_file(shown.ref, shown.params, fmt, shown.meta.name)


#: Every download button of the page.
BUTTONS = (*DEPTH_BUTTONS, *MODEL_BUTTONS, *DOWNLOAD_BUTTONS)
#: What the page says while a file is being made.
PREPARING = "Preparing your download… (large files are made a few at a time: it may wait its turn)"


@dataclass(frozen=True)
class PageValues:
    """What a download needs from the page, parsed where it enters.

    Attributes:
        depth_result: The Depth tab's result store (a depth map's ``DepthRef`` dict).
        view: The 3D view (:meth:`ModelView.parse` of the six values).
        relief: The relief's width, base and scale as typed (checked by ``ReliefSettings``).
        compare_data: The Compare tab's result store.
        compare_pair: The Compare tab's two items of the difference map (checked by ``valid_pair``).
    """

    depth_result: DepthRef | None = None
    view: ModelView = ModelView()
    relief: tuple[object, object, object] = (None, None, None)
    compare_data: object = None
    compare_pair: tuple[object, object] = (0, 1)

    @classmethod
    def parse(
        cls, depth_result: object, raw_view: object, relief: object, compare_data: object, compare_pair: object = None
    ) -> PageValues:
        """The values of the download callback's states.

        ``relief`` is ``{"width", "base", "scale"}``, ``compare_pair`` ``{"first", "second"}``.
        """
        fields = mapping(relief) or {}
        pair = mapping(compare_pair) or {}
        return cls(
            DepthRef.from_dict(depth_result),
            ModelView.parse(raw_view),
            (fields.get("width"), fields.get("base"), fields.get("scale")),
            compare_data,
            (pair.get("first", 0), pair.get("second", 1)),
        )


def make_file(
    service: Face3DService, trigger: str, values: PageValues, *, session: str
) -> tuple[str, bytes, str | None]:
    """The file of one download button: ``(file name, bytes, note for the relief's info line or None)``.

    Args:
        service: The dashboard service.
        trigger: The button's id.
        values: The page's values.
        session: The browser session.

    Raises:
        PreventUpdate: Not a download button.
        Face3DError: Nothing to download yet, a photo not the session's, settings out of range ...
    """
    if trigger in DEPTH_BUTTONS:
        return (*depth_file(service, values.depth_result, DEPTH_BUTTONS[trigger], session=session), None)
    if trigger in MODEL_BUTTONS:
        return (*model_file(service, values.view, MODEL_BUTTONS[trigger], session=session), None)
    if trigger in DOWNLOAD_BUTTONS:
        return download_file(
            service,
            trigger,
            view=values.view,
            relief=values.relief,
            compare_data=values.compare_data,
            compare_pair=values.compare_pair,
            session=session,
        )
    raise PreventUpdate


def download_link(service: Face3DService, trigger: str, values: PageValues, *, session: str) -> tuple[dict, str | None]:
    """Make the file of a button and keep it for the session: ``(link, relief note or None)``.

    The link (``{"url", "filename", "size"}``, a path of the app's ``/face3d/download`` route)
    is what the page receives; the file itself is streamed by the route.
    """
    name, data, note = make_file(service, trigger, values, session=session)
    return service.downloads.prepare(session, name, data), note


def register(app: Dash, service: Face3DService) -> None:
    """Register the download callback (the one writer of ``ids.DOWNLOAD``) and the page's side of it."""

    @app.callback(
        output=Output(ids.DOWNLOAD, "data"),
        inputs={"_clicks": [Input(button, "n_clicks") for button in BUTTONS]},
        state={
            "depth_result": State(ids.DEPTH_RESULT_STORE, "data"),
            "raw_view": view_dependencies(State),
            "relief": {
                "width": State(ids.MODEL3D_RELIEF_WIDTH, "value"),
                "base": State(ids.MODEL3D_RELIEF_BASE, "value"),
                "scale": State(ids.MODEL3D_RELIEF_SCALE, "value"),
            },
            "compare_data": State(ids.COMPARE_RESULT_STORE, "data"),
            "compare_pair": {
                "first": State(ids.COMPARE_PAIR_FIRST, "value"),
                "second": State(ids.COMPARE_PAIR_SECOND, "value"),
            },
        },
        running=[(Output(ids.DOWNLOAD_STATUS, "children"), PREPARING, "")],
        prevent_initial_call=True,
    )
    def _download(_clicks, depth_result, raw_view, relief, compare_data, compare_pair):
        if not ctx.triggered or not ctx.triggered[0].get("value") or ctx.triggered_id not in BUTTONS:
            raise PreventUpdate
        values = PageValues.parse(depth_result, raw_view, relief, compare_data, compare_pair)
        link, note = download_link(service, ctx.triggered_id, values, session=current_session())
        if note is not None:
            set_props(ids.MODEL3D_RELIEF_INFO, {"children": note})
        return {**link, "url": app.get_relative_path("/" + link["url"])}

    app.clientside_callback(  # the page follows the link, and notes which file it started
        ClientsideFunction(namespace="face3d", function_name="startDownload"),
        Output(ids.DOWNLOAD_STARTED, "data"),
        Input(ids.DOWNLOAD, "data"),
        prevent_initial_call=True,
    )
