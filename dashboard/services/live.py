"""Live depth streams: the camera frames of many pages, bounded and shared fairly on one server process.

A page with the live view on sends one JPEG frame at a time to ``/face3d/live/frame``
(:mod:`dashboard.live_endpoint`) and sends the next only when the answer came (it drops frames
rather than queue them). :class:`LiveStreams` computes each frame's depth picture with
:func:`face3d_core.live.live_depth` on the network the app already loaded for the Depth tab
(``DepthMaps.estimator_factory``: one process-wide estimator per model and precision, never a
second copy), and bounds what streams may cost:

* **one frame in flight per session**: a second frame while one is computed is refused (429);
* **a rate per session**: at most :attr:`LiveLimits.max_fps` frames a second (429 above it);
* **a number of streams per process**: at most :attr:`LiveLimits.max_streams` sessions streaming
  at once (``FACE3D_LIVE_STREAMS``); another gets 503 "busy" until one stops;
* **fair turns**: frames are computed one at a time, in the order they arrived
  (:class:`FrameTurns`); as every session has at most one frame waiting, each streaming session
  gets one frame in turn, and a frame that waited :attr:`LiveLimits.wait_s` is dropped (503), so
  a crowd of streams lowers every stream's frame rate instead of growing a queue. The network's
  own lock (:meth:`~face3d_core.models.estimator.DepthEstimator.infer_array`) puts the Depth tab's
  jobs between two live frames, so jobs and uploads still answer.

Frames are private: they are never written to the result store or to the log (not even their
size); only a photo the user captures is stored, through the upload path like any file.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import LiveRefusal
from face3d_core.errors import Face3DError
from face3d_core.figures import depth_colormap_lut
from face3d_core.live import (
    MAX_FRAME_BYTES,
    MAX_FRAME_SIDE,
    FaceTracker,
    decode_frame,
    encode_depth_jpeg,
    live_depth,
)
from face3d_core.models.registry import DEFAULT_MODEL

logger = logging.getLogger(__name__)

#: A session that sent no frame for this long no longer counts as streaming.
STREAM_IDLE_S = 3.0
#: Per-session state (face tracker, rate) is forgotten after this long without a frame.
STREAM_FORGET_S = 120.0
#: Most sessions whose state is kept (the oldest idle ones are forgotten first).
MAX_TRACKED_SESSIONS = 256

#: What the page says where the server does not offer live depth.
LIVE_OFF_MESSAGE = "Live depth is turned off on this server; you can still take photos with the camera."
#: ... in scale-out mode (the networks run on separate workers).
LIVE_SCALE_OUT_MESSAGE = (
    "Live depth is not available on this server (its depth networks run on separate workers); "
    "you can still take photos with the camera."
)


@dataclass(frozen=True)
class LiveLimits:
    """What live streams may cost one server process.

    Attributes:
        max_side: Longest side of a frame, pixels (the page scales its frames to it).
        max_bytes: Largest frame, bytes.
        max_fps: Frames a second one session may send.
        burst: Frames a session may send at once after a pause (the rate's bucket).
        max_streams: Sessions streaming at once (0: live depth is off).
        wait_s: Longest a frame waits for its turn before it is dropped.
    """

    max_side: int = MAX_FRAME_SIDE
    max_bytes: int = MAX_FRAME_BYTES
    max_fps: float = 30.0
    burst: int = 5
    max_streams: int = 4
    wait_s: float = 1.0


class FrameTurns:
    """Frames computed ``workers`` at a time, strictly in the order they arrived.

    Python's locks do not queue their waiters; this does, so no stream can take every turn.

    Args:
        workers: Frames computed at once (1: the network runs one frame at a time anyway).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, workers: int = 1, clock: Callable[[], float] = time.monotonic):
        self.workers = workers
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._running = 0

    def acquire(self, timeout_s: float) -> bool:
        """Wait for this frame's turn; False when it did not come within ``timeout_s`` (the frame is dropped)."""
        ticket = object()
        deadline = self._clock() + timeout_s
        with self._cond:
            self._waiting.append(ticket)
            try:
                while not (self._running < self.workers and self._waiting[0] is ticket):
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                self._waiting.popleft()
                self._running += 1
                return True
            finally:
                if ticket in self._waiting:  # timed out: give the turn to the next one
                    self._waiting.remove(ticket)
                    self._cond.notify_all()

    def release(self) -> None:
        """End a turn taken with :meth:`acquire`."""
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Frames waiting for a turn now."""
        with self._cond:
            return len(self._waiting)


@dataclass
class _Stream:
    """One session's live view: its face tracker, its rate bucket, its frame in flight."""

    tracker: FaceTracker
    tokens: float
    refilled_at: float
    last_frame_at: float
    busy: bool = False


@dataclass(frozen=True)
class LiveFrame:
    """The answer to one frame.

    Attributes:
        jpeg: The colour-mapped depth picture (JPEG).
        crop_xyxy: The face crop in frame pixels, or None (the whole frame).
        frame_size_wh: ``(W, H)`` of the frame.
        timings_ms: Server time of each step (``wait``, ``decode``, ``detect``, ``network``,
            ``colour``, ``encode``), milliseconds.
    """

    jpeg: bytes
    crop_xyxy: tuple[int, int, int, int] | None
    frame_size_wh: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)


