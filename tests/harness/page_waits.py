"""Waiting for a page's events instead of sleeping: requests in flight, pending figures, drawn frames.

Every browser context of the tests runs :data:`INFLIGHT_JS` before the page's own scripts
(:func:`track_requests`): it counts the page's ``fetch`` and ``XMLHttpRequest`` calls still in
flight in ``window.face3dInflight`` (Dash sends every callback with ``fetch``). Then

* :func:`settle` waits until the page is idle: no request in flight, no figure pending, no
  component loading, for :data:`CALM_FRAMES` animation frames in a row (a callback that an input
  event is about to send shows up within a frame);
* :func:`next_frames` waits for the browser to draw ``n`` more frames (a WebGL scene draws in the
  frame after its layout).
"""

from __future__ import annotations

#: Counts requests in flight; installed in every context before any page script runs.
INFLIGHT_JS = """(() => {
  if (window.face3dInflight !== undefined) return;
  window.face3dInflight = 0;
  const origFetch = window.fetch;
  if (origFetch) {
    window.fetch = function (...args) {
      window.face3dInflight += 1;
      return origFetch.apply(this, args).finally(() => { window.face3dInflight -= 1; });
    };
  }
  const origSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    window.face3dInflight += 1;
    this.addEventListener('loadend', () => { window.face3dInflight -= 1; }, { once: true });
    return origSend.apply(this, args);
  };
})();"""

#: Animation frames in a row the page must stay idle for :func:`settle`.
CALM_FRAMES = 3

_IDLE_FOR_FRAMES_JS = """(calm) => {
  const idle = (window.face3dInflight || 0) === 0
    && !document.querySelector('.dash-graph--pending, [data-dash-is-loading="true"]');
  window.face3dCalmFrames = idle ? (window.face3dCalmFrames || 0) + 1 : 0;
  return window.face3dCalmFrames >= calm;
}"""


def track_requests(context) -> None:
    """Install :data:`INFLIGHT_JS` in a Playwright browser context (before its pages load)."""
    context.add_init_script(INFLIGHT_JS)


def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the page has been idle for :data:`CALM_FRAMES` frames (see the module docstring)."""
    page.evaluate("window.face3dCalmFrames = 0")
    page.wait_for_function(_IDLE_FOR_FRAMES_JS, arg=CALM_FRAMES, polling="raf", timeout=timeout_ms)


def next_frames(page, n: int = 2) -> None:
    """Wait until the browser has drawn ``n`` more animation frames."""
    page.evaluate(
        """(n) => new Promise(done => {
          const step = (left) => left <= 0 ? done(true) : requestAnimationFrame(() => step(left - 1));
          step(n);
        })""",
        n,
    )


class RequestTrackingBrowser:
    """A Playwright ``Browser`` whose every new context tracks requests (:func:`track_requests`).

    Everything else is the wrapped browser's.
    """

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **kwargs):
        """``Browser.new_context`` with :data:`INFLIGHT_JS` installed."""
        context = self._browser.new_context(**kwargs)
        track_requests(context)
        return context

    def __getattr__(self, name: str):
        return getattr(self._browser, name)
