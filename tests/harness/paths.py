"""Where the repository and the read-only reference material (``../shared``) are."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("FACE3D_SHARED_DIR", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference" / "midas"
FILL_PY = SHARED_DIR / "reference" / "fill.py"
FACES_DIR = SHARED_DIR / "data" / "faces"
YUNET_PATH = SHARED_DIR / "models" / "face_detection_yunet.onnx"
#: Open 3D head scans (rendered into photos with known depth by :mod:`tests.harness.scenes`).
SCANS_DIR = SHARED_DIR / "data" / "3d"
#: Reports of the reliability, load and scale-out tests (JSON) go here.
RELIABILITY_ARTIFACTS = Path(
    os.environ.get("FACE3D_RELIABILITY_ARTIFACTS", REPO_ROOT / "test-artifacts" / "reliability")
)
#: The depth model every process-level test runs (with ``fill.py`` weights).
MODEL = "midas_v21_small_256"

#: Face photos the process-level tests use by name (all in ``FACES_DIR``).
PHOTO = FACES_DIR / "skimage_astronaut.png"
SECOND_PHOTO = FACES_DIR / "pillow_hopper_128.jpg"
THIRD_PHOTO = FACES_DIR / "interfaces_016.jpg"
PORTRAIT_PHOTO = FACES_DIR / "fr_obama_official_portrait.jpg"


def require(*paths: Path) -> None:
    """Skip the calling test (or fixture) unless every path exists (``../shared`` may be absent)."""
    import pytest

    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} is absent (../shared not available)")


def face_photos() -> list[Path]:
    """The face photos of ``../shared/data/faces`` (JPEG and PNG), sorted by name; skips if absent."""
    require(FACES_DIR)
    return sorted(p for p in FACES_DIR.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
