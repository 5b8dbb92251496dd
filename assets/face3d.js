/* face3d browser helpers: camera sync of the comparison views, one pick per click, upload size guard. */
(function () {
  "use strict";

  function cameraOf(layout, scene) {
    var s = layout && layout[scene];
    return s && s.camera ? s.camera : null;
  }

  function sameCamera(a, b) {
    if (!a || !b) { return false; }
    var parts = ["eye", "up", "center"];
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i], u = a[p], v = b[p];
      if (!u || !v) { return false; }
      if (Math.abs(u.x - v.x) > 1e-6 || Math.abs(u.y - v.y) > 1e-6 || Math.abs(u.z - v.z) > 1e-6) {
        return false;
      }
    }
    return true;
  }

  /* Click to measure (see pickPoint): the press on the 3D view, and the point plotly reported
     under the pointer during it (a click) or before it (a hover). */
  var MEASURE_GRAPH = "model3d-graph", MEASURE_CLICK_STORE = "model3d-measure-click";
  var measurePress = null, measureClick = null, measureHover = null, measureUp = { at: 0, done: true };

  function commitPick(pick) {
    if (pick && window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(MEASURE_CLICK_STORE, { data: Object.assign({}, pick, { at: Date.now() }) });
    }
  }
  function pickOf(data) {
    if (!data || !data.points || !data.points.length) { return null; }
    var p = data.points[0], pick = { x: p.x, y: p.y, z: p.z };
    if (typeof p.i === "number" && typeof p.j === "number" && typeof p.k === "number") {
      pick.i = p.i; pick.j = p.j; pick.k = p.k;  /* a mesh: the clicked triangle */
    }
    return pick;
  }
  document.addEventListener("pointerdown", function (event) {
    var t = event.target;
    if (!t || !t.closest || !t.closest("#" + MEASURE_GRAPH)) { return; }
    measurePress = { x: event.clientX, y: event.clientY };
    measureClick = null;
  }, true);
  document.addEventListener("pointerup", function (event) {
    if (!measurePress) { return; }
    var still = Math.abs(event.clientX - measurePress.x) + Math.abs(event.clientY - measurePress.y) < 6;
    var pick = still ? (measureClick || measureHover) : null;
    measurePress = null;
    measureClick = null;
    commitPick(pick);
    measureUp = { at: Date.now(), done: !still || !!pick };
  }, true);

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    face3d: {
      /* A prepared download ({url, filename}: a path of this app): the browser fetches it from
         the session-bound route as a file (Content-Disposition: attachment), never as JSON. */
      startDownload: function (link) {
        var route = /^\/(?:[A-Za-z0-9._~-]+\/)*face3d\/download\/[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/;
        if (!link || typeof link.url !== "string" || !route.test(link.url)) {
          return window.dash_clientside.no_update;
        }
        var anchor = document.createElement("a");
        anchor.href = new URL(link.url, document.baseURI).href;
        anchor.download = link.filename || "";
        anchor.rel = "noopener";
        anchor.style.display = "none";
        document.body.appendChild(anchor);
        anchor.click();
        anchor.remove();
        return { filename: link.filename, at: Date.now() };
      },

      /* Remember where the user turned the 3D view, so rebuilt figures keep that camera. */
      rememberCamera: function (relayoutData, view) {
        var noUpdate = window.dash_clientside.no_update;
        if (!relayoutData || !relayoutData["scene.camera"]) { return noUpdate; }
        return Object.assign({ rev: 0 }, view || {}, { camera: relayoutData["scene.camera"] });
      },

      /* Click to measure: plotly reports a "click" on every frame drawn while the button is
         down (none if no frame is drawn), also at the start of a drag that turns the view. A
         pick counts once, when the button comes up where it went down (the pointer listeners
         above): the point clicked, else the point under the pointer (last hover). */
      pickPoint: function (clickData) {
        var pick = pickOf(clickData);
        if (pick && measurePress) {
          measureClick = pick;
        } else if (pick && !measureUp.done && Date.now() - measureUp.at < 400) {
          measureUp.done = true;  /* reported just after the button came up */
          commitPick(pick);
        }
        return window.dash_clientside.no_update;
      },

      /* The point under the pointer (null when it leaves the face). */
      hoverPoint: function (hoverData) {
        measureHover = pickOf(hoverData);
        return window.dash_clientside.no_update;
      },

      /* Style giving a picture's box its aspect ratio (H / W from the figure's layout.meta.aspect_hw). */
      aspectStyle: function (figure) {
        var meta = figure && figure.layout && figure.layout.meta;
        var aspect = meta && meta.aspect_hw;
        return aspect > 0 ? { "--face3d-aspect": String(aspect) } : {};
      },

      /* Class of the box around the comparison's 3D views: its height follows the rows (two views per row). */
      compareBoxClass: function (figure) {
        var layout = (figure && figure.layout) || {};
        var scenes = Object.keys(layout).filter(function (k) { return /^scene\d*$/.test(k); }).length;
        var rows = Math.max(1, Math.ceil(scenes / 2));
        return "face3d-figure-box face3d-figure-box--compare3d face3d-compare3d-rows-" + rows;
      },

      /* Once the page has loaded and the browser is idle, ask the server for the hidden warm-up graph
         (dashboard/callbacks/page.py): plotly.js is then loaded and compiled while nobody waits, not
         at the first switch to a tab with a figure. window.face3dWarmup = false skips it. */
      warmUpWhenIdle: function () {
        var started = false;
        function start() {
          if (started || window.face3dWarmup === false) { return; }
          started = true;
          window.dash_clientside.set_props("page-warmup-store", { data: Date.now() });
        }
        if (window.requestIdleCallback) {
          window.requestIdleCallback(start, { timeout: 2500 });
        } else {
          window.setTimeout(start, 1000);
        }
        return window.dash_clientside.no_update;
      },

      /* {"phone": bool} for the server's figures (e.g. stacked depth profiles); set again when a resize
         crosses the phone width. */
      watchViewport: function (_id, config) {
        var query = window.matchMedia("(max-width: " + config.phone_max_px + "px)");
        var phone = query.matches;
        window.addEventListener("resize", function () {
          if (query.matches !== phone) {
            phone = query.matches;
            window.dash_clientside.set_props("page-viewport", { data: { phone: phone } });
          }
        });
        return { phone: phone };
      },

      /* Long control lists (accordions) start folded on narrow screens; wide screens keep them open. */
      foldSections: function (_id, config) {
        var count = window.dash_clientside.callback_context.outputs_list.length;
        var narrow = config && window.matchMedia("(max-width: " + config.narrow_max_px + "px)").matches;
        var out = [];
        for (var i = 0; i < count; i++) { out.push(narrow ? [] : window.dash_clientside.no_update); }
        return out;
      },

      /* On a narrow screen the result lies below the settings: bring a new one into view once it is
         shown (PAGE_CONFIG's "reveal": result store -> [the box that shows it, the element to bring to
         the top]). */
      revealResult: function () {
        var noUpdate = window.dash_clientside.no_update;
        var config = arguments[arguments.length - 1];
        var triggered = (window.dash_clientside.callback_context.triggered || [])[0];
        if (!config || !triggered || !triggered.value) { return noUpdate; }
        if (!window.matchMedia("(max-width: " + config.narrow_max_px + "px)").matches) { return noUpdate; }
        var target = config.reveal[triggered.prop_id.split(".")[0]];  /* [box shown, element to the top] */
        var frames = 0;
        (function look() {
          var box = document.getElementById(target[0]), top = document.getElementById(target[1]);
          if (box && top && !box.hidden && box.offsetParent !== null) {
            top.scrollIntoView({ behavior: "smooth", block: "start" });
          } else if (++frames < 240) {  /* about 4 s: the result's callback answers meanwhile */
            window.requestAnimationFrame(look);
          }
        })();
        return noUpdate;
      },

      /* Copy the camera of the scene the user moved to every other scene of the figure. */
      syncCameras: function (relayoutData, graphId) {
        var noUpdate = window.dash_clientside.no_update;
        if (!relayoutData) { return noUpdate; }
        var keys = Object.keys(relayoutData).filter(function (k) { return /^scene\d*\.camera$/.test(k); });
        if (keys.length !== 1) { return noUpdate; }
        var source = keys[0].split(".")[0];
        var cam = relayoutData[keys[0]];
        var host = document.getElementById(graphId);
        var gd = host ? host.querySelector(".js-plotly-plot") : null;
        if (!gd || !gd._fullLayout || !window.Plotly) { return noUpdate; }
        var update = {};
        Object.keys(gd._fullLayout).forEach(function (k) {
          if (/^scene\d*$/.test(k) && k !== source && !sameCamera(cameraOf(gd._fullLayout, k), cam)) {
            update[k + ".camera"] = cam;
          }
        });
        if (Object.keys(update).length) { window.Plotly.relayout(gd, update); }
        return noUpdate;
      }
    }
  });

  /* Files larger than the limit never reach the server (dcc.Upload drops them silently):
     tell the app about them so the user gets a message. */
  function reportLarge(files, guard) {
    var limit = parseInt(guard.getAttribute("data-max-bytes"), 10);
    if (!files || !limit) { return; }
    var big = [];
    for (var i = 0; i < files.length; i++) {
      if (files[i].size > limit) { big.push({ name: files[i].name, size: files[i].size }); }
    }
    if (big.length && window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("upload-rejected-store", { data: { files: big, at: Date.now() } });
    }
  }
  document.addEventListener("drop", function (event) {
    var guard = event.target && event.target.closest ? event.target.closest(".face3d-upload-guard") : null;
    if (guard && event.dataTransfer) { reportLarge(event.dataTransfer.files, guard); }
  }, true);
  document.addEventListener("change", function (event) {
    var t = event.target;
    var guard = t && t.closest ? t.closest(".face3d-upload-guard") : null;
    if (guard && t.type === "file") { reportLarge(t.files, guard); }
  }, true);
})();

