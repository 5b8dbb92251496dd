"""One app-wide error handler: typed core errors become dismissable alerts, nothing else leaks.

:func:`handle_callback_error` is passed to ``Dash(on_error=...)``. A
:class:`~face3d_core.errors.Face3DError` is shown with its title and user message; any other
exception is logged with its traceback on the server and the page gets a short message with
a reference id to find it in the log. No traceback ever reaches the page, and the callback's
outputs are left as they were, so the app keeps working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dash_bootstrap_components as dbc
from dash import html, set_props

from dashboard import ids
from dashboard.jobs import describe_unexpected
from dashboard.services.errors import PhotoMissingError
from face3d_core.errors import Face3DError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AlertInfo:
    """An alert to show: title, message, Bootstrap colour, and whether to offer uploading again."""

    title: str
    message: str
    color: str = "danger"
    upload_again: bool = False


def alert_for_exception(err: BaseException) -> AlertInfo:
    """Return what the user should see for an exception (logging unexpected ones)."""
    if isinstance(err, Face3DError):
        logger.info("User-facing error: %s: %r", err.title, err.user_message)
        # no server paths on the page
        return AlertInfo(err.title, err.web_message, "warning", upload_again=isinstance(err, PhotoMissingError))
    _, title, message = describe_unexpected(err)
    return AlertInfo(title, message, "danger")


def make_alert(info: AlertInfo) -> dbc.Alert:
    """A dismissable Bootstrap alert (title in bold, message as plain text, maybe an "Upload again" button)."""
    children = [html.Strong(info.title), html.Div(info.message, className="small mt-1")]
    if info.upload_again:
        children.append(
            dbc.Button(
                "Upload again",
                id={"type": ids.UPLOAD_AGAIN, "index": time.time_ns()},
                n_clicks=0,
                size="sm",
                color="primary",
                className="mt-2",
            )
        )
    return dbc.Alert(
        children,
        color=info.color,
        dismissable=True,
        is_open=True,
        className="shadow-sm face3d-alert",
        # a fresh id per alert so an alert dismissed earlier does not hide the new one
        id=f"alert-{time.time_ns()}",
    )


def show_alert(info: AlertInfo) -> None:
    """Show an alert from inside a running callback (replaces the previous one)."""
    set_props(ids.ALERTS, {"children": [make_alert(info)]})


def shown_or_explained(render: Callable[[], T], empty: T) -> T:
    """A view, or (for a user-facing error such as a photo no longer stored) the empty view and an alert.

    So a tab never silently goes blank: it shows nothing *and* says why, with the same alert
    (and the same "Upload again" offer) on every tab.
    """
    try:
        return render()
    except Face3DError as exc:
        show_alert(alert_for_exception(exc))
        return empty


def handle_callback_error(err: Exception) -> None:
    """``Dash(on_error=...)``: show the error as an alert; leave the callback's outputs unchanged."""
    show_alert(alert_for_exception(err))
    return None
