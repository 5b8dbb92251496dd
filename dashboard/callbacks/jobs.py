"""The generic job controller of a tab: start, poll (progress bar) and cancel a background job.

Each tab that runs long work gets one controller callback. Its outputs are the job's store,
the polling interval, the progress panel and the tab's result store; a cache hit (or work short
enough to do in the callback itself) skips the job entirely and fills the result store at once.

Polling never makes the user wait long: the interval is switched on when a job starts, with
its first tick :data:`FIRST_POLL_MS` after the start (a job that takes a quarter of a second
is seen finished on the first or second poll), then every :data:`POLL_MS` while the job runs,
and switched off when it ends (``dcc.Interval`` restarts its timer whenever ``interval``
changes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from dash import Dash, Input, NoUpdate, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.errors import AlertInfo, safe_message, show_alert
from dashboard.jobs import FIRST_POLL_MS, POLL_MS, JobRunner, JobState, JSONObject
from dashboard.sessions import current_session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartOutcome:
    """What pressing a tab's Generate button led to: a finished result or a queued job."""

    result: JSONObject | None = None
    job_id: str | None = None


@dataclass
class JobView:
    """Values of a job controller's outputs.

    Attributes:
        job: The job store (``{"id": ...}``) or None when idle.
        interval_disabled: Whether polling is off.
        interval_ms: Milliseconds to the next poll (:data:`FIRST_POLL_MS` right after a start,
            :data:`POLL_MS` while the job runs), or ``no_update``.
        panel_hidden: Whether the progress panel is hidden.
        progress: Percent done.
        label: Text on the progress bar.
        message: Text under the progress bar.
        result: New value of the tab's result store, or ``no_update``.
        busy: Disable the Generate button.
        alert: An alert to show (a failed job).
    """

    job: dict | None = None
    interval_disabled: bool = True
    interval_ms: int | NoUpdate = field(default_factory=lambda: no_update)
    panel_hidden: bool = True
    progress: float = 0.0
    label: str = ""
    message: str = ""
    result: JSONObject | None | NoUpdate = field(default_factory=lambda: no_update)
    busy: bool = False
    alert: AlertInfo | None = None

    def outputs(self) -> tuple:
        """The callback's return tuple, in the order of :func:`register_job_controller`'s outputs."""
        return (
            self.job,
            self.interval_disabled,
            self.interval_ms,
            self.panel_hidden,
            self.progress,
            self.label,
            self.message,
            self.result,
            self.busy,
        )


def start_view(outcome: StartOutcome) -> JobView:
    """View right after Generate: a cache hit shows the result; a job shows the progress panel."""
    if outcome.job_id is None:
        return JobView(result=outcome.result)
    return JobView(
        job={"id": outcome.job_id},
        interval_disabled=False,
        interval_ms=FIRST_POLL_MS,
        panel_hidden=False,
        progress=2,
        label="",
        message="Waiting to start...",
        busy=True,
    )


def poll_view(runner: JobRunner, job: object, *, session: str) -> JobView:
    """View for the job's current status (called by the interval).

    A job id that is not one the server issued to ``session`` is the same as an unknown one.
    """
    job_id = job.get("id") if isinstance(job, dict) else None
    if not job_id:
        return JobView()
    status = runner.status(job_id, session)
    if status is None:
        return JobView(message="The job was lost; please start it again.", panel_hidden=False)
    if status.state == JobState.DONE:
        return JobView(result=status.result)
    if status.state == JobState.FAILED:
        title = status.error_title or "Something went wrong"
        return JobView(
            alert=AlertInfo(
                title,
                safe_message(title, status.error_message or "The job failed. Please try again."),
                "warning",
                file_name=status.error_file,
                url=status.error_url,
            )
        )
    if status.state == JobState.CANCELLED:
        return JobView(panel_hidden=False, message="Cancelled.", progress=0)
    percent = round(100 * status.progress)
    return JobView(
        job={"id": job_id},
        interval_disabled=False,
        interval_ms=POLL_MS,
        panel_hidden=False,
        progress=max(percent, 2),
        label=f"{percent}%" if percent >= 10 else "",
        message=status.message,
        busy=True,
    )


def cancel_view(runner: JobRunner, job: object, *, session: str) -> JobView:
    """Cancel the session's running job (if any) and show that at once.

    Anything but a job id the server issued to ``session`` is ignored (never stored nor logged).
    """
    job_id = job.get("id") if isinstance(job, dict) else None
    if job_id and runner.cancel(job_id, session):
        logger.info("Job %s cancelled by the user", job_id[:12])
    return JobView(panel_hidden=False, message="Cancelled.", progress=0)


def register_job_controller(
    app: Dash,
    runner: JobRunner,
    prefix: str,
    *,
    trigger_id: str,
    result_store_id: str,
    states: list[State],
    start: Callable[..., StartOutcome],
) -> None:
    """Register one tab's job controller.

    Args:
        app: The Dash app.
        runner: The job runner.
        prefix: The tab's job prefix (see :data:`dashboard.ids.JOB_PREFIXES`).
        trigger_id: The tab's Generate button.
        result_store_id: Store that receives the job's result dict.
        states: Extra states passed to ``start``.
        start: ``start(*state_values, session=...) -> StartOutcome``; raises Face3DError for user errors.
    """

    @app.callback(
        Output(ids.job_store(prefix), "data"),
        Output(ids.job_interval(prefix), "disabled"),
        Output(ids.job_interval(prefix), "interval"),
        Output(ids.job_panel(prefix), "hidden"),
        Output(ids.job_progress(prefix), "value"),
        Output(ids.job_progress(prefix), "label"),
        Output(ids.job_message(prefix), "children"),
        Output(result_store_id, "data"),
        Output(trigger_id, "disabled"),
        Input(trigger_id, "n_clicks"),
        Input(ids.job_interval(prefix), "n_intervals"),
        Input(ids.job_cancel(prefix), "n_clicks"),
        State(ids.job_store(prefix), "data"),
        *states,
        prevent_initial_call=True,
    )
    def _controller(_start, _tick, _cancel, job, *state_values):
        trigger = ctx.triggered_id
        session = current_session()
        if trigger == trigger_id:
            if isinstance(job, dict) and job.get("id"):
                raise PreventUpdate  # a job is already running for this tab
            view = start_view(start(*state_values, session=session))
        elif trigger == ids.job_interval(prefix):
            view = poll_view(runner, job, session=session)
        elif trigger == ids.job_cancel(prefix):
            view = cancel_view(runner, job, session=session)
        else:
            raise PreventUpdate
        if view.alert is not None:
            show_alert(view.alert)
        return view.outputs()
