"""Camera live depth without a browser: the per-frame pipeline, the endpoint and its bounds.

* core (:mod:`face3d_core.live`): frames refused before decoding, the square crop, the face
  tracker, the colours of the Depth tab;
* the endpoint (``POST /face3d/live/frame`` through Flask's test client, a stand-in network):
  the depth of the face crop, session binding and CSRF checks, size limits, never stored or logged,
  off in scale-out mode or with ``FACE3D_LIVE_STREAMS=0``, 503 while the network loads;
* the bounds of :class:`~dashboard.services.live.LiveStreams` (plain calls, threads): one frame in
  flight per session, the rate per session, the number of streams, fair turns, and three streams
  that leave uploads and depth jobs answering.
"""

from __future__ import annotations

import io
import logging
import threading
import time

import cv2
import numpy as np
import plotly.colors as plotly_colors
import pytest
from PIL import Image

from dashboard import ids
from dashboard.app import create_app
from dashboard.callbacks.camera import live_colormap
from dashboard.live_endpoint import LIVE_FRAME_PATH
from dashboard.services import Face3DService
from dashboard.services.live import LIVE_SCALE_OUT_MESSAGE, LiveLimits, LiveRefusal, LiveStreams
from face3d_core.cache import ResultCache
from face3d_core.errors import InvalidImageError
from face3d_core.faces import detect_faces
from face3d_core.figures import DEPTH_COLORMAPS, depth_colormap_gradient, depth_colormap_lut
from face3d_core.images import decode_image
from face3d_core.live import MAX_FRAME_SIDE, FaceTracker, decode_frame, square_box
from face3d_core.pipeline import DepthRef
from tests.doubles import FakeEstimator, NoJobsRunner
from tests.harness.fake_camera import stored_files
from tests.harness.hostile_files import progressive_scan_bomb
from tests.harness.paths import MODEL, PORTRAIT_PHOTO, require

# -- frames -------------------------------------------------------------------------------------


