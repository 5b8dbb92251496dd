"""Keyboard and screen-reader basics, in headless Chromium.

Keys are pressed like a person would (Tab, Enter, Space, arrows) and the effect is checked on the
page; Chromium's accessibility tree (CDP ``Accessibility.getFullAXTree``) must give every interactive
control a role and a name and every image a text alternative; alerts sit in live regions.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ConsoleLog
from tests.e2e.flow import NETWORK_TIMEOUT_MS, TABS, open_tab, upload
from tests.harness.page_text import internal_leaks
from tests.harness.page_waits import settle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PHOTOS = ["fr_two_people.jpg", "fr_obama_official_portrait.jpg"]
#: Roles a person operates; each needs a name.
INTERACTIVE = {
    "button", "link", "slider", "radio", "checkbox", "tab", "combobox", "textbox", "searchbox", "listbox",
    "option", "menuitem", "switch", "spinbutton",
}  # fmt: skip


@pytest.fixture(scope="module")
def kb_page(browser, ui_server, e2e_faces):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_server.url.rstrip("/"))
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    page.face3d_console = console
    page.goto(ui_server.url)
    page.wait_for_selector("text=No photos yet")
    upload(page, [e2e_faces / name for name in PHOTOS], len(PHOTOS))
    yield page
    context.close()
    assert not console.errors, console.errors


def ax_nodes(page) -> list[dict]:
    """Chromium's accessibility tree of the page: ``{"role", "name", "focusable", "live", "node"}`` per node."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        out = []
        for node in nodes:
            if node.get("ignored"):
                continue
            props = {p["name"]: p.get("value", {}).get("value") for p in node.get("properties", [])}
            described = None
            if node.get("backendDOMNodeId"):
                try:
                    described = cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})["node"]
                except Exception:  # noqa: BLE001 - a node that went away meanwhile
                    described = None
            out.append(
                {
                    "role": node.get("role", {}).get("value"),
                    "name": (node.get("name", {}).get("value") or "").strip(),
                    "focusable": bool(props.get("focusable")),
                    "disabled": bool(props.get("disabled")),
                    "live": props.get("live"),
                    "node": f"{described['nodeName']} {described.get('attributes', [])[:8]}" if described else "?",
                }
            )
        return out
    finally:
        cdp.detach()


def unnamed(nodes: list[dict]) -> list[str]:
    problems = []
    for n in nodes:
        if n["role"] in INTERACTIVE and not n["name"]:
            problems.append(f"{n['role']} without a name: {n['node']}")
        if n["role"] in {"image", "img", "figure"} and not n["name"]:
            problems.append(f"{n['role']} without a text alternative: {n['node']}")
        if n["focusable"] and n["role"] in {"generic", "none", None} and not n["disabled"]:
            problems.append(f"focusable element without a role: {n['node']}")
    return problems


def focused(page) -> dict:
    return page.evaluate(
        "(() => { const e = document.activeElement; return {tag: e.tagName, role: e.getAttribute('role'), "
        "text: (e.innerText || e.getAttribute('aria-label') || '').trim(), id: e.id}; })()"
    )


def selected_tab(page) -> str:
    return page.evaluate("document.querySelector('.face3d-tab[aria-selected=true]').innerText.trim()")


def test_tabs_are_reached_with_tab_and_switched_with_arrow_keys(kb_page):
    page = kb_page
    open_tab(page, "upload")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.mouse.click(5, 300)  # focus the page itself, like a person clicking on an empty spot
    for _ in range(10):
        page.keyboard.press("Tab")
        if focused(page)["role"] == "tab":
            break
    assert focused(page) == {"tag": "DIV", "role": "tab", "text": TABS["upload"], "id": focused(page)["id"]}
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "document.querySelector('.face3d-tab[aria-selected=true]').innerText.trim() === '2 · Depth map'"
    )
    assert focused(page)["text"] == TABS["depth"]
    page.wait_for_selector("#depth-generate")  # its panel is shown
    page.keyboard.press("End")
    page.wait_for_selector("#compare-run")
    assert selected_tab(page) == TABS["compare"]
    page.keyboard.press("Home")
    page.wait_for_selector(".face3d-gallery-card")
    assert selected_tab(page) == TABS["upload"] and focused(page)["text"] == TABS["upload"]
    # one Tab stop for the whole tab list: the next Tab leaves it
    page.keyboard.press("Tab")
    assert focused(page)["role"] != "tab"


