"""Downloads: the depth map (8-bit PNG, 16-bit PNG, .npy) and the 3D model (PLY, OBJ zip, GLB, STL).

Files are made from what is cached (the depth map, the reconstruction for the shown slider
values); nothing here runs the network. File names come from the user's file name, reduced
to safe characters.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable

import numpy as np

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import DepthMissingError
from dashboard.services.model3d import Models3D
from dashboard.services.uploads import Uploads
from face3d_core.depthmap import encode_depth_npy, encode_depth_png8, encode_depth_png16
from face3d_core.errors import ExportError
from face3d_core.export import export_mesh
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams

#: Depth map formats: kind -> (encoder of ``(h, w) float32`` relative inverse depth, file suffix).
DEPTH_FORMATS: dict[str, tuple[Callable[[np.ndarray], bytes], str]] = {
    "png8": (encode_depth_png8, "_depth.png"),
    "png16": (encode_depth_png16, "_depth16.png"),
    "npy": (encode_depth_npy, "_depth.npy"),
}
#: 3D model formats.
MODEL_FORMATS = ("ply", "obj", "glb", "stl")


def safe_stem(name: str, fallback: str = "face") -> str:
    """Return a file-name stem made only of ``[A-Za-z0-9_-]`` from a user's file name."""
    stem = os.path.splitext(os.path.basename(str(name)))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return stem[:60] or fallback


class Exports:
    """Download files of cached results.

    Args:
        uploads: The photos (for file names).
        depth: The cached depth maps.
        models: The reconstructions.
    """

    def __init__(self, uploads: Uploads, depth: DepthMaps, models: Models3D):
        self.uploads = uploads
        self.depth = depth
        self.models = models

    def depth_file(self, ref: DepthRef, kind: str, name: str) -> tuple[str, bytes]:
        """Return ``(file name, bytes)`` of the depth map in ``kind`` (``png8``, ``png16``, ``npy``).

        ``name`` is the photo's display name for the asking session (the file name is made from it).

        Raises:
            DepthMissingError: No depth map for ``ref`` in the cache.
            ExportError: Unknown kind.
        """
        if kind not in DEPTH_FORMATS:
            raise ExportError(f"Unknown depth map format {kind!r}; use png8, png16 or npy.")
        face_depth = self.depth.cached(ref)
        if face_depth is None:
            raise DepthMissingError("Generate the depth map first.")
        self.uploads.require_meta(ref.sha)
        encode, suffix = DEPTH_FORMATS[kind]
        return safe_stem(name) + suffix, encode(face_depth.depth_rel)

    def model_file(self, ref: DepthRef, params: ReconstructionParams, fmt: str, name: str) -> tuple[str, bytes]:
        """Return ``(file name, bytes)`` of the 3D model in ``fmt`` (ply, obj, glb, stl).

        ``name`` is the photo's display name for the asking session.

        OBJ comes as a zip (OBJ + MTL + texture PNG).

        Raises:
            ExportError: Unknown format.
            DepthMissingError: No depth map for ``ref`` in the cache.
        """
        fmt = fmt.lower()
        if fmt not in MODEL_FORMATS:
            raise ExportError(f"Unknown 3D format {fmt!r}; use PLY, OBJ, GLB or STL.")
        self.uploads.require_meta(ref.sha)
        face_model = self.models.model(ref, params)
        files = export_mesh(face_model.mesh, fmt)
        stem = safe_stem(name)
        if len(files) == 1:
            ((name, data),) = files.items()
            ext = os.path.splitext(name)[1] or f".{fmt}"
            return f"{stem}_3d{ext}", data
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(os.path.basename(name), data)
        return f"{stem}_3d_{fmt}.zip", buffer.getvalue()
