"""Photos whose depth is known: renders of the open head scans of ``../shared/data/3d``.

:func:`write_scene` renders a scan (``tests/scan_render.py``: 640 x 800 pixels, 40 degree
horizontal field of view, the nose tip 450 mm away), writes the picture as a JPEG whose EXIF
``FocalLengthIn35mmFilm`` (37 mm) gives that camera back (40.1 degrees), and its exact relative
inverse depth as ``.npy``. The dashboard serves such a photo's true depth through
:class:`~tests.doubles.KnownSceneEstimator` (``fake_network_server --scene PHOTO:DEPTH.npy``):
a real face shape and real EXIF without network weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from face3d_core.geometry import Intrinsics
from tests import scan_render as sr

CAMERA = Intrinsics.from_fov(640, 800, 40.0)
#: The 35 mm equivalent focal length of :data:`CAMERA` (40 degrees over 640 of a 640 x 800 frame).
FOCAL_35MM = 37
DISTANCE_MM = 450.0
_EXIF_IFD, _FOCAL_35MM_TAG = 0x8769, 0xA405


def write_scene(shared_3d: Path, out_dir: Path, *, yaw_deg: float = 0.0, name: str | None = None) -> tuple[Path, Path]:
    """Render the Lee Perry-Smith scan (turned by ``yaw_deg``) to ``<name>.jpg`` and ``<name>_depth.npy``.

    Args:
        shared_3d: The ``data/3d`` folder of ``../shared``.
        out_dir: Where the two files go.
        yaw_deg: Head turn about the vertical axis, degrees.
        name: File stem (default ``lee_perry_smith_yaw<N>``).

    Returns:
        ``(photo path, depth path)``; the depth is relative inverse depth (larger = nearer), the
        background far away.
    """
    from PIL import Image

    scan = sr.load_lee_perry_smith(shared_3d)
    head = scan.vertices[scan.vertices[:, 1] > 0]
    target = head[np.argmax(head[:, 2])]
    depth_mm, rgb = sr.render(
        sr.place(scan, DISTANCE_MM, yaw_deg=yaw_deg, target=target),
        scan.faces,
        CAMERA,
        uv=scan.uv,
        texture=scan.texture,
    )
    inverse = (1000.0 / np.where(depth_mm > 0, depth_mm, 2000.0) + 0.3).astype(np.float32)
    stem = name or f"lee_perry_smith_yaw{yaw_deg:g}"
    out_dir.mkdir(parents=True, exist_ok=True)
    photo, depth = out_dir / f"{stem}.jpg", out_dir / f"{stem}_depth.npy"
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_FOCAL_35MM_TAG] = FOCAL_35MM
    Image.fromarray(rgb).save(photo, "JPEG", quality=95, exif=exif)
    np.save(depth, inverse)
    return photo, depth