def _tab_to_the_file_button(page) -> None:
    page.locator(".face3d-tab[aria-selected=true]").focus()
    for _ in range(40):  # Tab from the tab list to the upload area's file button (past any gallery)
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type === 'file'"):
            return
    raise AssertionError("Tab never reached the file button")


def test_the_upload_area_opens_the_file_chooser_from_the_keyboard(kb_page):
    page = kb_page
    open_tab(page, "upload")
    _tab_to_the_file_button(page)
    assert page.evaluate("document.activeElement.closest('.face3d-upload-guard') !== null")
    ring = page.evaluate("getComputedStyle(document.querySelector('.face3d-dropzone')).boxShadow")
    assert ring not in ("", "none")  # the drop zone shows where the focus is
    timeout_error = pytest.importorskip("playwright.sync_api").TimeoutError
    # The upload area is re-rendered when the gallery's store changes (thumbnails still arriving), which
    # can take the focus away between the Tab and the key: then Tab to it again, at most three times.
    for attempt in range(3):
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press("Space")
            break
        except timeout_error:
            if attempt == 2:
                raise
            _tab_to_the_file_button(page)
    assert chooser.value.is_multiple()


def test_the_face_boxes_and_the_face_picker_work_with_the_keyboard(kb_page):
    page = kb_page
    open_tab(page, "upload")
    group = page.locator(".face3d-gallery-card", has_text="fr_two_people.jpg")
    group.get_by_role("button", name="Use face 2").focus()
    page.keyboard.press("Space")
    group.locator(".face3d-box-selected >> text=2").wait_for(timeout=20_000)
    group.get_by_role("button", name="Use face 1").focus()
    page.keyboard.press("Enter")
    group.locator(".face3d-box-selected >> text=1").wait_for(timeout=20_000)

    open_tab(page, "depth")
    picker = page.get_by_role("button", name="Face", exact=False).first
    before = picker.inner_text()
    picker.focus()
    page.keyboard.press("Enter")
    in_option = "document.activeElement && document.activeElement.closest('[role=option]')"
    page.wait_for_function(in_option)  # the open list has the focus (on the chosen photo)
    options = page.get_by_role("option").all_inner_texts()
    current = options.index(next(o for o in options if o.strip() == before.strip()))
    target = 1 if current == 0 else current - 1
    page.keyboard.press("ArrowDown" if current == 0 else "ArrowUp")  # to the other photo
    page.wait_for_function(f"({in_option}).getAttribute('data-option-index') === '{target}'")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "before => document.querySelector('#depth-face').innerText.trim() !== before", arg=before.strip()
    )
    open_tab(page, "model3d")  # the 3D tab's face picker follows
    page.wait_for_function(
        "before => document.querySelector('#model3d-face').innerText.trim() !== before", arg=before.strip()
    )


def test_buttons_sliders_and_radios_work_with_the_keyboard(kb_page):
    page = kb_page
    open_tab(page, "depth")
    page.locator("#depth-generate").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#depth-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)

    open_tab(page, "model3d")
    page.locator("#model3d-generate").focus()
    page.keyboard.press("Space")
    page.wait_for_selector("#model3d-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    gd = "document.querySelector('#model3d-graph .js-plotly-plot')"
    page.wait_for_function(f"{gd} && {gd}.data.length >= 1")

    stats = page.inner_text("#model3d-stats")
    page.get_by_role("slider", name="Point density").focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.querySelector('#model3d-stats').innerText !== {stats!r}", timeout=60_000)

    page.locator("#model3d-camera-side").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"Math.abs({gd}._fullLayout.scene.camera.eye.x - 1.9) < 1e-3", timeout=20_000)

    page.get_by_role("radio", name="Points").focus()
    page.keyboard.press("ArrowRight")  # the radio group moves to "Mesh"
    page.wait_for_function(f"{gd}.data[0].type === 'mesh3d'", timeout=60_000)
    assert page.get_by_role("radio", name="Mesh").is_checked()


