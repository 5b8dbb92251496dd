/* face3d camera (Upload tab): take a photo in the page, and see the depth of the live camera.

   - "Take a photo with the camera" (#camera-start) opens the browser's camera (the front one where
     there are two) in the camera panel (#camera-panel).
   - "Take photo" (#camera-capture) puts a JPEG of the current picture into the upload box's contents
     (dcc.Upload, id "upload"): the photo then goes through exactly the path of a file the user chose
     (the same checks, stored under its content hash, faces detected, shown in the gallery).
   - "Live depth" (#live-start) sends small JPEG frames to face3d/live/frame (dashboard/live_endpoint.py),
     one at a time: the next frame is taken when the last answer came, so frames are dropped, never queued.
     Each answer (a colour-mapped depth picture) is drawn on #live-depth, whose data-frames counts the
     pictures drawn (data-fps and data-latency-ms: the rate and the median time from taking a frame to its
     depth drawn, over the last second and the last 30 frames).
   - The camera stops (every track) when the user closes it, leaves the tab (the panel leaves the page),
     or the page is hidden. Where the camera cannot be used, one sentence says why and what to do. */
(function () {
  "use strict";

  var ID = {
    start: "camera-start", message: "camera-message", panel: "camera-panel", video: "camera-video",
    crop: "camera-crop-box", capture: "camera-capture", switchCamera: "camera-switch", close: "camera-close",
    status: "camera-status", live: "live-start", depth: "live-depth", placeholder: "live-placeholder",
    precision: "live-precision", stats: "live-stats", upload: "upload"
  };
  /* relative to the page, so an app served under a path prefix finds it too */
  var FRAME_URL = "face3d/live/frame";
  var FRAME_QUALITY = 0.8, PHOTO_QUALITY = 0.92, LATENCY_FRAMES = 30, HISTORY_FRAMES = 2000;
  /* a frame taken ahead is used if it waited at most this long beyond its own encoding time */
  var STALE_MS = 40, AHEAD_MARGIN_MS = 5;
  var MESSAGES = {
    insecure: "This browser allows the camera only on a secure page: open face3d over HTTPS, or at " +
      "http://localhost on the computer that runs it.",
    denied: "The camera is blocked for this site: allow it in the browser's site settings (left of the " +
      "address), then press the camera button again.",
    missing: "No camera was found: connect one, or upload a photo instead.",
    busy: "The camera is in use by another program or tab: close it there, then press the camera button again.",
    failed: "The camera could not be started: press the camera button to try again, or upload a photo instead.",
    hidden: "The camera was closed while the page was hidden: press the camera button to open it again.",
    unreachable: "The server did not answer: trying again..."
  };

  var CAMERA_ON = "The camera is on: take a photo, or turn on Live depth.";
  var LIVE_ON = "Live depth is on: the depth of the face in the yellow box, or of the whole picture when no " +
    "face is found.";

  var cam = {
    stream: null, video: null, facing: "user", opening: 0,
    live: false, liveRun: 0, liveOff: null, timer: null, aheadTimer: null, frameCanvas: null,
    pending: null, capturingRun: null, sendWhenReady: false, roundTripMs: 0, encodeMs: 10,
    latencies: [], history: [], windowStart: 0, windowFrames: 0, lastTiming: "",
    lastTracks: []
  };

  function el(id) { return document.getElementById(id); }

  function say(id, text, tone) {
    var node = el(id);
    if (!node || (node.textContent === (text || "") && node.getAttribute("data-tone") === (tone || "muted"))) {
      return;  /* unchanged: nothing to announce again */
    }
    node.textContent = text || "";
    node.setAttribute("data-tone", tone || "muted");
  }

  function cameraProblem() {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return MESSAGES.insecure;
    }
    return null;
  }

  function messageFor(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return MESSAGES.denied;
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return MESSAGES.missing;
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") { return MESSAGES.busy; }
    return MESSAGES.failed;
  }

  function stopStream(stream) {
    if (!stream) { return; }
    stream.getTracks().forEach(function (track) { track.stop(); });
  }

  function setDisabled(id, disabled) {
    var node = el(id);
    if (node) { node.disabled = !!disabled; }
  }

  /* -- open / close ------------------------------------------------------------------------------- */

  function openCamera(facing, thenLive) {
    var problem = cameraProblem();
    if (problem) { say(ID.message, problem, "warning"); return; }
    var attempt = ++cam.opening;
    releaseCamera();
    cam.facing = facing || "user";
    say(ID.message, "Opening the camera...", "muted");
    var constraints = {
      audio: false,
      video: { facingMode: { ideal: cam.facing }, width: { ideal: 1280 }, height: { ideal: 720 } }
    };
    navigator.mediaDevices.getUserMedia(constraints).then(function (stream) {
      var panel = el(ID.panel), video = el(ID.video);
      if (attempt !== cam.opening || !panel || !video) { stopStream(stream); return; }  /* closed meanwhile */
      cam.stream = stream;
      cam.lastTracks = stream.getTracks();
      cam.video = video;
      video.muted = true;
      video.playsInline = true;
      video.onloadedmetadata = function () { fitViews(video); };
      video.onresize = function () { fitViews(video); };
      video.srcObject = stream;
      var played = video.play();
      if (played && played.catch) { played.catch(function () { /* autoplay refused: the picture still updates */ }); }
      var track = stream.getVideoTracks()[0];
      var settings = track && track.getSettings ? track.getSettings() : {};
      var mirrored = settings.facingMode !== "environment";  /* a selfie view, like a mirror */
      panel.classList.toggle("face3d-camera--mirrored", mirrored);
      panel.hidden = false;
      say(ID.message, "", "muted");
      say(ID.status, CAMERA_ON, "muted");
      setDisabled(ID.capture, false);
      setDisabled(ID.live, !!cam.liveOff);
      var start = el(ID.start);
      if (start) { start.setAttribute("aria-expanded", "true"); }
      showSwitchIfSeveral();
      if (panel.scrollIntoView) { panel.scrollIntoView({ block: "nearest" }); }
      if (thenLive) { setLive(true); }
    }, function (error) {
      if (attempt !== cam.opening) { return; }
      say(ID.message, messageFor(error), "warning");
    });
  }

  /* Stop the tracks and forget the stream (the panel stays as it is). */
  function releaseCamera() {
    setLive(false);
    stopStream(cam.stream);
    if (cam.video) { cam.video.srcObject = null; }
    cam.stream = null;
    cam.video = null;
  }

  function closeCamera(message) {
    cam.opening++;  /* a camera still opening is closed as soon as it opens */
    releaseCamera();
    var panel = el(ID.panel);
    if (panel) { panel.hidden = true; }
    setDisabled(ID.capture, true);
    setDisabled(ID.live, true);
    var start = el(ID.start);
    if (start) { start.setAttribute("aria-expanded", "false"); }
    if (message) { say(ID.message, message, "muted"); }
  }

  function showSwitchIfSeveral() {
    var button = el(ID.switchCamera);
    if (!button || !navigator.mediaDevices.enumerateDevices) { return; }
    navigator.mediaDevices.enumerateDevices().then(function (devices) {
      var cameras = devices.filter(function (d) { return d.kind === "videoinput"; });
      button.hidden = cameras.length < 2;
    }, function () { button.hidden = true; });
  }

  /* -- capture ------------------------------------------------------------------------------------- */

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function photoName(date) {
    return "camera " + date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) + " " +
      two(date.getHours()) + "." + two(date.getMinutes()) + "." + two(date.getSeconds()) + ".jpg";
  }

  function capture() {
    var video = cam.video;
    if (!cam.stream || !video || !video.videoWidth) { return; }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);  /* the picture as the camera sees it (not mirrored) */
    var name = photoName(new Date());
    setDisabled(ID.capture, true);
    var panel = el(ID.panel);
    if (panel) {
      panel.classList.remove("face3d-camera--flash");
      void panel.offsetWidth;  /* restart the flash animation */
      panel.classList.add("face3d-camera--flash");
    }
    canvas.toBlob(function (blob) {
      if (!blob || !window.dash_clientside || !window.dash_clientside.set_props) {
        setDisabled(ID.capture, !cam.stream);
        say(ID.status, "The photo could not be taken: press Take photo again.", "warning");
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        /* exactly what the upload box gives the app for a chosen file */
        window.dash_clientside.set_props(ID.upload, {
          contents: [reader.result], filename: [name], last_modified: [Date.now()]
        });
        say(ID.status, "Took " + name + ": it is added to your gallery below.", "muted");
        setDisabled(ID.capture, !cam.stream);
      };
      reader.readAsDataURL(blob);
    }, "image/jpeg", PHOTO_QUALITY);
  }

  /* -- live depth ---------------------------------------------------------------------------------- */

  function precision() {
    var checked = document.querySelector("#" + ID.precision + " input:checked");
    return checked ? checked.value : "";
  }

  function setLive(on) {
    var button = el(ID.live);
    on = !!on && !!cam.stream && !cam.liveOff;
    if (on === cam.live) { return; }
    cam.live = on;
    cam.liveRun++;
    clearTimeout(cam.timer);
    clearTimeout(cam.aheadTimer);
    cam.pending = null;
    cam.sendWhenReady = false;
    cam.roundTripMs = 0;
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.classList.toggle("active", on);
      button.textContent = on ? "Live depth: on" : "Live depth";
    }
    var depth = el(ID.depth);
    if (depth) { depth.setAttribute("data-live", on ? "on" : "off"); }
    var crop = el(ID.crop);
    if (crop) { crop.hidden = true; }
    if (on) {
      cam.latencies = [];
      cam.windowStart = performance.now();
      cam.windowFrames = 0;
      say(ID.status, "Live depth: starting...", "muted");
      nextFrame(0);
    } else {
      say(ID.stats, "", "muted");
      if (cam.stream) { say(ID.status, CAMERA_ON, "muted"); }
    }
  }

  /* The live loop: one frame in flight. The next frame is taken shortly before the answer is due (the
     round trip's running average less the time a frame takes to encode), so it is ready when the answer
     comes and is sent at once: the server never waits for the page, and the frame is fresh. A frame that
     waited too long (a late answer) is dropped and a new one taken. */
  function nextFrame(delayMs) {
    var run = cam.liveRun;
    clearTimeout(cam.timer);
    cam.timer = setTimeout(function () { sendNext(run); }, Math.max(0, delayMs || 0));
  }

  function average(previous, value) { return previous > 0 ? 0.8 * previous + 0.2 * value : value; }

  /* Take the camera's current picture, scaled to the frame size, as a JPEG: done({blob, taken, w, h}) or done(null). */
  function grab(run, done) {
    var video = cam.video, panel = el(ID.panel);
    if (!video || !panel || video.readyState < 2 || !video.videoWidth) { done(null); return; }
    var maxSide = parseInt(panel.getAttribute("data-max-side"), 10) || 640;
    var scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
    var canvas = cam.frameCanvas || (cam.frameCanvas = document.createElement("canvas"));
    canvas.width = Math.max(1, Math.round(video.videoWidth * scale));
    canvas.height = Math.max(1, Math.round(video.videoHeight * scale));
    var taken = performance.now(), width = canvas.width, height = canvas.height;
    canvas.getContext("2d").drawImage(video, 0, 0, width, height);
    cam.capturingRun = run;
    canvas.toBlob(function (blob) {
      if (cam.capturingRun === run) { cam.capturingRun = null; }
      if (run !== cam.liveRun) { return; }
      cam.encodeMs = average(cam.encodeMs, performance.now() - taken);
      done(blob ? { blob: blob, taken: taken, w: width, h: height } : null);
    }, "image/jpeg", FRAME_QUALITY);
  }

  /* Nothing is in flight: send the frame taken ahead if it is still fresh, else take one now. */
  function sendNext(run) {
    if (run !== cam.liveRun || !cam.live) { return; }
    var ready = cam.pending;
    cam.pending = null;
    if (ready && performance.now() - ready.taken <= cam.encodeMs + STALE_MS) { post(run, ready); return; }
    if (cam.capturingRun === run) { cam.sendWhenReady = true; return; }
    grab(run, function (frame) { if (frame) { post(run, frame); } else { nextFrame(50); } });
  }

  function takeAhead(run) {
    if (run !== cam.liveRun || cam.pending || cam.capturingRun === run) { return; }
    grab(run, function (frame) {
      if (!frame) { return; }
      if (cam.sendWhenReady) { cam.sendWhenReady = false; post(run, frame); } else { cam.pending = frame; }
    });
  }

  function post(run, frame) {
    var panel = el(ID.panel);
    if (!panel) { return; }
    var sent = performance.now();
    clearTimeout(cam.aheadTimer);
    if (cam.roundTripMs > 0) {
      var lead = Math.max(0, cam.roundTripMs - cam.encodeMs - AHEAD_MARGIN_MS);
      cam.aheadTimer = setTimeout(function () { takeAhead(run); }, lead);
    }
    var url = FRAME_URL + "?precision=" + encodeURIComponent(precision()) +
      "&colormap=" + encodeURIComponent(panel.getAttribute("data-colormap") || "");
    fetch(url, {
      method: "POST", body: frame.blob, credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "image/jpeg", "X-Face3D-Live": "1" }
    }).then(function (response) {
      if (run !== cam.liveRun) { return null; }
      if (!response.ok) {
        clearTimeout(cam.aheadTimer);
        cam.pending = null;
        return response.json().catch(function () { return {}; }).then(function (answer) {
          refused(run, response.status, answer || {});
        });
      }
      cam.roundTripMs = average(cam.roundTripMs, performance.now() - sent);
      var crop = response.headers.get("X-Face3D-Crop");
      var timing = response.headers.get("Server-Timing") || "";
      sendNext(run);  /* the next frame goes out now; this answer is drawn meanwhile */
      return response.blob().then(function (picture) {
        return createImageBitmap(picture);
      }).then(function (bitmap) {
        if (run !== cam.liveRun) { if (bitmap.close) { bitmap.close(); } return; }
        draw(bitmap);
        showCrop(crop, frame.w, frame.h);
        counted(performance.now() - frame.taken, timing);
      });
    }).catch(function () {
      if (run !== cam.liveRun) { return; }
      clearTimeout(cam.aheadTimer);
      cam.pending = null;
      say(ID.status, MESSAGES.unreachable, "warning");
      nextFrame(1000);
    });
  }

  function refused(run, status, answer) {
    if (run !== cam.liveRun) { return; }
    var retry = answer.retry_after_s;
    var message = answer.message || "The server could not show live depth.";
    if (answer.code === "off") {
      cam.liveOff = message;
      var button = el(ID.live);
      if (button) { button.title = message; }
    }
    if (retry === null || retry === undefined || status === 403) {
      setLive(false);
      setDisabled(ID.live, !!cam.liveOff || !cam.stream);
      say(ID.status, message, "warning");
      return;
    }
    if (answer.code === "loading" || answer.code === "busy") { say(ID.status, message, "muted"); }
    nextFrame(1000 * Math.max(0, Number(retry) || 0));
  }

  function draw(bitmap) {
    var depth = el(ID.depth);
    if (!depth) { if (bitmap.close) { bitmap.close(); } return; }
    if (depth.width !== bitmap.width || depth.height !== bitmap.height) {
      depth.width = bitmap.width;
      depth.height = bitmap.height;
    }
    depth.getContext("2d").drawImage(bitmap, 0, 0);
    if (bitmap.close) { bitmap.close(); }
    var frames = (parseInt(depth.getAttribute("data-frames"), 10) || 0) + 1;
    depth.setAttribute("data-frames", String(frames));
    var placeholder = el(ID.placeholder);
    if (placeholder) { placeholder.hidden = true; }
  }

  /* The face crop the depth shows, over the preview: frame pixels -> where the video is drawn in its box
     (object-fit: contain), mirrored with the preview. */
  function showCrop(crop, frameW, frameH) {
    var box = el(ID.crop), view = box ? box.parentNode : null;
    if (!box || !view) { return; }
    var parts = crop && crop !== "none" ? crop.split(",").map(Number) : null;
    if (!parts || parts.length !== 4 || !frameW || !frameH) { box.hidden = true; return; }
    var width = view.clientWidth, height = view.clientHeight;
    if (!width || !height) { box.hidden = true; return; }
    var scale = Math.min(width / frameW, height / frameH);
    var left = (width - frameW * scale) / 2, top = (height - frameH * scale) / 2;
    var x0 = parts[0] * scale, x1 = parts[2] * scale;
    var panel = el(ID.panel);
    if (panel && panel.classList.contains("face3d-camera--mirrored")) {
      var mirroredX0 = frameW * scale - x1;
      x1 = frameW * scale - x0;
      x0 = mirroredX0;
    }
    /* in % of the view, so the box stays in place when the view is resized between frames */
    box.style.left = (100 * (left + x0) / width) + "%";
    box.style.top = (100 * (top + parts[1] * scale) / height) + "%";
    box.style.width = (100 * (x1 - x0) / width) + "%";
    box.style.height = (100 * (parts[3] - parts[1]) * scale / height) + "%";
    box.hidden = false;
  }

  /* Both views take the camera's aspect ratio (portrait on a phone held upright). */
  function fitViews(video) {
    if (!video.videoWidth || !video.videoHeight) { return; }
    var ratio = video.videoWidth + " / " + video.videoHeight;
    document.querySelectorAll("#" + ID.panel + " .face3d-camera-view").forEach(function (view) {
      view.style.aspectRatio = ratio;
    });
  }

  function median(values) {
    var sorted = values.slice().sort(function (a, b) { return a - b; });
    var mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function serverStep(timing, name) {
    var found = new RegExp("(?:^|,\\s*)" + name + ";dur=([0-9.]+)").exec(timing);
    return found ? Number(found[1]) : null;
  }

  function counted(latencyMs, timing) {
    cam.history.push({ latency_ms: latencyMs, network_ms: serverStep(timing, "network"), at: Date.now() });
    if (cam.history.length > HISTORY_FRAMES) { cam.history.shift(); }
    cam.latencies.push(latencyMs);
    if (cam.latencies.length > LATENCY_FRAMES) { cam.latencies.shift(); }
    cam.windowFrames++;
    cam.lastTiming = timing;
    var now = performance.now(), elapsed = now - cam.windowStart;
    if (elapsed < 1000 && cam.windowFrames > 1) { return; }
    var fps = cam.windowFrames * 1000 / Math.max(elapsed, 1);
    var latency = median(cam.latencies);
    var depth = el(ID.depth);
    if (depth) {
      depth.setAttribute("data-fps", fps.toFixed(1));
      depth.setAttribute("data-latency-ms", String(Math.round(latency)));
    }
    var network = serverStep(timing, "network");
    var stats = el(ID.stats);
    say(ID.stats, fps.toFixed(1) + " frames/s · " + Math.round(latency) + " ms camera to depth", "muted");
    if (stats) {
      stats.title = "Median time from taking a frame to its depth drawn" +
        (network !== null ? "; the network took " + Math.round(network) + " ms of it on the server" : "");
    }
    say(ID.status, LIVE_ON, "muted");
    cam.windowStart = now;
    cam.windowFrames = 0;
  }

  /* -- wiring ---------------------------------------------------------------------------------------- */

  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button") : null;
    if (!button) { return; }
    switch (button.id) {
      case ID.start:
        if (cam.stream && el(ID.panel)) { el(ID.panel).scrollIntoView({ block: "nearest" }); } else { openCamera("user", false); }
        break;
      case ID.close: closeCamera(""); break;
      case ID.capture: capture(); break;
      case ID.live: setLive(!cam.live); break;
      case ID.switchCamera: openCamera(cam.facing === "user" ? "environment" : "user", cam.live); break;
      default: break;
    }
  });

  /* Leaving the Upload tab unmounts the panel: stop the camera with it. */
  new MutationObserver(function () {
    if ((cam.stream || cam.live) && (!cam.video || !document.body.contains(cam.video))) { closeCamera(""); }
  }).observe(document.documentElement, { childList: true, subtree: true });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden && cam.stream) { closeCamera(MESSAGES.hidden); }
  });
  window.addEventListener("pagehide", function () { closeCamera(""); });

  /* For tests and benchmarks: is the camera on, are the last stream's tracks stopped, and each depth
     frame's time from taking the frame to drawing its depth (with the server's network time). */
  window.face3dCamera = {
    active: function () { return !!cam.stream; },
    live: function () { return cam.live; },
    trackStates: function () { return cam.lastTracks.map(function (t) { return t.readyState; }); },
    history: function () { return cam.history.slice(); },
    clearHistory: function () { cam.history = []; }
  };
})();
