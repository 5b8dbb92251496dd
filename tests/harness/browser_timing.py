"""Timing in a real browser: when the user acted, when a figure's data arrived, when it was drawn.

:data:`TIMING_JS` goes into a page before it loads (``page.add_init_script``, see :func:`install`)
and records, in ``performance.now()`` milliseconds of the page:

* every click and key press (capture phase, so before the app sees it);
* every Dash callback request (``fetch`` of ``_dash-update-component``): its outputs, the inputs
  that triggered it, when it was sent and when its whole response had arrived;
* every ``Plotly.react`` (what ``dcc.Graph`` calls to draw): the graph's id, when it was called,
  when plotly had built the figure (its promise), and the second animation frame after that,
  when the browser has painted it (WebGL scenes draw on the next frame), with the trace types
  and point counts.

:func:`wait_for_draw` turns these into one :class:`DrawTiming`: user action to figure data, to
figure drawn, and the ``Plotly.react`` time alone. Nothing here is app code: it only watches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: The recorder added to every page (see the module doc). ``window.__face3dTiming`` holds the records.
TIMING_JS = r"""
(() => {
  const rec = (window.__face3dTiming = {inputs: [], responses: [], plots: []});
  for (const type of ['click', 'keydown']) {
    document.addEventListener(type, (event) => {
      const target = event.target && event.target.closest ? event.target.closest('[id]') : null;
      rec.inputs.push({type, id: target ? target.id : '', t: performance.now()});
    }, true);
  }
  const fetch0 = window.fetch;
  window.fetch = async function (input, init) {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    const sent = performance.now();
    const response = await fetch0.apply(this, arguments);
    if (url.includes('_dash-update-component') && init && typeof init.body === 'string') {
      let output = '', changed = [];
      try {
        const body = JSON.parse(init.body);
        output = body.output || '';
        changed = body.changedPropIds || [];
      } catch (e) { /* not JSON */ }
      const entry = {output, changed, sent, received: null, status: response.status};
      rec.responses.push(entry);
      response.clone().arrayBuffer().then(() => { entry.received = performance.now(); }, () => {});
    }
    return response;
  };
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const wrap = (Plotly) => {
    if (!Plotly || Plotly.__face3dWrapped) return;
    const react0 = Plotly.react;
    Plotly.react = function (gd) {
      const graph = gd && gd.closest ? gd.closest('.dash-graph') : null;
      const entry = {id: (graph && graph.id) || (gd && gd.id) || '', called: performance.now(), built: null,
                     drawn: null, types: [], points: []};
      rec.plots.push(entry);
      const result = react0.apply(this, arguments);
      Promise.resolve(result).then(async () => {
        entry.built = performance.now();
        await frame();
        await frame();
        entry.drawn = performance.now();
        entry.types = (gd._fullData || []).map((t) => t.type);
        entry.points = (gd._fullData || []).map((t) => (t.x && t.x.length) || 0);
      }, () => {});
      return result;
    };
    Plotly.__face3dWrapped = true;
  };
  let plotly;
  if (window.Plotly) wrap(window.Plotly);
  else Object.defineProperty(window, 'Plotly', {
    configurable: true,
    get() { return plotly; },
    set(value) { plotly = value; wrap(value); },
  });
})();
"""


def install(context_or_page) -> None:
    """Add the recorder to every page of a Playwright browser context (or one page) before it loads."""
    context_or_page.add_init_script(TIMING_JS)


def now_ms(page) -> float:
    """The page's clock (``performance.now()``), to tell records before an action from those after it."""
    return float(page.evaluate("performance.now()"))


@dataclass(frozen=True)
class DrawTiming:
    """How long one user action took to show its figure (milliseconds of the page's clock).

    Attributes:
        graph: The graph's id.
        input_to_data_ms: From the click or key press to the whole response carrying the figure.
        input_to_drawn_ms: From the click or key press to the figure on screen.
        react_ms: ``Plotly.react`` alone: called to painted.
        callbacks: Dash callback requests made between the action and the figure (the job's
            start, its polls, the view, and any other callback the action triggered).
        polls: How many of them were polls of a job (a ``*-job-interval`` tick).
        types: Trace types drawn.
        points: Points per trace (``x`` length; 0 for empty overlays).
    """

    graph: str
    input_to_data_ms: float
    input_to_drawn_ms: float
    react_ms: float
    callbacks: int
    polls: int
    types: tuple[str, ...]
    points: tuple[int, ...]

    def to_dict(self) -> dict:
        """The record as plain JSON values."""
        data = asdict(self)
        data["types"], data["points"] = list(self.types), list(self.points)
        return data


_DRAWN_JS = """
([graph, since]) => {
  const rec = window.__face3dTiming;
  return !!rec && rec.plots.some((p) => p.id === graph && p.called > since && p.drawn !== null
    && p.types.length > 0);
}
"""


def wait_for_draw(page, graph: str, since_ms: float, *, timeout_ms: float = 120_000) -> DrawTiming:
    """Wait until ``graph`` was drawn after ``since_ms`` and return how long it took from the user's action.

    The action is the first click or key press recorded after ``since_ms``; the figure's data is
    the last callback response for ``<graph>.figure`` sent before that draw began.

    Raises:
        AssertionError: No click or key press was recorded after ``since_ms``, or no response
            carried the figure.
        playwright.sync_api.TimeoutError: The graph was not drawn within ``timeout_ms``.
    """
    page.wait_for_function(_DRAWN_JS, arg=[graph, since_ms], timeout=timeout_ms)
    rec = page.evaluate("window.__face3dTiming")
    inputs = [i for i in rec["inputs"] if i["t"] > since_ms]
    assert inputs, f"no click or key press recorded after {since_ms} ms"
    start = inputs[0]["t"]
    plot = next(p for p in rec["plots"] if p["id"] == graph and p["called"] > since_ms and p["drawn"] is not None)
    carried = [
        r
        for r in rec["responses"]
        if start < r["sent"] <= plot["called"] and f"{graph}.figure" in r["output"] and r["received"] is not None
    ]
    assert carried, f"no callback response carried {graph}.figure"
    # the page may start drawing before this recorder's own read of the body has finished
    received = min(carried[-1]["received"], plot["called"])
    between = [r for r in rec["responses"] if start < r["sent"] <= plot["called"]]
    return DrawTiming(
        graph=graph,
        input_to_data_ms=round(received - start, 1),
        input_to_drawn_ms=round(plot["drawn"] - start, 1),
        react_ms=round(plot["drawn"] - plot["called"], 1),
        callbacks=len(between),
        polls=sum(1 for r in between if any("-job-interval.n_intervals" in c for c in r["changed"])),
        types=tuple(plot["types"]),
        points=tuple(int(n) for n in plot["points"]),
    )
