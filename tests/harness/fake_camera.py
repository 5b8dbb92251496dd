"""A camera for headless Chromium: a face photo as a y4m video that Chromium plays as its webcam.

Also :func:`stored_files`, what the camera tests compare before and after streaming.

Chromium's flags ``--use-fake-device-for-media-stream --use-file-for-fake-video-capture=FILE.y4m``
give pages one camera showing that file (looped). Permission is then the browser context's:
Playwright's ``permissions=["camera"]`` grants it, and without it ``getUserMedia`` is refused with
``NotAllowedError``, as when a user blocks the camera. (``--use-fake-ui-for-media-stream`` would grant
every request, so the refused case could not be tried; it is left out.)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: Host name that :data:`INSECURE_HOST_RULE` points at 127.0.0.1: a page served from it over plain
#: HTTP is not a secure context, as a page from another machine's address would not be.
INSECURE_HOST = "face3d-camera.test"
INSECURE_HOST_RULE = f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"


def write_y4m(photo: Path, out: Path, size_wh: tuple[int, int] = (640, 480), frames: int = 2) -> Path:
    """Write ``photo`` (resized to cover the picture, cropped near its top, where portraits have the
    face) as a short 4:2:0 y4m video.

    Args:
        photo: A JPEG or PNG.
        out: The ``.y4m`` file to write.
        size_wh: The camera's picture size.
        frames: Frames in the video; each is shifted by a pixel from the one before (a camera that
            holds still is never quite still).

    Returns:
        ``out``.
    """
    width, height = size_wh
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {photo}")
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    resized = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))), cv2.INTER_AREA)
    top = (resized.shape[0] - height) // 8
    left = (resized.shape[1] - width) // 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            frame = np.ascontiguousarray(resized[top : top + height, left + index : left + index + width])
            if frame.shape[1] < width:
                frame = cv2.copyMakeBorder(frame, 0, 0, 0, width - frame.shape[1], cv2.BORDER_REPLICATE)
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out


def fake_camera_args(y4m: Path) -> list[str]:
    """Chromium flags that make ``y4m`` its only camera (see the module docstring)."""
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"]


def stored_files(cache_dir: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under an app's cache folder, except its job runner's heartbeats.

    What a live camera stream must leave untouched: ``jobs/`` changes every few seconds whatever happens
    (the server's heartbeat); results, uploads, sessions and compiled models live elsewhere in the folder.
    """
    return {
        str(p.relative_to(cache_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in cache_dir.rglob("*")
        if p.is_file() and p.relative_to(cache_dir).parts[0] != "jobs"
    }
