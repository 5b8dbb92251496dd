"""Files shipped inside the face3d package (package data): the YuNet face detector.

``face_detection_yunet_2026may.onnx`` (OpenCV zoo, MIT licence: ``LICENSE-YuNet.txt`` beside
it) belongs in this folder. It is not kept in git; a packager puts it here before installing
or building a wheel, with its SHA-256 checked::

    make vendor-detector YUNET=/path/to/face_detection_yunet_2026may.onnx
    # or: python -m face3d_core.data /path/to/face_detection_yunet_2026may.onnx

``pyproject.toml`` lists ``*.onnx`` of this folder as package data, so ``pip install -e .``
(which reads it here) and a wheel (which copies it) both carry it. :mod:`face3d_core.faces`
looks here right after ``FACE3D_YUNET_PATH`` and checks the SHA-256 when it loads the file.

This module imports nothing heavy (``python -m face3d_core.data`` runs before any
dependency is installed).
"""

from __future__ import annotations

from pathlib import Path

#: This folder.
DATA_DIR = Path(__file__).resolve().parent

#: File name of the YuNet face detector (OpenCV zoo's ``face_detection_yunet_2026may.onnx``).
DETECTOR_FILE_NAME = "face_detection_yunet_2026may.onnx"
#: Its full SHA-256 (229,738 bytes).
DETECTOR_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
#: Its official download URL (the OpenCV zoo on GitHub).
DETECTOR_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2026may.onnx"
)
#: The licence notice that travels with it.
DETECTOR_LICENSE = "LICENSE-YuNet.txt"


def packaged_detector_path() -> Path:
    """Where the shipped face detector is (or would be): ``face3d_core/data/<DETECTOR_FILE_NAME>``."""
    return DATA_DIR / DETECTOR_FILE_NAME
