"""Driving the dashboard's callbacks as plain functions: a started job polled to its end, the 3D view's page values."""

from __future__ import annotations

import time

from dash import no_update

from dashboard.callbacks.jobs import StartOutcome, poll_view, start_view
from dashboard.controls import ModelView
from dashboard.jobs import JobRunner


def finish_job(runner: JobRunner, outcome: StartOutcome, session: str, timeout_s: float = 60.0) -> dict:
    """Poll a started job like the page's interval does; return the result store's value.

    An outcome served at once (no job) returns its result directly. A job that shows an alert
    fails the calling test with it.

    Raises:
        AssertionError: An alert, or no result within ``timeout_s``.
    """
    view = start_view(outcome)
    if outcome.job_id is None:
        return view.result
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = poll_view(runner, view.job, session=session)
        if view.result is not no_update:
            return view.result
        assert view.alert is None, view.alert
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def page_view(
    source: object,
    smoothing: object = None,
    density: object = None,
    depth_scale: object = None,
    *,
    fov_auto: object = True,
    fov_deg: object = None,
    display: object = None,
    colors: object = None,
) -> ModelView:
    """The 3D view the page's values name, parsed as the callbacks parse them (:meth:`ModelView.parse`)."""
    raw = {
        "source": source,
        "smoothing": smoothing,
        "density": density,
        "depth_scale": depth_scale,
        "fov_auto": fov_auto,
        "fov_deg": fov_deg,
    }
    return ModelView.parse(raw).shown_as(display, colors)
