"""No freeze at the first switch to a tab (issue 17): at most 300 ms of long tasks, in headless Chromium.

Before, ``dcc.Graph`` loaded and compiled plotly.js (4.6 MB) at the first graph, so the first switch
to the Depth tab blocked the main thread for 0.9-1.8 s on a 2-core CPU with software WebGL. The page
now warms plotly.js up while the browser is idle after it loaded (``dashboard/callbacks/page.py``).

Measured with the Long Tasks API (:mod:`tests.harness.long_tasks`): a fresh page uploads two photos,
waits until it is idle (plotly.js warmed up), then clicks each tab once. The budget is a product
requirement; a loaded machine can push one round over it, so a round that misses gets one more
fresh page, and one round must meet the budget on every tab. Each round's figures are printed and
written to ``long_tasks.json`` in the e2e artifacts; ``benchmarks/tab_switch.py`` measures before and
after (``docs/dashboard-ui.md``: about 1 s before, 0.1 s after, for the first switch to Depth).
"""

from __future__ import annotations

import json

import pytest

from tests.harness.long_tasks import first_tab_switches

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

#: Most main-thread blocking (ms of long tasks) of the first switch to a tab.
BUDGET_MS = 300.0
PHOTOS = ["fr_obama_official_portrait.jpg", "skimage_astronaut.png"]
TABS = ("depth", "model3d", "compare", "upload")


def test_the_first_switch_to_each_tab_blocks_at_most_300_ms(browser, ui_server, e2e_faces, artifacts_dir):
    photos = [e2e_faces / name for name in PHOTOS]
    rounds = []
    for _ in range(2):  # a second fresh page only when the first round misses (a busy machine)
        rounds.append(first_tab_switches(browser, ui_server.url, photos))
        if all(rounds[-1][tab].total_ms <= BUDGET_MS for tab in TABS):
            break
    record = {"budget_ms": BUDGET_MS, "rounds": [{k: v.to_dict() for k, v in r.items()} for r in rounds]}
    (artifacts_dir / "long_tasks.json").write_text(json.dumps(record, indent=1))
    for number, steps in enumerate(rounds, 1):
        for tab in TABS:
            print(f"round {number}: first switch to {tab:8s}: {steps[tab].total_ms:5.0f} ms of long tasks")
        print(f"round {number}: page load and upload (plotly.js warmed up while idle): {steps['load'].to_dict()}")
    over = {tab: round(rounds[-1][tab].total_ms) for tab in TABS if rounds[-1][tab].total_ms > BUDGET_MS}
    assert not over, f"first tab switches over the {BUDGET_MS:.0f} ms budget in both rounds: {record}"