def _jpeg(image_rgb: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def face_frame_rgb() -> np.ndarray:
    """A 640 x 480 camera-like frame with one face (the portrait, squeezed to 4:3)."""
    require(PORTRAIT_PHOTO)
    photo = decode_image(PORTRAIT_PHOTO.read_bytes())
    return cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def face_frame(face_frame_rgb) -> bytes:
    return _jpeg(face_frame_rgb)


@pytest.fixture()
def live_app(tmp_path, yunet_path):
    """The app with a stand-in network, and a client whose page load gave it a session cookie."""
    fake = FakeEstimator()
    app = create_app(
        tmp_path / "cache", estimator_factory=lambda *_: fake, detector_path=yunet_path, runner=NoJobsRunner()
    )
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    return app, client, fake


def post_frame(client, data: bytes, *, query: str = "precision=fp32&colormap=Grayscale", **headers):
    sent = {"Content-Type": "image/jpeg", "X-Face3D-Live": "1", "Sec-Fetch-Site": "same-origin"}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.post(f"{LIVE_FRAME_PATH}?{query}", data=data, headers={k: v for k, v in sent.items() if v})


def _picture(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"))


# -- core -------------------------------------------------------------------------------------------


def test_decode_frame_refuses_what_is_no_small_jpeg_before_decoding(face_frame_rgb):
    assert decode_frame(_jpeg(face_frame_rgb)).shape == (480, 640, 3)
    png = io.BytesIO()
    Image.fromarray(face_frame_rgb[:100, :100]).save(png, "PNG")
    wide = _jpeg(np.zeros((100, MAX_FRAME_SIDE + 1, 3), np.uint8))
    cases = {
        b"": "empty",
        png.getvalue(): "must be a JPEG",
        wide: f"at most {MAX_FRAME_SIDE} pixels",
        _jpeg(face_frame_rgb)[:-5000]: "damaged",
        b"\xff\xd8\xff" + b"\x00" * 10: "damaged",
        progressive_scan_bomb(side=64, scans=40): "at most 16 JPEG scans",
    }
    for data, words in cases.items():
        with pytest.raises(InvalidImageError, match=words):
            decode_frame(data)
    with pytest.raises(InvalidImageError, match="at most 1 kB"):
        decode_frame(_jpeg(face_frame_rgb), max_bytes=1024)


def test_square_box_stays_square_and_inside_the_frame():
    rng = np.random.default_rng(7)
    for _ in range(300):
        width, height = (int(v) for v in rng.integers(40, 900, size=2))
        center = (float(rng.uniform(-200, width + 200)), float(rng.uniform(-200, height + 200)))
        side = float(rng.uniform(1, 2000))
        x0, y0, x1, y1 = square_box(center, side, (width, height))
        assert x1 - x0 == y1 - y0, "square"
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, "inside"
        assert x1 - x0 == round(min(max(side, 32), width, height))
    # away from the border, the square is centred where asked
    assert square_box((320.0, 240.0), 100.0, (640, 480)) == (270, 190, 370, 290)


def _face(x: float, y: float, side: float):
    from face3d_core.faces import Face

    return Face((x, y, side, side), np.zeros((5, 2), np.float32), 0.9)


def test_face_tracker_smooths_holds_and_follows_a_jump():
    tracker = FaceTracker(margin=0.5, smoothing=0.5, hold_frames=2)
    size = (640, 480)
    first = tracker.update([_face(300, 200, 60)], size)
    assert first == square_box((330, 230), 120, size)
    # a small move: the crop goes half way (no jitter)
    moved = tracker.update([_face(310, 200, 60)], size)
    assert moved == square_box((335, 230), 120, size)
    # missed twice: held; a third miss: the whole frame
    assert tracker.update([], size) == moved
    assert tracker.update([], size) == moved
    assert tracker.update([], size) is None
    # the face is back far away: taken at once, not smoothed from the old place
    assert tracker.update([_face(40, 40, 60)], size) == square_box((70, 70), 120, size)
    assert tracker.update([_face(400, 300, 60)], size) == square_box((430, 330), 120, size)
    # of two faces, the one being followed, not the slightly larger one that appears
    assert tracker.update([_face(100, 100, 66), _face(402, 300, 60)], size) == square_box((431, 330), 120, size)


def _rgb(colour: str) -> tuple[int, ...]:
    """``#rrggbb`` or ``rgb(r, g, b)`` -> ``(r, g, b)``."""
    if colour.startswith("#"):
        return tuple(plotly_colors.hex_to_rgb(colour))
    return tuple(int(float(v)) for v in colour[colour.index("(") + 1 : -1].split(","))


def test_colour_tables_are_the_depth_tabs_colour_maps():
    for name, scale in DEPTH_COLORMAPS.items():
        lut = depth_colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
        stops = plotly_colors.get_colorscale(scale) if isinstance(scale, str) else scale
        assert tuple(lut[0]) == _rgb(stops[0][1]) and tuple(lut[255]) == _rgb(stops[-1][1]), name
    assert np.array_equal(depth_colormap_lut("Grayscale")[:, 0], np.arange(256))
    assert depth_colormap_lut("no such map") is depth_colormap_lut("Grayscale")
    assert live_colormap("Viridis") == ("Viridis", {"background": depth_colormap_gradient("Viridis")})
    assert live_colormap("<script>")[0] == "Grayscale"


# -- the endpoint -----------------------------------------------------------------------------------


def test_a_frame_comes_back_as_the_depth_of_the_face_crop(live_app, face_frame, face_frame_rgb, yunet_path):
    _app, client, fake = live_app
    response = post_frame(client, face_frame)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Face3D-Frame"] == "640x480"
    assert "network;dur=" in response.headers["Server-Timing"]
    x0, y0, x1, y1 = (int(v) for v in response.headers["X-Face3D-Crop"].split(","))
    assert x1 - x0 == y1 - y0, "a square crop"
    fx, fy, fw, fh = detect_faces(face_frame_rgb, model_path=yunet_path)[0].box_xywh
    assert x0 <= fx and y0 <= fy and fx + fw <= x1 and fy + fh <= y1, "the crop holds the face"
    assert fake.batch_shapes == [(1, 3, 192, 192)], "the live input size"
    picture = _picture(response)
    assert picture.shape == (192, 192, 3)
    # the stand-in's depth is a dome: nearest in the middle, shown lightest in grayscale
    assert picture[96, 96].mean() > picture[4, 4].mean() + 100
    assert np.abs(picture.astype(int) - picture[..., :1]).max() <= 12, "grey"
    # the colour map asked for: the nearest pixel has viridis' near colour
    colour = _picture(post_frame(client, face_frame, query="precision=fp32&colormap=Viridis"))
    nearest = colour.reshape(-1, 3)[np.argmax(colour.astype(int).sum(axis=2))]
    assert np.abs(nearest.astype(int) - depth_colormap_lut("Viridis")[255]).max() <= 30


def test_without_a_face_the_whole_frame_keeps_its_aspect_ratio(live_app):
    _app, client, fake = live_app
    blank = np.full((360, 640, 3), 128, np.uint8)
    response = post_frame(client, _jpeg(blank))
    assert response.status_code == 200
    assert response.headers["X-Face3D-Crop"] == "none"
    assert _picture(response).shape == (108, 192, 3)
    assert fake.batch_shapes == [(1, 3, 192, 192)]


def test_frames_only_from_the_page_of_a_session(live_app, face_frame):
    app, client, _fake = live_app
    host_origin = "http://localhost"
    refused = {
        "no live header": (post_frame(client, face_frame, X_Face3D_Live=""), 403, "forbidden"),
        "cross-site": (post_frame(client, face_frame, Sec_Fetch_Site="cross-site"), 403, "forbidden"),
        "same-site other origin": (post_frame(client, face_frame, Sec_Fetch_Site="same-site"), 403, "forbidden"),
        "foreign origin": (
            post_frame(client, face_frame, Sec_Fetch_Site="", Origin="https://evil.example"),
            403,
            "forbidden",
        ),
        "no session cookie": (post_frame(app.server.test_client(), face_frame), 403, "session"),
        "forged cookie": (_forged_cookie_client(app, face_frame), 403, "session"),
        "not a jpeg type": (post_frame(client, face_frame, Content_Type="image/png"), 415, "frame"),
        "too large": (post_frame(client, b"\xff\xd8\xff" + b"\0" * (400 * 1024)), 413, "frame"),
        "too wide": (post_frame(client, _jpeg(np.zeros((300, 700, 3), np.uint8))), 400, "frame"),
    }
    for case, (response, status, code) in refused.items():
        assert response.status_code == status, case
        answer = response.get_json()
        assert answer["code"] == code, case
        assert answer["message"] and "/" not in answer["message"], case
        assert response.headers["Cache-Control"] == "no-store", case
    # the page's own origin without fetch metadata (an older browser) is fine
    assert post_frame(client, face_frame, Sec_Fetch_Site="", Origin=host_origin).status_code == 200


def _forged_cookie_client(app, face_frame):
    client = app.server.test_client()
    client.set_cookie("face3d_session", "0" * 32 + "." + "1" * 32)
    return post_frame(client, face_frame)


def test_live_frames_are_never_stored_or_logged(live_app, face_frame, caplog):
    app, client, _fake = live_app
    cache_dir = app.face3d.cache_dir
    before = stored_files(cache_dir)
    with caplog.at_level(logging.DEBUG):
        caplog.clear()
        for _ in range(4):
            assert post_frame(client, face_frame).status_code == 200
        assert post_frame(client, b"\x89PNG\r\n\x1a\n" + b"\0" * 64).status_code == 400
    assert stored_files(cache_dir) == before, "a live frame changed the cache folder"
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert not noisy, [r.getMessage() for r in noisy]


def test_live_depth_off_answers_so_and_stays_off(tmp_path, monkeypatch, face_frame, yunet_path):
    monkeypatch.setenv("FACE3D_LIVE_STREAMS", "0")
    app = create_app(
        tmp_path / "cache",
        estimator_factory=lambda *_: FakeEstimator(),
        detector_path=yunet_path,
        runner=NoJobsRunner(),
    )
    client = app.server.test_client()
    client.get("/")
    response = post_frame(client, face_frame)
    assert response.status_code == 503
    assert response.get_json() == {
        "code": "off",
        "message": app.face3d.service.live.off_reason,
        "retry_after_s": None,
    }
    assert "Retry-After" not in response.headers
    scale_out = LiveStreams(app.face3d.service.depth_maps, off_reason=LIVE_SCALE_OUT_MESSAGE)
    with pytest.raises(LiveRefusal) as refused:
        scale_out.frame("s", face_frame)
    assert (refused.value.code, refused.value.message) == ("off", LIVE_SCALE_OUT_MESSAGE)


class _LoadingEstimator(FakeEstimator):
    """A network that is not loaded yet; its load waits for ``release`` (and fails if told to)."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.loaded = False
        self.release = threading.Event()
        self.fail = fail

    def load(self, progress=None) -> None:
        assert self.release.wait(30)
        if self.fail:
            raise RuntimeError("no weights")
        self.loaded = True


def test_a_frame_while_the_network_loads_starts_the_load_and_waits_for_it(tmp_path, face_frame, yunet_path):
    for fail in (False, True):
        estimator = _LoadingEstimator(fail)
        service = Face3DService(
            ResultCache(tmp_path / f"r{fail}"), estimator_factory=lambda *_, e=estimator: e, detector_path=yunet_path
        )
        with pytest.raises(LiveRefusal) as refused:
            service.live.frame("s", face_frame)
        assert (refused.value.status, refused.value.code, refused.value.retry_after_s) == (503, "loading", 1.0)
        state = service.depth_maps.preload_state(MODEL, "fp32")
        assert state is not None and state.state == "loading", "the first frame started the load"
        estimator.release.set()
        _wait_for(lambda state=state: state.state != "loading")
        if fail:
            with pytest.raises(LiveRefusal) as refused:
                service.live.frame("s", face_frame)
            assert (refused.value.code, refused.value.retry_after_s) == ("failed", None)
        else:
            assert service.live.frame("s", face_frame).jpeg[:3] == b"\xff\xd8\xff"


def _wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- bounds -----------------------------------------------------------------------------------------


class _GatedEstimator(FakeEstimator):
    """Each network run waits for ``gate``; ``entered`` is set while a run waits."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def infer_array(self, batch):
        self.entered.set()
        assert self.gate.wait(30)
        return super().infer_array(batch)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _streams(tmp_path, estimator, yunet_path, clock=time.monotonic, **limits) -> LiveStreams:
    service = Face3DService(ResultCache(tmp_path / "results"), estimator_factory=lambda *_: estimator)
    return LiveStreams(service.depth_maps, yunet_path, limits=LiveLimits(**limits), clock=clock)


def test_one_frame_in_flight_per_session_and_turns_in_arrival_order(tmp_path, face_frame, yunet_path):
    estimator = _GatedEstimator()
    live = _streams(tmp_path, estimator, yunet_path, wait_s=30.0)
    answers: dict[str, object] = {}

    def send(session: str) -> None:
        try:
            answers[session] = live.frame(session, face_frame)
        except LiveRefusal as exc:
            answers[session] = exc

    first = threading.Thread(target=send, args=("a",))
    first.start()
    assert estimator.entered.wait(30)
    with pytest.raises(LiveRefusal) as refused:  # a's second frame while its first is computed
        live.frame("a", face_frame)
    assert (refused.value.status, refused.value.code) == (429, "in-flight")
    second = threading.Thread(target=send, args=("b",))
    second.start()
    _wait_for(lambda: live._turns.waiting == 1)  # b waits for its turn, it is not refused
    estimator.gate.set()
    first.join(30)
    second.join(30)
    assert all(not isinstance(answers[s], LiveRefusal) for s in "ab"), answers
    # a frame that cannot get its turn in time is dropped, not queued
    estimator.gate.clear()
    estimator.entered.clear()
    live = _streams(tmp_path, estimator, yunet_path, wait_s=0.05)
    first = threading.Thread(target=send, args=("c",))
    first.start()
    assert estimator.entered.wait(30)
    with pytest.raises(LiveRefusal) as refused:
        live.frame("d", face_frame)
    assert (refused.value.status, refused.value.code, refused.value.retry_after_s) == (503, "dropped", 0.0)
    estimator.gate.set()
    first.join(30)


def test_rate_and_number_of_streams_are_capped(tmp_path, face_frame, yunet_path):
    clock = _Clock()
    live = _streams(tmp_path, FakeEstimator(), yunet_path, clock, max_fps=10.0, burst=2, max_streams=2)
    live.frame("a", face_frame)
    live.frame("a", face_frame)
    with pytest.raises(LiveRefusal) as refused:
        live.frame("a", face_frame)
    assert (refused.value.status, refused.value.code) == (429, "rate")
    assert refused.value.retry_after_s == pytest.approx(0.1)
    clock.now += 0.1
    live.frame("a", face_frame)
    live.frame("b", face_frame)
    with pytest.raises(LiveRefusal) as refused:  # a third stream while two stream
        live.frame("c", face_frame)
    assert (refused.value.status, refused.value.code) == (503, "busy")
    assert live.streaming() == 2
    clock.now += 5.0  # a and b stopped sending
    live.frame("c", face_frame)
    assert live.streaming() == 1


def test_three_streams_share_fairly_and_uploads_and_jobs_still_answer(tmp_path, face_frame, yunet_path):
    require(PORTRAIT_PHOTO)
    estimator = FakeEstimator(delay_s=0.005)
    service = Face3DService(
        ResultCache(tmp_path / "results"), estimator_factory=lambda *_: estimator, detector_path=yunet_path
    )
    live = service.live
    served = {"a": 0, "b": 0, "c": 0}
    refused: list[str] = []
    stop = threading.Event()

    def stream(session: str) -> None:
        while not stop.is_set():
            try:
                live.frame(session, face_frame)
                served[session] += 1
            except LiveRefusal as exc:
                refused.append(exc.code)

    threads = [threading.Thread(target=stream, args=(s,)) for s in served]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: min(served.values()) >= 3)
        # an upload (decode, face detection, thumbnail) and a depth job while three streams run
        meta = service.access.upload("user", PORTRAIT_PHOTO.read_bytes(), "portrait.jpg")
        depth = service.depth_maps.compute(DepthRef(meta.sha256, MODEL, 0))
        assert meta.face_count == 1 and depth.depth_rel.size > 0
        counts_during_work = dict(served)
        _wait_for(lambda: min(served.values()) >= min(counts_during_work.values()) + 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not refused, refused
    assert max(served.values()) - min(served.values()) <= 2, f"turns are not fair: {served}"


def test_answered_live_frames_are_not_in_the_access_log(monkeypatch):
    from werkzeug.serving import WSGIRequestHandler

    from dashboard.request_limits import BoundedRequestHandler

    logged: list[tuple[str, object]] = []
    monkeypatch.setattr(
        WSGIRequestHandler, "log_request", lambda self, code="-", size="-": logged.append((self.path, code))
    )
    handler = BoundedRequestHandler.__new__(BoundedRequestHandler)
    for path, code in (
        ("/face3d/live/frame?precision=fp32", 200),
        ("/prefix/face3d/live/frame", 200),
        ("/face3d/live/frame", 429),
        ("/_dash-update-component", 200),
    ):
        handler.path = path
        handler.log_request(code, 10)
    assert logged == [("/face3d/live/frame", 429), ("/_dash-update-component", 200)]


def test_live_precision_follows_the_other_pickers(tmp_path):
    from dashboard.services.model_status import precision_choices_here
    from tests.harness.dash_client import DashHttp, output

    app = create_app(tmp_path / "cache", estimator_factory=lambda *_: FakeEstimator(), runner=NoJobsRunner())
    dash = DashHttp.in_process(app)
    choices = precision_choices_here()
    wanted = "bf16" if "bf16" in choices.options else "fp32"
    values = {
        ids.DEPTH_MODEL: MODEL,
        ids.MODEL3D_MODEL: MODEL,
        ids.DEPTH_PRECISION: "fp32",
        ids.MODEL3D_PRECISION: "fp32",
        ids.LIVE_PRECISION: wanted,
    }
    response = dash.call((ids.LIVE_PRECISION, "value"), values, output_id=ids.DEPTH_PRECISION)
    for picker in (ids.DEPTH_PRECISION, ids.MODEL3D_PRECISION, ids.LIVE_PRECISION):
        assert output(response, picker, "value") == wanted
    # the Compare tab's precisions follow the Depth tab's (a callback of their own, see test_compare_items)


def test_live_input_is_at_most_192_a_side_where_the_network_takes_other_sizes():
    from face3d_core.live import LIVE_NET_MAX_SIDE, live_input_size
    from face3d_core.models.registry import get_spec

    assert live_input_size(get_spec("midas_v21_small_256")) == (LIVE_NET_MAX_SIDE, LIVE_NET_MAX_SIDE) == (192, 192)
    assert live_input_size(get_spec("dpt_hybrid_384")) == (192, 192)
    for fixed in ("dpt_levit_224", "dpt_swin2_tiny_256"):  # fixed input sizes are kept
        assert live_input_size(get_spec(fixed)) == get_spec(fixed).net_size