def test_every_control_has_a_role_and_a_name_on_every_tab(kb_page):
    page = kb_page
    open_tab(page, "depth")  # results on the tabs, so their pictures are in the tree too
    page.click("#depth-generate")
    page.wait_for_selector("#depth-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    problems = []
    for name in TABS:
        open_tab(page, name)
        settle(page)
        nodes = ax_nodes(page)
        problems += [f"{name}: {p}" for p in unnamed(nodes)]
        roles = {n["role"] for n in nodes}
        assert {"tablist", "tab", "tabpanel", "heading", "button"} <= roles, (name, roles)
        assert [n["name"] for n in nodes if n["role"] == "tab"] == list(TABS.values())
        if name == "upload":
            images = [n for n in nodes if n["role"] == "image"]
            assert len(images) >= 2 and all(n["name"].startswith("Photo ") for n in images), [n["node"] for n in images]
        if name == "depth":
            named = {n["name"] for n in nodes if n["role"] in {"image", "img"}}
            assert any("depth map" in x.lower() for x in named) and any("photo" in x.lower() for x in named)
        if name == "model3d":
            assert {"Smoothing", "Point density", "Depth scale"} <= {n["name"] for n in nodes if n["role"] == "slider"}
            assert {"Show as", "Colours"} <= {n["name"] for n in nodes if n["role"] == "radiogroup"}
            assert any(n["name"].startswith("Face ") for n in nodes if n["role"] in {"button", "combobox"})
    assert not problems, "\n".join(problems)


def test_alerts_are_announced_and_say_what_to_do(kb_page):
    page = kb_page
    nodes = ax_nodes(page)
    assert any(n["role"] == "status" and n["live"] == "polite" for n in nodes)  # the alerts area
    open_tab(page, "compare")
    page.locator("#compare-faces").click()
    page.keyboard.press("Escape")
    clear = page.locator("#compare-faces .dash-dropdown-clear, #compare-faces [aria-label*='Clear']").first
    if clear.count():
        clear.click()
        page.keyboard.press("Escape")
    page.locator("#compare-run").focus()
    page.keyboard.press("Enter")
    alert = page.locator("#alerts .alert")
    alert.wait_for(timeout=20_000)
    assert alert.get_attribute("role") == "alert"  # announced at once, inside the polite #alerts region
    text = alert.inner_text()
    assert "at least two faces" in text and internal_leaks(text) == []
    alert.locator(".btn-close").focus()
    page.keyboard.press("Enter")  # dismissed with the keyboard
    page.wait_for_function("!document.querySelector('#alerts .alert.show')", timeout=10_000)


def test_missing_weights_show_file_link_and_a_command_to_copy(kb_page, ui_server):
    """The e2e server is offline with only MiDaS small: another model shows how to get its weights."""
    page = kb_page
    open_tab(page, "depth")
    page.locator("#depth-model").click()
    page.get_by_role("option", name="DPT-Hybrid", exact=False).first.click()
    info = page.locator("#depth-model-info")
    info.locator("text=Weights missing").wait_for(timeout=20_000)
    link = info.get_by_role("link").first
    assert link.get_attribute("href").startswith("https://github.com/isl-org/MiDaS/releases/")
    assert "dpt_hybrid_384.pt" in info.inner_text()
    command = "face3d models --download dpt_hybrid_384"
    assert command in info.inner_text()
    copy = info.get_by_role("button", name=f"Copy the command {command}")
    copy.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#depth-model-info button[data-copy]').innerText === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == command
    html = page.content()
    assert internal_leaks(info.inner_text()) == []
    for folder in ("fill-weights", "/cache/", "/tmp/"):  # the variable's name is fine, its value is not
        assert folder not in info.inner_text()
    assert "fill-weights" not in html  # no server folder anywhere on the page
    page.locator("#depth-model").click()
    page.get_by_role("option", name="MiDaS v2.1 small", exact=False).first.click()
    page.locator("#depth-model-info >> text=Weights ready").wait_for(timeout=20_000)