class LiveStreams:
    """Live depth of the sessions' camera frames (see the module docstring).

    Args:
        depth_maps: Where the app's networks come from (:attr:`DepthMaps.estimator_factory`) and
            load in the background (:meth:`DepthMaps.preload`).
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`).
        limits: The bounds (default :class:`LiveLimits`).
        off_reason: Why live depth is off on this server (None: it is on). A limit of 0 streams
            turns it off too.
        model: The network (default: the app's default).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        depth_maps: DepthMaps,
        detector_path: str | os.PathLike | None = None,
        *,
        limits: LiveLimits | None = None,
        off_reason: str | None = None,
        model: str = DEFAULT_MODEL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.depth_maps = depth_maps
        self.detector_path = detector_path
        self.limits = limits or LiveLimits()
        self.model = model
        self.off_reason = off_reason or (LIVE_OFF_MESSAGE if self.limits.max_streams <= 0 else None)
        self._clock = clock
        self._turns = FrameTurns(1, clock)
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._lock = threading.Lock()

    # -- admission -------------------------------------------------------------------------

    def _admit(self, session: str) -> _Stream:
        """Take the session's frame in, or refuse it (in flight, over its rate, too many streams)."""
        limits = self.limits
        now = self._clock()
        with self._lock:
            self._forget_idle(now)
            stream = self._streams.get(session)
            if stream is None:
                if self._streaming(now) >= limits.max_streams:
                    raise LiveRefusal(
                        503,
                        "busy",
                        "The server is busy with other live views; yours starts as soon as one of them stops.",
                        2.0,
                    )
                stream = _Stream(FaceTracker(), float(limits.burst), now, now)
                self._streams[session] = stream
            self._streams.move_to_end(session)
            if stream.busy:
                raise LiveRefusal(429, "in-flight", "Send the next frame when the last one was answered.", 0.05)
            stream.tokens = min(float(limits.burst), stream.tokens + (now - stream.refilled_at) * limits.max_fps)
            stream.refilled_at = now
            if stream.tokens < 1.0:
                raise LiveRefusal(429, "rate", "Too many frames a second.", (1.0 - stream.tokens) / limits.max_fps)
            stream.tokens -= 1.0
            stream.busy = True
            stream.last_frame_at = now
            return stream

    def _forget_idle(self, now: float) -> None:
        """Drop the state of sessions long idle (and the oldest idle beyond :data:`MAX_TRACKED_SESSIONS`)."""
        for session in list(self._streams):
            stream = self._streams[session]
            too_many = len(self._streams) > MAX_TRACKED_SESSIONS
            if not stream.busy and (too_many or now - stream.last_frame_at > STREAM_FORGET_S):
                del self._streams[session]

    def _release(self, stream: _Stream) -> None:
        with self._lock:
            stream.busy = False
            stream.last_frame_at = self._clock()

    def _streaming(self, now: float) -> int:
        """Sessions streaming at ``now`` (a frame in flight, or one sent within :data:`STREAM_IDLE_S`); lock held."""
        return sum(1 for s in self._streams.values() if s.busy or now - s.last_frame_at < STREAM_IDLE_S)

    def streaming(self) -> int:
        """Sessions streaming now."""
        with self._lock:
            return self._streaming(self._clock())

    # -- the network -----------------------------------------------------------------------

    def _estimator(self, precision: str):
        """The app's loaded network in ``precision``; refuses the frame while it loads (and starts the load)."""
        estimator = self.depth_maps.estimator_factory(self.model, precision)
        if getattr(estimator, "loaded", True):
            return estimator
        self.depth_maps.preload(self.model, precision)  # once per process; the Depth tab's jobs wait for it too
        state = self.depth_maps.preload_state(self.model, precision)
        if state is not None and state.state == "failed":
            raise LiveRefusal(
                503,
                "failed",
                "The depth model could not be loaded on the server; the Depth tab says why.",
                None,
            )
        raise LiveRefusal(503, "loading", "Loading the depth model (first time only)...", 1.0)

    # -- one frame -------------------------------------------------------------------------

    def frame(self, session: str, data: bytes, *, precision: str = "fp32", colormap: str = "") -> LiveFrame:
        """Compute the depth picture of one frame of ``session``'s camera.

        Args:
            session: The page's session (from its signed cookie).
            data: The frame, a JPEG (checked: see :func:`face3d_core.live.decode_frame`).
            precision: ``fp32`` or ``bf16`` (the caller checked that this server offers it).
            colormap: A key of :data:`face3d_core.figures.DEPTH_COLORMAPS` (unknown: the default).

        Returns:
            The :class:`LiveFrame`.

        Raises:
            LiveRefusal: The frame is not computed (why, and when to send the next one).
        """
        if self.off_reason is not None:
            raise LiveRefusal(503, "off", self.off_reason, None)
        stream = self._admit(session)
        try:
            estimator = self._estimator(precision)
            started = self._clock()
            if not self._turns.acquire(self.limits.wait_s):
                raise LiveRefusal(503, "dropped", "The server is busy; this frame was skipped.", 0.0)
            try:
                return self._compute(stream, estimator, data, colormap, (self._clock() - started) * 1000.0)
            finally:
                self._turns.release()
        finally:
            self._release(stream)

    def _compute(self, stream: _Stream, estimator, data: bytes, colormap: str, wait_ms: float) -> LiveFrame:
        begun = time.perf_counter()
        try:
            frame_rgb = decode_frame(data, max_side=self.limits.max_side, max_bytes=self.limits.max_bytes)
        except Face3DError as exc:
            raise LiveRefusal(400, "frame", exc.web_message, None) from None
        decoded = time.perf_counter()
        live = live_depth(
            frame_rgb, estimator, stream.tracker, depth_colormap_lut(colormap), detector_path=self.detector_path
        )
        coloured = time.perf_counter()
        jpeg = encode_depth_jpeg(live.depth_rgb)
        timings = {"wait": wait_ms, "decode": (decoded - begun) * 1000.0, **live.timings_ms}
        timings["encode"] = (time.perf_counter() - coloured) * 1000.0
        return LiveFrame(jpeg, live.crop_xyxy, live.frame_size_wh, timings)
