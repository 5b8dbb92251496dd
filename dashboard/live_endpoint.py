"""The live depth endpoint: ``POST /face3d/live/frame``, one camera frame in, its depth picture out.

A plain Flask route, not a Dash callback: a frame is a few tens of kilobytes of JPEG sent as the
request body (no base64, no JSON, no callback graph), and the answer is a JPEG. The page
(``assets/face3d_camera.js``) sends the next frame only when the last one was answered.

Who may send frames: the page of a session (the signed session cookie of
:mod:`dashboard.sessions`; a request without one gets 403), from the app's own origin. A
cross-site page cannot make a browser send one: the request must carry the header
:data:`LIVE_HEADER`, which a form cannot set and a cross-origin script cannot send without a
CORS preflight that this app never grants; where the browser says where a request comes from
(``Sec-Fetch-Site``, else ``Origin``), it must be this site; and the cookie is ``SameSite=Lax``.

Query: ``precision`` (``fp32``/``bf16``, as this server offers) and ``colormap`` (a Depth tab
colour map). Answer: ``200 image/jpeg`` with ``X-Face3D-Crop: x0,y0,x1,y1`` (the face crop in
frame pixels, or ``none``), ``X-Face3D-Frame: WxH`` and ``Server-Timing`` (each step's
milliseconds); or a JSON ``{"code", "message", "retry_after_s"}`` with 400, 403, 413, 415, 429
or 503 and ``Retry-After`` where the page should try again (see
:class:`~dashboard.services.live.LiveRefusal`). Nothing of a frame is stored or logged.
"""

from __future__ import annotations

import logging
import math
from urllib.parse import urlsplit

from flask import Flask, Request, Response, g, jsonify, request

from dashboard.services.errors import LiveRefusal
from dashboard.services.live import LiveStreams
from dashboard.services.model_status import PrecisionChoices
from dashboard.sessions import current_session
from face3d_core.figures import DEFAULT_COLORMAP, DEPTH_COLORMAPS

logger = logging.getLogger(__name__)

#: Where frames go (relative to the app's root).
LIVE_FRAME_PATH = "/face3d/live/frame"
#: The header the page sends with every frame (value ``1``); see the module docstring.
LIVE_HEADER = "X-Face3D-Live"


def same_site(req: Request) -> bool:
    """True unless the browser says the request comes from another site or origin.

    ``Sec-Fetch-Site`` (every current browser sends it) must be ``same-origin``; without it, an
    ``Origin`` header must name this host; a request with neither (an old browser, a script)
    is judged by the other checks (custom header, session cookie).
    """
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = req.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == req.host
    return True


def refusal_response(status: int, code: str, message: str, retry_after_s: float | None = None) -> Response:
    """The JSON answer to a frame that was not computed."""
    response = jsonify({"code": code, "message": message, "retry_after_s": retry_after_s})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(max(0, math.ceil(retry_after_s)))
    return response


def register_live_endpoint(server: Flask, live: LiveStreams, precision: PrecisionChoices) -> None:
    """Add ``POST`` :data:`LIVE_FRAME_PATH` to the app's Flask server.

    Args:
        server: The Flask server (``app.server``), with :class:`~dashboard.sessions.SessionCookies` installed.
        live: The live streams of this process.
        precision: The precisions this server offers (others get its default).
    """
    limits = live.limits

    @server.route(LIVE_FRAME_PATH, methods=["POST"])
    def face3d_live_frame() -> Response:
        if request.headers.get(LIVE_HEADER) != "1" or not same_site(request):
            return refusal_response(403, "forbidden", "Live frames are taken only from the face3d page itself.")
        if g.get("face3d_session_new", True):
            return refusal_response(403, "session", "Reload the page to start the live view.")
        if request.mimetype != "image/jpeg":
            return refusal_response(415, "frame", "A camera frame must be a JPEG image.")
        too_large = f"A camera frame may be at most {limits.max_bytes // 1024} kB."
        if request.content_length is not None and request.content_length > limits.max_bytes:
            return refusal_response(413, "frame", too_large)
        data = request.stream.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:  # a chunked body without a declared length
            return refusal_response(413, "frame", too_large)
        chosen = request.args.get("precision", "")
        chosen = chosen if chosen in precision.options else precision.default
        colormap = request.args.get("colormap", "")
        colormap = colormap if colormap in DEPTH_COLORMAPS else DEFAULT_COLORMAP
        try:
            frame = live.frame(current_session(), data, precision=chosen, colormap=colormap)
        except LiveRefusal as refused:
            return refusal_response(refused.status, refused.code, refused.message, refused.retry_after_s)
        except Exception:  # noqa: BLE001 - one failed frame must not take the page down (no frame data is logged)
            logger.exception("A live frame failed")
            return refusal_response(500, "error", "The live view failed on the server; turn it off and on again.")
        response = Response(frame.jpeg, mimetype="image/jpeg")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        crop = frame.crop_xyxy
        response.headers["X-Face3D-Crop"] = ",".join(str(v) for v in crop) if crop is not None else "none"
        response.headers["X-Face3D-Frame"] = "{}x{}".format(*frame.frame_size_wh)
        response.headers["Server-Timing"] = ", ".join(f"{k};dur={v:.1f}" for k, v in frame.timings_ms.items())
        return response
