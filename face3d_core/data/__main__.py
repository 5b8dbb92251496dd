"""``python -m face3d_core.data FILE``: put the YuNet face detector into the package, SHA-256 checked.

For packagers (``make vendor-detector YUNET=FILE`` runs this): the file is hashed, compared with
:data:`face3d_core.data.DETECTOR_SHA256`, then copied to a temporary name in the package folder
and renamed into place, so a wrong or half-copied file never takes the detector's name. Exit
status 0 when the detector is in place, 1 on a wrong file, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from face3d_core.data import DATA_DIR, DETECTOR_FILE_NAME, DETECTOR_SHA256, DETECTOR_URL


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def vendor_detector(source: Path, folder: Path = DATA_DIR) -> Path:
    """Copy ``source`` into ``folder`` as :data:`DETECTOR_FILE_NAME` after checking its SHA-256.

    Args:
        source: A copy of ``face_detection_yunet_2026may.onnx``.
        folder: The package-data folder (default: this package's folder).

    Returns:
        The path of the detector in ``folder``.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: Its SHA-256 is not the pinned one (nothing is written).
    """
    source = Path(source).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    actual = _sha256(source)
    if actual != DETECTOR_SHA256:
        raise ValueError(
            f"{source} is not {DETECTOR_FILE_NAME}: its SHA-256 is {actual}, expected {DETECTOR_SHA256} "
            f"(download it from {DETECTOR_URL})"
        )
    dest = folder / DETECTOR_FILE_NAME
    fd, tmp_name = tempfile.mkstemp(prefix=f".{DETECTOR_FILE_NAME}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        if _sha256(Path(tmp_name)) != DETECTOR_SHA256:  # the copy itself went wrong (disk full ...)
            raise ValueError(f"copying {source} to {folder} gave a different file")
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m face3d_core.data FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m face3d_core.data",
        description=f"Put {DETECTOR_FILE_NAME} into the face3d package (SHA-256 checked).",
    )
    parser.add_argument("file", type=Path, help=f"a copy of {DETECTOR_FILE_NAME} (from {DETECTOR_URL})")
    args = parser.parse_args(argv)
    try:
        dest = vendor_detector(args.file)
    except (OSError, ValueError) as exc:
        print(f"face3d: error: {exc}", file=sys.stderr)
        return 1
    print(f"face detector installed: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
