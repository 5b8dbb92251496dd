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
