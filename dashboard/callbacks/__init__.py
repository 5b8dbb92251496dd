"""Thin callbacks, one module per tab; :func:`register_callbacks` wires them all."""

from __future__ import annotations

from dash import Dash

from dashboard.callbacks import camera, choices, compare, depth, downloads, measure, model3d, page, upload
from dashboard.jobs import JobRunner
from dashboard.services import Face3DService


def register_callbacks(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register every callback of the dashboard on ``app``."""
    upload.register(app, service)
    camera.register(app)
    choices.register(app, service)
    depth.register(app, service, runner)
    model3d.register(app, service, runner)
    compare.register(app, service, runner)
    downloads.register(app, service)
    measure.register(app, service)
    page.register(app)