/* Copy buttons (missing-weights help): copy the button's data-copy text, say so on the button. */
(function () {
  "use strict";
  function copied(button, ok) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = ok ? "Copied" : "Select and copy";
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) { return; }
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { copied(button, true); }, function () { copied(button, false); });
    } else {
      copied(button, false);
    }
  });
})();

/* Keyboard and screen-reader basics for Dash components that take no ARIA properties:
   - the tabs (dcc.Tabs) become a tablist of tabs: one Tab stop (the selected tab), arrow keys /
     Home / End move to and open another tab, Enter and Space open the focused tab;
   - a labelled field's control is named by its label (aria-labelledby): dropdown buttons (label and
     value), slider thumbs, groups of radio buttons;
   - decorative icons inside dropdowns are hidden from screen readers; progress bars are named.
   Applied again whenever the page changes (a MutationObserver, at most once per frame). */
(function () {
  "use strict";
  var counter = 0;
  function ensureId(el, prefix) {
    if (!el.id) { counter += 1; el.id = prefix + "-" + counter; }
    return el.id;
  }
  function setAttr(el, name, value) {
    if (el.getAttribute(name) !== value) { el.setAttribute(name, value); }
  }
  function isSelected(tab) {
    return tab.classList.contains("tab--selected") || tab.classList.contains("face3d-tab--selected");
  }
  function enhanceTabs() {
    document.querySelectorAll(".face3d-tab").forEach(function (tab) {
      var list = tab.parentElement;
      setAttr(list, "role", "tablist");
      setAttr(list, "aria-label", "Steps");
      setAttr(tab, "role", "tab");
      setAttr(tab, "aria-selected", isSelected(tab) ? "true" : "false");
      setAttr(tab, "tabindex", isSelected(tab) ? "0" : "-1");
    });
    var content = document.querySelector(".face3d-tab-content");
    var selected = document.querySelector(".face3d-tab.tab--selected, .face3d-tab.face3d-tab--selected");
    if (content && selected) {
      setAttr(content, "role", "tabpanel");
      setAttr(content, "aria-labelledby", ensureId(selected, "face3d-tab"));
    }
  }
  function enhanceFields() {
    document.querySelectorAll(".face3d-field").forEach(function (field) {
      var label = field.querySelector("label");
      if (!label) { return; }
      var labelId = ensureId(label, "face3d-label");
      field.querySelectorAll("[role=slider]").forEach(function (thumb) { setAttr(thumb, "aria-labelledby", labelId); });
      field.querySelectorAll("button[aria-expanded], [role=combobox]").forEach(function (trigger) {
        setAttr(trigger, "aria-labelledby", labelId + " " + ensureId(trigger, "face3d-control"));
      });
      var radio = field.querySelector("input[type=radio]");
      var group = radio && radio.closest(".form-check") ? radio.closest(".form-check").parentElement : null;
      if (group) {
        setAttr(group, "role", "radiogroup");
        setAttr(group, "aria-labelledby", labelId);
      }
    });
    document.querySelectorAll(".dash-dropdown-trigger-icon, .dash-dropdown svg, button svg").forEach(function (icon) {
      setAttr(icon, "aria-hidden", "true");
    });
    /* plotly's parts (its SVG layers, WebGL canvases, the hidden text-measuring SVG) are not content:
       each figure's box names the whole figure (aria-label) */
    document.querySelectorAll("#js-plotly-tester, .face3d-figure-box .main-svg, .face3d-figure-box .gl-container, .face3d-figure-box .modebar-container").forEach(function (part) {
      setAttr(part, "aria-hidden", "true");
    });
    document.querySelectorAll(".face3d-progress [role=progressbar], .face3d-progress[role=progressbar]").forEach(function (bar) {
      setAttr(bar, "aria-label", "Progress");
    });
  }
  /* a new alert above the tabs is scrolled into view when the page is scrolled past it */
  var shownAlert = null;
  function revealAlert() {
    var alert = document.querySelector("#alerts .alert");
    if (alert && alert !== shownAlert && alert.getBoundingClientRect().top < 0) {
      alert.scrollIntoView({ block: "nearest" });
    }
    shownAlert = alert;
  }
  var scheduled = false;
  function enhance() {
    scheduled = false;
    enhanceTabs();
    enhanceFields();
    revealAlert();
  }
  function schedule() {
    if (!scheduled) { scheduled = true; window.requestAnimationFrame(enhance); }
  }
  new MutationObserver(schedule).observe(document.documentElement, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["class"]
  });
  schedule();

  document.addEventListener("keydown", function (event) {
    var tab = event.target && event.target.closest ? event.target.closest(".face3d-tab") : null;
    if (!tab) { return; }
    var tabs = Array.prototype.slice.call(tab.parentElement.querySelectorAll(".face3d-tab"));
    var index = tabs.indexOf(tab);
    var next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") { next = tabs[(index + 1) % tabs.length]; }
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") { next = tabs[(index - 1 + tabs.length) % tabs.length]; }
    else if (event.key === "Home") { next = tabs[0]; }
    else if (event.key === "End") { next = tabs[tabs.length - 1]; }
    else if (event.key === "Enter" || event.key === " ") { event.preventDefault(); tab.click(); return; }
    if (next) {
      event.preventDefault();
      next.click();
      next.focus();
    }
  });
})();
