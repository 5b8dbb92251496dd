"""One app-wide error handler: typed core errors become dismissable alerts, nothing else leaks.

:func:`handle_callback_error` is passed to ``Dash(on_error=...)``. A
:class:`~face3d_core.errors.Face3DError` is shown with its title and its web message (what is
wrong, what to do; no server paths, no raw exception text); any other exception is logged with
its traceback on the server and the page gets a short message with a reference id to find it in
the log. No traceback ever reaches the page, and the callback's outputs are left as they were,
so the app keeps working.

A web message that still looks like server internals (a path, a traceback, an OpenCV or urllib
error) is a bug: it is logged with a reference and the page gets the title and a generic line.
Missing weights get the file name, the official URL as a link and the copyable
``face3d models --download <name>`` command (:func:`~dashboard.layout.common.weights_help`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dash_bootstrap_components as dbc
from dash import html, set_props

from dashboard import ids
from dashboard.jobs import describe_unexpected
from dashboard.layout.common import weights_help
from dashboard.services.errors import PhotoMissingError
from face3d_core.errors import Face3DError, WeightsUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Text that must never reach a page: absolute paths (two or more parts, or one under a usual
#: root folder), home-relative paths, Windows paths, tracebacks and raw library errors.
_INTERNAL_PATTERNS = (
    re.compile(r"(?<![\w.:/~])/[\w.@+-]+(?:/[\w.@+-]+)+"),
    re.compile(r"(?<![\w.:/])/(?:tmp|home|root|var|usr|etc|opt|srv|mnt|proc|work|data)\b"),
    re.compile(r"(?<![\w])~/[\w.-]"),
    re.compile(r"\b[A-Za-z]:\\[\w]"),
    re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"),
    re.compile(r"<urlopen error|urllib\.error|\bErrno\b|cv2\.error|OpenCV\(|error: \(-\d+|Assertion failed"),
)


def looks_internal(text: str) -> bool:
    """True when ``text`` holds server internals: a path, a traceback or a raw library error."""
    return any(pattern.search(text or "") for pattern in _INTERNAL_PATTERNS)


@dataclass(frozen=True)
class AlertInfo:
    """An alert to show: title, message, Bootstrap colour, and what to offer.

    Attributes:
        title: What is wrong.
        message: What to do (one or two sentences, no server internals).
        color: Bootstrap colour.
        upload_again: Offer an "Upload again" button (a photo no longer stored).
        file_name: A missing weights file, to offer its download (with ``url``).
        url: The file's official download URL.
    """

    title: str
    message: str
    color: str = "danger"
    upload_again: bool = False
    file_name: str | None = None
    url: str | None = None


def safe_message(title: str, message: str, detail: str | None = None) -> str:
    """``message`` when it is fit for a page; otherwise log it (a bug) and return a generic line.

    Args:
        title: The alert's title (for the log).
        message: The text meant for the page.
        detail: The full text for the log (default ``message``), e.g. the error's user message.
    """
    if not looks_internal(message):
        return message
    reference = uuid.uuid4().hex[:8]
    logger.error(
        "A message with server internals was kept off the page (reference %s): %s: %r",
        reference,
        title,
        detail if detail is not None else message,
    )
    return f"The server could not finish this (reference {reference}). It has been logged; please try again."


def alert_for_exception(err: BaseException) -> AlertInfo:
    """Return what the user should see for an exception (logging unexpected ones)."""
    if isinstance(err, Face3DError):
        logger.info("User-facing error: %s: %r", err.title, err.user_message)
        message = safe_message(err.title, err.web_message, err.user_message)  # no server internals on the page
        if isinstance(err, WeightsUnavailableError):
            return AlertInfo(err.title, message, "warning", file_name=err.file_name, url=err.url)
        return AlertInfo(err.title, message, "warning", upload_again=isinstance(err, PhotoMissingError))
    _, title, message = describe_unexpected(err)
    return AlertInfo(title, message, "danger")


def make_alert(info: AlertInfo) -> dbc.Alert:
    """A dismissable Bootstrap alert (title in bold, message as plain text, help or an offer below).

    Missing weights get their download help; a photo no longer stored gets an "Upload again" button.
    """
    body = [html.Strong(info.title), html.Div(info.message, className="small mt-1")]
    if info.file_name:
        body.append(weights_help(info.file_name, info.url))
    if info.upload_again:
        body.append(
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
        body,
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
