"""Measurement accuracy on the open head scans of ``../shared/data/3d`` (known answers).

Each scan is rendered with a pinhole camera of known field of view (640 x 800 pixels, 40
degrees, nose tip 450 mm away; ``tests/scan_render.py``) into RGB and exact metric depth.
The table compares each distance measured by :func:`face3d_core.measure.measure_face` on the
reconstructed model with the same distance on the scan itself (the same point definitions,
applied by exact ray casting):

* **metric, smooth 0**: metric depth, no smoothing (``face3d measure --depth-kind metric --smooth 0``);
* **metric, smooth 2**: metric depth with the default smoothing (2 pixels);
* **relative**: the exact inverse depth with an unknown scale and shift (what a perfect
  relative-depth network would give): millimetres from the assumed 63 mm eyes and the
  assumed relief, compared with the scan scaled to 63 mm between its eyes; ``±`` is the
  stated 1-sigma uncertainty.

Landmarks: MediaPipe and ICT by vertex index, Lee Perry-Smith from YuNet on the render.
Run: ``.venv/bin/python benchmarks/measure_accuracy.py`` (needs ../shared, or ``$FACE3D_SHARED_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import SHARED_DIR, print_table  # noqa: E402
from face3d_core.faces import Face, detect_faces  # noqa: E402
from face3d_core.geometry import Intrinsics  # noqa: E402
from face3d_core.measure import MEASUREMENTS, measure_face  # noqa: E402
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face  # noqa: E402
from tests import scan_render as sr  # noqa: E402

CAMERA = Intrinsics.from_fov(640, 800, 40.0)
METRIC = ReconstructionParams(depth_kind="metric", fov_deg=40.0, smoothing_sigma=0.0, representation="points")


def main() -> int:
    shared = Path(os.environ.get("FACE3D_SHARED_DIR", SHARED_DIR))
    root = shared / "data" / "3d"
    yunet = shared / "models" / "face_detection_yunet.onnx"
    if not root.exists():
        print(f"{root} is absent: nothing to measure")
        return 0
    rows = []
    for loader in (sr.load_mediapipe, sr.load_ict, sr.load_lee_perry_smith):
        scan = loader(root)
        if scan.landmarks is not None:
            target = scan.landmarks[2]
        else:
            head = scan.vertices[scan.vertices[:, 1] > 0]
            target = head[np.argmax(head[:, 2])]
        vc = sr.place(scan, 450.0, target=target)
        depth, rgb = sr.render(vc, scan.faces, CAMERA, uv=scan.uv, texture=scan.texture)
        depth = np.where(depth > 0, depth, np.nan)
        if scan.landmarks is not None:
            marks = sr.project(sr.transform_points(scan, scan.landmarks, 450.0, target=target), CAMERA)
            face = Face.from_landmarks(marks)
        else:
            face = detect_faces(rgb, model_path=yunet)[0]
            marks = face.landmarks_xy.astype(np.float64)
        caster = sr.RayCaster(vc, scan.faces, CAMERA)
        model = reconstruct_face((depth, rgb, face), METRIC)
        truth = measure_face(model, surface=sr.ScanSurface(caster, model.origin_mm), landmarks=marks)
        sharp = measure_face(model)
        smooth = measure_face(reconstruct_face((depth, rgb, face), METRIC.replace(smoothing_sigma=2.0)))
        inverse = (1000.0 / np.nan_to_num(depth, nan=2000.0) + 0.3).astype(np.float32)
        rel = measure_face(reconstruct_face((inverse, rgb, face), METRIC.replace(depth_kind="inverse")))
        k = 63.0 / truth["eye_distance"].value_mm
        for name, label, *_ in MEASUREMENTS:
            t = truth[name].value_mm
            r = rel[name]
            rows.append(
                [
                    scan.name,
                    label,
                    f"{t:.2f}",
                    f"{100 * (sharp[name].value_mm / t - 1):+.2f} %",
                    f"{100 * (smooth[name].value_mm / t - 1):+.2f} %",
                    f"{r.value_mm:.1f} ± {r.sigma_mm:.1f} vs {k * t:.1f} ({100 * (r.value_mm / (k * t) - 1):+.0f} %)",
                ]
            )
    print_table(["scan", "distance", "scan mm", "metric, smooth 0", "metric, smooth 2", "relative (63 mm eyes)"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
