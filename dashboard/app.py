"""The app factory: ``create_app()`` builds the face3d dashboard (layout, callbacks, routes).

Example:
    >>> from dashboard.app import create_app
    >>> app = create_app(cache_dir="/tmp/face3d-cache")        # doctest: +SKIP
    >>> app.run(host="127.0.0.1", port=8050)                     # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Dash
from flask import Response, abort, send_file

from dashboard.allocator import tune_allocator
from dashboard.callbacks import register_callbacks
from dashboard.callbacks.choices import model_options
from dashboard.errors import handle_callback_error
from dashboard.jobs import DiskJobStore, JobIds, JobRunner, ThreadJobRunner
from dashboard.layout import PRODUCT_NAME, build_layout
from dashboard.live_endpoint import register_live_endpoint
from dashboard.request_limits import limit_requests
from dashboard.services import Face3DService
from dashboard.services.access import DiskMembershipStore, MembershipStore
from dashboard.services.depth import EstimatorFactory
from dashboard.services.downloads import DiskSpool, Downloads, StoreSpool
from dashboard.services.live import LIVE_SCALE_OUT_MESSAGE, LiveLimits
from dashboard.services.model_status import precision_choices_here
from dashboard.sessions import SessionCookies, current_session, server_secret
from face3d_core import decode_sandbox, figures
from face3d_core.cache import ResultCache, ResultStore
from face3d_core.config import get_settings
from face3d_core.models.registry import DEFAULT_MODEL
from face3d_core.weights import cache_dir as default_cache_dir
from face3d_core.weights import offline

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
#: Largest request body accepted (several photos of up to 25 MB, base64-encoded).
MAX_REQUEST_BYTES = 320 * 1024 * 1024
_BOOTSTRAP_RELATIVE = ("static", "bootstrap5", "css", "bootstrap.min.css")


@dataclass
class AppContext:
    """What tests and benchmarks may reach through ``app.face3d``."""

    service: Face3DService
    runner: JobRunner
    cache: ResultStore  # ResultCache, or RedisResultCache in scale-out mode
    cache_dir: Path


def local_bootstrap_css() -> Path | None:
    """Return the Bootstrap 5 CSS file shipped by the ``Bootstrap-Flask`` package, if installed.

    Serving it locally keeps the app working offline (no CDN), which the browser tests rely on.
    """
    spec = importlib.util.find_spec("flask_bootstrap")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*_BOOTSTRAP_RELATIVE)
        if path.is_file():
            return path
    return None


def _register_routes(app: Dash, service: Face3DService, bootstrap_css: Path | None) -> None:
    server = app.server

    @server.route("/face3d/thumb/<sha>.jpg")
    def face3d_thumbnail(sha: str) -> Response:
        # only for a session that uploaded this photo: 404 otherwise, as for a photo never stored
        meta = service.access.meta(current_session(), sha)
        if meta is None or not meta.thumb_jpeg:
            abort(404)
        response = Response(meta.thumb_jpeg, mimetype="image/jpeg")
        response.headers["Cache-Control"] = "private, max-age=86400, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @server.route("/face3d/download/<token>/<filename>")
    def face3d_download(token: str, filename: str) -> Response:
        # a prepared download, only for the session it was made for: 404 otherwise (as for any unknown link)
        found = service.downloads.find(current_session(), token, filename)
        if found is None:
            abort(404)
        response = send_file(  # from disk in chunks (sendfile where the server can), or the bytes kept
            found.path if found.path is not None else io.BytesIO(found.data or b""),
            mimetype=found.media_type,
            as_attachment=True,
            download_name=found.filename,
            conditional=False,
            etag=False,
            max_age=0,
        )
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return response

    @server.route("/face3d/health")
    def face3d_health() -> dict | tuple[dict, int]:
        if not service.cache.ping():  # e.g. the shared Redis of a scale-out deployment is down
            return {"status": "unavailable", "reason": "the shared result cache cannot be reached"}, 503
        return {"status": "ok"}

    @server.route("/face3d/warmup")
    def face3d_warmup() -> dict:
        # the start-up work: {"depth_model": {"model", "state": loading/ready/failed, "seconds"} or None}
        return service.warmup.status()

    if bootstrap_css is not None:

        @server.route("/face3d/vendor/bootstrap.min.css")
        def face3d_bootstrap_css() -> Response:
            response = send_file(bootstrap_css, mimetype="text/css", max_age=86400)
            return response

    @server.errorhandler(500)
    def face3d_server_error(_error) -> tuple[str, int]:
        return "The server could not handle this request. Please try again.", 500


def create_app(
    cache_dir: str | os.PathLike | None = None,
    *,
    size_limit_mb: float | None = None,
    runner: JobRunner | None = None,
    job_workers: int | None = None,
    estimator_factory: EstimatorFactory | None = None,
    detector_path: str | os.PathLike | None = None,
    redis_url: str | None = None,
    warm_up: bool = False,
) -> Dash:
    """Build the dashboard.

    Args:
        cache_dir: The face3d cache folder (results in ``results/``, job records in ``jobs/``,
            which session uploaded which photo in ``sessions/``, the server secret in
            ``secret_key``); default ``$FACE3D_CACHE_DIR`` or ``~/.cache/face3d``.
        size_limit_mb: Result cache size limit (default ``$FACE3D_CACHE_SIZE_MB`` or 2048).
        runner: A job runner (default: a :class:`~dashboard.jobs.ThreadJobRunner` in this process,
            or a :class:`~dashboard.jobs_celery.CeleryJobRunner` when a Redis URL is set).
        job_workers: Threads of the default runner (default ``$FACE3D_JOB_WORKERS`` or 1).
        estimator_factory: ``(model name, precision) -> estimator`` (tests inject a fake; default: one loaded
            network per process, see :class:`~dashboard.services.Face3DService`).
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`).
        redis_url: Scale-out mode (default ``$FACE3D_REDIS_URL``; empty: off). Results live in
            Redis (:class:`~face3d_core.cache.redis.RedisResultCache`, same keys as the disk
            cache) and jobs run on Celery workers (``celery -A dashboard.celery_app worker``);
            this process then never loads a depth network.
        warm_up: Start the server's start-up work in the background now
            (:class:`~dashboard.services.warmup.Warmup`: the default depth network unless in
            scale-out mode, the face detector, plotly); ``python -m dashboard`` and
            ``dashboard.wsgi`` do. Otherwise plotly is warmed here and the network loads on the
            first job.

    Returns:
        The Dash app; ``app.face3d`` holds the service, runner and cache.
    """
    tune_allocator()  # large arrays come and go: give their memory back (dashboard/allocator.py)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if redis_url is None:
        redis_url = get_settings().redis_url or ""
    cache: ResultStore
    members: MembershipStore
    if redis_url:
        from dashboard.services.access import RedisMembershipStore
        from face3d_core.cache.redis import RedisResultCache, redact_url

        cache = RedisResultCache(redis_url)
        members = RedisMembershipStore(redis_url)
        logger.info("Scale-out mode: results in Redis at %s, jobs on Celery workers", redact_url(redis_url))
    else:
        cache = ResultCache(base / "results", size_limit_mb=size_limit_mb)
        members = DiskMembershipStore(base / "sessions")
    secret = server_secret(base, redis_url or None)
    spool = StoreSpool(cache) if redis_url else DiskSpool(base / "downloads")
    service = Face3DService(
        cache,
        estimator_factory=estimator_factory,
        detector_path=detector_path,
        members=members,
        live_limits=LiveLimits(max_streams=get_settings().live_streams),
        live_off_reason=LIVE_SCALE_OUT_MESSAGE if redis_url else None,  # web workers load no network there
        downloads=Downloads(secret, spool),
    )
    if runner is None:
        if redis_url:
            from dashboard.jobs_celery import CeleryJobRunner

            runner = CeleryJobRunner.from_url(redis_url, kinds=service.tasks(), job_ids=JobIds(secret))
        else:
            runner = ThreadJobRunner(
                DiskJobStore(base / "jobs"), service.tasks(), max_workers=job_workers, job_ids=JobIds(secret)
            )

    bootstrap_css = local_bootstrap_css()
    app = Dash(
        __name__,
        title=PRODUCT_NAME,
        update_title=None,
        assets_folder=str(ASSETS_DIR),
        on_error=handle_callback_error,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    if bootstrap_css is not None:
        app.config.external_stylesheets = [app.get_relative_path("/face3d/vendor/bootstrap.min.css")]
    elif offline():
        logger.warning("Bootstrap-Flask is not installed and FACE3D_OFFLINE is set: the page is unstyled")
    else:
        logger.warning("Bootstrap-Flask is not installed; loading Bootstrap from a CDN (needs internet)")
        app.config.external_stylesheets = [dbc.themes.BOOTSTRAP]
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    SessionCookies(secret).install(app.server)
    limit_requests(app.server, MAX_REQUEST_BYTES)  # 413 for chunked bodies too, and slow bodies cut off

    # A function, so every page load shows the current state of the weights.
    precision = precision_choices_here()  # the CPU's abilities do not change while the server runs
    app.layout = lambda: build_layout(model_options(), DEFAULT_MODEL, precision)
    register_callbacks(app, service, runner)
    _register_routes(app, service, bootstrap_css)
    register_live_endpoint(app.server, service.live, precision)
    if warm_up:
        service.warmup.start(None if redis_url else DEFAULT_MODEL, precision=precision.default)
    else:
        figures.warm_up()
    decode_sandbox.SANDBOX.prestart()  # uploads are decoded in a budgeted process, ready before the first one
    service.janitor.start()  # large results idle in memory are dropped, and the memory given back
    app.face3d = AppContext(service=service, runner=runner, cache=cache, cache_dir=base)
    logger.info("face3d dashboard ready (cache %s)", cache.location)
    return app
