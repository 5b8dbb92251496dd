"""Downloads: depth map, 3D model, measurements and printable relief.

Formats: the depth map as 8-bit PNG, 16-bit PNG or .npy; the 3D model as PLY, OBJ (zip), GLB
or STL; the measurements as CSV or JSON; the printable relief as STL or 3MF.

Files are made from what is cached (the depth map, the reconstruction for the shown slider
values); nothing here runs the network. File names come from the user's file name, reduced
to safe characters.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import DepthMissingError
from dashboard.services.heavy import HeavyWork
from dashboard.services.model3d import Models3D, is_heavy
from face3d_core.depthmap import encode_depth_npy, encode_depth_png8, encode_depth_png16
from face3d_core.errors import ExportError, shown_value
from face3d_core.export import export_mesh
from face3d_core.measure import FaceMeasurements, write_csv
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams
from face3d_core.relief import (
    DEFAULT_BASE_MM,
    DEFAULT_RELIEF,
    DEFAULT_WIDTH_MM,
    ReliefSolid,
    relief_from_model,
    relief_max_points,
)

#: Depth map formats: kind -> (encoder of ``(h, w) float32`` relative inverse depth, file suffix).
DEPTH_FORMATS: dict[str, tuple[Callable[[np.ndarray], bytes], str]] = {
    "png8": (encode_depth_png8, "_depth.png"),
    "png16": (encode_depth_png16, "_depth16.png"),
    "npy": (encode_depth_npy, "_depth.npy"),
}
#: 3D model formats.
MODEL_FORMATS = ("ply", "obj", "glb", "stl")
#: Measurement formats.
MEASURE_FORMATS = ("csv", "json")
#: Printable relief formats.
RELIEF_FORMATS = ("stl", "3mf")


@dataclass(frozen=True)
class ReliefSettings:
    """The printable relief's settings with their ranges (the 3D tab's inputs).

    Attributes:
        width_mm: Width of the print (20 to 300 mm; a common printer bed is 220-256 mm).
        base_mm: Base thickness under the deepest point (1 to 20 mm).
        relief: Depth exaggeration (0.1 to 2; 1 = true proportions).
    """

    width_mm: float = DEFAULT_WIDTH_MM
    base_mm: float = DEFAULT_BASE_MM
    relief: float = DEFAULT_RELIEF

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "width_mm": (20.0, 300.0),
        "base_mm": (1.0, 20.0),
        "relief": (0.1, 2.0),
    }
    LABELS: ClassVar[dict[str, str]] = {"width_mm": "Width", "base_mm": "Base thickness", "relief": "Relief"}

    @classmethod
    def from_values(cls, width_mm: object, base_mm: object, relief: object) -> ReliefSettings:
        """Check the browser's values (numbers, or the text typed in the fields); empty ones take the default.

        Text is read as a number (a decimal comma too: ``"80,5"``); anything that is not a finite
        number in its range is refused with a message, never replaced by the default.

        Raises:
            ExportError: A value that is not a number or lies outside its range (the message says
                which, repeating at most :data:`~face3d_core.errors.MAX_SHOWN_CHARS` of it).
        """
        values = {}
        for name, raw in (("width_mm", width_mm), ("base_mm", base_mm), ("relief", relief)):
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                values[name] = getattr(cls(), name)
                continue
            low, high = cls.RANGES[name]
            number = _typed_number(raw)
            if not low <= number <= high:
                unit = "" if name == "relief" else " mm"
                raise ExportError(
                    f"{cls.LABELS[name]} must be between {low:g} and {high:g}{unit}; it is {shown_value(raw)}."
                )
            values[name] = number
        return cls(**values)


def _typed_number(raw: object) -> float:
    """A number the browser sent or a user typed, as a float; NaN for anything else (bools, lists, junk text)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return math.nan
    text = raw.strip().replace(",", ".", 1) if isinstance(raw, str) and raw.count(",") == 1 else raw
    try:
        number = float(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int of hundreds of digits
        return math.nan
    return number if math.isfinite(number) else math.nan


@dataclass(frozen=True)
class MeasuredFace:
    """One face's measurements for a file, with the photo's name and the depth map that gave them.

    Attributes:
        name: The photo's name (as the asking session sees it; the file's ``image`` column).
        result: The measurements.
        ref: The depth map (its model and precision fill the ``model`` and ``precision`` columns).
    """

    name: str
    result: FaceMeasurements
    ref: DepthRef | None = None

    def rows(self) -> list[dict[str, object]]:
        """The CSV rows (:meth:`FaceMeasurements.to_rows`)."""
        return self.result.to_rows(self.name, *self._network())

    def document(self) -> dict[str, object]:
        """The JSON document (:meth:`FaceMeasurements.to_dict`)."""
        return self.result.to_dict(self.name, *self._network())

    def _network(self) -> tuple[str, str]:
        return ("", "") if self.ref is None else (self.ref.model, self.ref.precision)


def safe_stem(name: str, fallback: str = "face") -> str:
    """Return a file-name stem made only of ``[A-Za-z0-9_-]`` from a user's file name."""
    stem = os.path.splitext(os.path.basename(str(name)))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return stem[:60] or fallback


class Exports:
    """Download files of cached results.

    Args:
        depth: The cached depth maps.
        models: The reconstructions.
        heavy: The turnstile large files wait at (3D models of many points, reliefs).
    """

    def __init__(self, depth: DepthMaps, models: Models3D, *, heavy: HeavyWork | None = None):
        self.depth = depth
        self.models = models
        self.heavy = heavy if heavy is not None else getattr(models, "heavy", None) or HeavyWork()

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
        with self.heavy.turn("A 3D model download") if is_heavy(params) else contextlib.nullcontext():
            face_model = self.models.model(ref, params)
            files = export_mesh(face_model.mesh, fmt)
            stem = safe_stem(name)
            if len(files) == 1:
                ((name, data),) = files.items()
                ext = os.path.splitext(name)[1] or f".{fmt}"
                return f"{stem}_3d{ext}", data
            buffer = io.BytesIO()
            # the fastest deflate level: a full-density OBJ is 140 MB of text; level 6 took 18 s of CPU for it
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, data in files.items():
                    archive.writestr(os.path.basename(name), data)
            return f"{stem}_3d_{fmt}.zip", buffer.getvalue()

    def measurements_file(self, measured: Sequence[MeasuredFace], fmt: str, stem: str) -> tuple[str, bytes]:
        """Return ``(file name, bytes)`` of measurements as CSV or JSON (the ``face3d measure`` formats).

        Every row (CSV) and face (JSON) names its photo and the depth network and precision
        that gave its depth, so a comparison of models keeps them apart.

        Args:
            measured: The measured faces, in order.
            fmt: ``"csv"`` or ``"json"``.
            stem: File name stem (made safe here).

        Raises:
            ExportError: Unknown format.
        """
        fmt = fmt.lower()
        if fmt not in MEASURE_FORMATS:
            raise ExportError(f"Unknown measurement format {fmt!r}; use CSV or JSON.")
        if fmt == "csv":
            rows = [row for face in measured for row in face.rows()]
            data = write_csv(rows).encode("utf-8")
        else:
            document = {"faces": [face.document() for face in measured]}
            data = (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")
        return f"{safe_stem(stem)}_measurements.{fmt}", data

    def relief(self, ref: DepthRef, params: ReconstructionParams, settings: ReliefSettings) -> ReliefSolid:
        """The printable relief of the model (the shown smoothing and depth scale), within its triangle budget.

        The model it is made of has as many points as the relief's grid can use at its width
        (:func:`~face3d_core.relief.relief_max_points`), not every pixel of the depth map.

        Raises:
            DepthMissingError: No depth map for ``ref`` in the cache.
            ExportError: No closed solid can be made of this model.
        """
        points = relief_max_points(settings.width_mm)
        full = params.replace(stride=1, max_points=points, representation="points", texture=False)
        with self.heavy.turn("A printable relief"):
            face_model = self.models.model(ref, full)
            try:
                return relief_from_model(
                    face_model, width_mm=settings.width_mm, base_mm=settings.base_mm, relief=settings.relief
                )
            except ValueError as exc:
                raise ExportError(f"No printable relief could be made of this model: {exc}.") from exc

    def relief_file(
        self, ref: DepthRef, params: ReconstructionParams, fmt: str, settings: ReliefSettings, name: str
    ) -> tuple[str, bytes, ReliefSolid]:
        """Return ``(file name, bytes, solid)`` of the printable relief as STL or 3MF.

        ``name`` is the photo's display name for the asking session.

        Raises:
            ExportError: Unknown format, or no solid can be made.
            DepthMissingError: No depth map for ``ref`` in the cache.
        """
        fmt = fmt.lower()
        if fmt not in RELIEF_FORMATS:
            raise ExportError(f"Unknown relief format {fmt!r}; use STL or 3MF.")
        with self.heavy.turn("A printable relief"):
            solid = self.relief(ref, params, settings)
            stem = f"{safe_stem(name)}_relief"
            ((_, data),) = export_mesh(solid.mesh, fmt, name=stem).items()
        return f"{stem}.{fmt}", data, solid
