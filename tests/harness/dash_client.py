"""The dashboard's callbacks called exactly like the browser calls them.

The browser loads ``/_dash-dependencies`` (the callback map) and ``/_dash-layout``, then POSTs to
``/_dash-update-component`` for every callback. :class:`DashHttp` does the same, over HTTP with
``requests`` (a real server process) or in process with Flask's test client (benchmarks).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from dashboard import ids

UPDATE_PATH = "_dash-update-component"


class CallbackError(Exception):
    """A request that did not return 200/204, or (when refused) a response that showed an alert."""


@dataclass(frozen=True)
class Reply:
    """One HTTP response, whichever way it was fetched."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Timing:
    """One request: what it was, how long the server took (seconds) and the response size (bytes)."""

    kind: str
    seconds: float
    size_bytes: int


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    """The ``data:`` URL ``dcc.Upload`` sends for a file."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _split_outputs(output_spec: str) -> list[str]:
    if output_spec.startswith(".."):
        return [part for part in output_spec.strip(".").split("...") if part]
    return [output_spec]


def _value(values: Mapping[str, Any], item: dict) -> Any:
    key = f"{item['id']}.{item['property']}"
    return values[key] if key in values else values.get(item["id"])


class DashHttp:
    """The dashboard's callbacks as the browser calls them; one instance per simulated user.

    Args:
        base_url: ``http://127.0.0.1:<port>/``.
        session: A ``requests.Session`` (one per simulated user: its own connection).
        timeout: Seconds per request.
        recorder: Called with the :class:`Timing` of every request (latency statistics).
        refuse_alerts: Raise :class:`CallbackError` when a callback response shows an alert.
    """

    def __init__(
        self,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 120.0,
        *,
        recorder: Callable[[Timing], None] | None = None,
        refuse_alerts: bool = False,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.session = session or requests.Session()
        self.timeout = timeout
        self.recorder = recorder
        self.refuse_alerts = refuse_alerts
        #: The latest request's timing.
        self.last: Timing | None = None
        self._deps: list[dict] | None = None
        self._flask_client = None

    @classmethod
    def in_process(cls, dash_app: Any, **kwargs: Any) -> DashHttp:
        """The same client on a Dash app in this process (Flask's test client: no server, no socket)."""
        client = cls("http://in-process/", **kwargs)
        client._flask_client = dash_app.server.test_client()
        return client

    # -- plain requests -------------------------------------------------------------------

    def _request(self, method: str, path: str, kind: str, body: dict | None = None) -> Reply:
        path = path.lstrip("/")
        started = time.perf_counter()
        if self._flask_client is not None:
            response = self._flask_client.open("/" + path, method=method, json=body)
            reply = Reply(response.status_code, response.get_data(), response.headers)
        else:
            response = self.session.request(method, self.base_url + path, json=body, timeout=self.timeout)
            reply = Reply(response.status_code, response.content, response.headers)
        self.last = Timing(kind, time.perf_counter() - started, len(reply.content))
        if self.recorder is not None:
            self.recorder(self.last)
        return reply

    def get(self, path: str, *, kind: str | None = None) -> Reply:
        """GET a path of the app (``kind`` labels it in the timings; default: the path)."""
        return self._request("GET", path, kind or path)

    def get_json(self, path: str, *, kind: str | None = None) -> Any:
        """GET a path and parse its JSON (:class:`CallbackError` unless HTTP 200)."""
        reply = self.get(path, kind=kind)
        if reply.status_code != 200:
            raise CallbackError(f"GET /{path.lstrip('/')} -> HTTP {reply.status_code}")
        return reply.json()

    # -- the Dash protocol ----------------------------------------------------------------

    def dependencies(self) -> list[dict]:
        """The callback map (``/_dash-dependencies``), fetched on first use."""
        if self._deps is None:
            self._deps = self.get_json("_dash-dependencies", kind="dependencies")
        return self._deps

    def layout(self) -> Any:
        """The page's component tree (``/_dash-layout``)."""
        return self.get_json("_dash-layout", kind="layout")

    def dependency(self, trigger: tuple[str, str], output_id: str | None = None) -> dict:
        """The callback that ``trigger`` (component id, property) fires (and that writes ``output_id``)."""
        for dep in self.dependencies():
            if not any((i["id"], i["property"]) == trigger for i in dep["inputs"]):
                continue
            if output_id is None or any(
                spec.split("@")[0].rsplit(".", 1)[0] == output_id for spec in _split_outputs(dep["output"])
            ):
                return dep
        raise KeyError(f"no callback for {trigger} -> {output_id}")

    def call(
        self,
        trigger: tuple[str, str],
        values: Mapping[str, Any],
        *,
        output_id: str | None = None,
        kind: str | None = None,
    ) -> dict | None:
        """POST one callback; ``values`` maps ``"id.prop"`` or ``"id"`` to the values of its inputs and states.

        Args:
            trigger: The (component id, property) that changed.
            values: Values of the callback's inputs and states (missing ones are None).
            output_id: Pick the callback of ``trigger`` that writes this component.
            kind: Label of the request in the timings (default ``"id.prop"`` of the trigger).

        Returns:
            The response JSON, or None for "no update" (HTTP 204).

        Raises:
            CallbackError: Any other HTTP status, or an alert while :attr:`refuse_alerts` is set.
        """
        dep = self.dependency(trigger, output_id)
        outputs = []
        for spec in _split_outputs(dep["output"]):
            component, prop = spec.split("@")[0].rsplit(".", 1)
            outputs.append({"id": component, "property": prop})
        body = {
            "output": dep["output"],
            "outputs": outputs if dep["output"].startswith("..") else outputs[0],
            "inputs": [{"id": i["id"], "property": i["property"], "value": _value(values, i)} for i in dep["inputs"]],
            "state": [{"id": s["id"], "property": s["property"], "value": _value(values, s)} for s in dep["state"]],
            "changedPropIds": [f"{trigger[0]}.{trigger[1]}"],
        }
        kind = kind or f"{trigger[0]}.{trigger[1]}"
        reply = self._request("POST", UPDATE_PATH, kind, body)
        if reply.status_code == 204:
            return None
        if reply.status_code != 200:
            raise CallbackError(f"{trigger}: HTTP {reply.status_code}: {reply.text[:300]}")
        response = reply.json()
        alerts = alert_texts(response)
        if alerts and self.refuse_alerts:
            raise CallbackError(f"{kind}: the app showed an alert: {alerts[0][:300]}")
        return response


def output(response: dict | None, component: str, prop: str, default: Any = None) -> Any:
    """A value of a callback response (``default`` when not updated)."""
    if not response:
        return default
    return response.get("response", {}).get(component, {}).get(prop, default)


def alert_texts(response: dict | None) -> list[str]:
    """Texts of the alerts a callback showed through ``set_props`` (the app-wide error handler)."""
    if not response:
        return []
    side = response.get("sideUpdate", {}).get(ids.ALERTS, {})
    return [json.dumps(side)] if side else []


def layout_values(layout: Any) -> dict[str, Any]:
    """``{component id: value}`` of every component with a ``value`` prop in ``/_dash-layout``."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str) and "value" in props:
                found[props["id"]] = props["value"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout)
    return found
