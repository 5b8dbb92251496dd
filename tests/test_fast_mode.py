"""The fast mode (issue 9): "Exact (fp32)" or "Fast (bf16)" chosen in the page, carried by the DepthRef.

A fast depth map is a different result from the exact one: its own cache key, its own estimator,
its own 3D models and comparisons, and its caption says what ran it and how far that is from fp32.
The fake-network tests pin the server's offer (the CPU decides it); the last test runs the real
estimator on this machine's CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.callbacks import choices, compare, depth, model3d
from dashboard.callbacks.jobs import StartOutcome
from dashboard.callbacks.view3d import shown_model
from dashboard.jobs import DiskJobStore, ThreadJobRunner
from dashboard.layout.common import precision_picker
from dashboard.services import Face3DService
from dashboard.services.model_status import NO_FAST_MODE, PrecisionChoices, precision_choices_here
from face3d_core.cache import ResultCache, make_key
from face3d_core.compare import ComparisonError, ComparisonItems
from face3d_core.models.cpu_info import cpu_flags_known, cpu_has_bf16_flags
from face3d_core.pipeline import WORK_MAX_SIDE, DepthRef
from face3d_core.reconstruct import ReconstructionParams
from tests.doubles import FakeEstimator
from tests.harness.callbacks import finish_job, page_view
from tests.harness.dash_client import data_url
from tests.harness.service_calls import compute_depth, depth_key, ingest_upload

SESSION = "s" * 32
MODEL = "midas_v21_small_256"
FAST_OFFERED = PrecisionChoices({"fp32": "Exact (fp32)", "bf16": "Fast (bf16)"}, "fp32")
FAST_NOT_OFFERED = PrecisionChoices({"fp32": "Exact (fp32)"}, "fp32", NO_FAST_MODE)


class ReportingEstimator(FakeEstimator):
    """The fake network, saying what ran it (as the real estimator's runtime report does)."""

    def __init__(self, precision: str):
        super().__init__()
        self.precision = precision

    def runtime_report(self):
        precision = self.precision

        class Report:
            def describe(self) -> str:
                return f"Fake runtime, {precision}, 0.05 max / 0.01 mean of std from PyTorch fp32"

        return Report() if self.calls else None


@pytest.fixture()
def env(tmp_path, yunet_path, faces_dir):
    estimators: dict[tuple[str, str], ReportingEstimator] = {}

    def factory(model: str, precision: str = "fp32") -> ReportingEstimator:
        return estimators.setdefault((model, precision), ReportingEstimator(precision))

    cache = ResultCache(tmp_path / "results")
    service = Face3DService(cache, estimator_factory=factory, detector_path=yunet_path)
    store = DiskJobStore(tmp_path / "jobs")
    runner = ThreadJobRunner(store, service.tasks(), max_workers=1)
    names = ["fr_obama_official_portrait.jpg", "fr_two_people.jpg"]
    contents = [data_url((faces_dir / name).read_bytes()) for name in names]
    from dashboard.callbacks import upload

    uploads, _ = upload.handle_upload(service, contents, names, None, session=SESSION)
    yield {"service": service, "runner": runner, "estimators": estimators, "store": uploads}
    runner.shutdown()
    store.close()
    cache.close()


def run_job(runner, outcome: StartOutcome) -> dict:
    return finish_job(runner, outcome, SESSION)


def offer(monkeypatch, choices_here: PrecisionChoices) -> None:
    monkeypatch.setattr(depth, "precision_choices_here", lambda: choices_here)


def test_fast_depth_map_is_its_own_result_with_its_own_network(env, monkeypatch):
    offer(monkeypatch, FAST_OFFERED)
    service, runner, store = env["service"], env["runner"], env["store"]
    sha = store["items"][0]["sha"]
    exact = run_job(runner, depth.start_depth(service, runner, sha, MODEL, store, session=SESSION))
    fast = run_job(runner, depth.start_depth(service, runner, sha, MODEL, store, session=SESSION, precision="bf16"))
    assert exact["precision"] == "fp32" and fast["precision"] == "bf16"
    assert {key: est.calls for key, est in env["estimators"].items()} == {(MODEL, "fp32"): 1, (MODEL, "bf16"): 1}
    exact_ref, fast_ref = DepthRef.from_dict(exact), DepthRef.from_dict(fast)
    # exact depth maps keep the key they had before the fast mode (cached results stay valid)
    params = {"face": 0, "margin": service.margin, "max_side": WORK_MAX_SIDE}
    assert service.depth_maps.key(exact_ref) == make_key("depth", sha, model=MODEL, params=params)
    assert service.depth_maps.key(fast_ref) != service.depth_maps.key(exact_ref)
    recon = ReconstructionParams()
    assert service.models3d.key(fast_ref, recon) != service.models3d.key(exact_ref, recon)
    # asking again is a cache hit for each; neither network runs again
    again = depth.start_depth(service, runner, sha, MODEL, store, session=SESSION, precision="bf16")
    assert again.job_id is None and again.result == fast
    assert sum(est.calls for est in env["estimators"].values()) == 2

    caption = depth.render_depth(service, fast, "Grayscale", session=SESSION)[2]
    assert "Fast (bf16)" in caption and "Computed with Fake runtime, bf16, 0.05 max" in caption
    assert "Exact (fp32)" in depth.render_depth(service, exact, "Grayscale", session=SESSION)[2]
    # the 3D tab builds the model of the fast depth map, not the exact one
    view = shown_model(service, page_view(fast), session=SESSION)
    assert view.ref == fast_ref
    figure, stats = model3d.render_model3d(service, page_view(fast), None, session=SESSION)[:2]
    assert figure is not None and "points" in stats


@pytest.mark.parametrize("asked", ["bf16", "fp16", "fp64", None, ["bf16"], 7])
def test_a_precision_the_server_does_not_offer_is_its_default(env, monkeypatch, asked):
    offer(monkeypatch, FAST_NOT_OFFERED)
    sha = env["store"]["items"][0]["sha"]
    ref = depth.depth_request(env["service"], sha, MODEL, env["store"], session=SESSION, precision=asked)
    assert ref.precision == "fp32"


def test_comparison_carries_the_precision_and_compares_one_face_in_both(env, monkeypatch):
    offer(monkeypatch, FAST_OFFERED)
    service, runner, store = env["service"], env["runner"], env["store"]
    shas = [item["sha"] for item in store["items"]]
    fast = run_job(
        runner,
        compare.start_compare(service, runner, compare.compare_items(shas, [MODEL], ["bf16"]), store, session=SESSION),
    )
    exact = run_job(
        runner,
        compare.start_compare(service, runner, compare.compare_items(shas, [MODEL], ["fp32"]), store, session=SESSION),
    )
    assert fast["key"] != exact["key"]
    result = service.comparisons.cached(fast["key"])
    assert result.precisions == ("bf16", "bf16") and {ref.precision for ref in result.refs} == {"bf16"}
    assert env["estimators"][(MODEL, "bf16")].calls == 2 and env["estimators"][(MODEL, "fp32")].calls == 2
    # one face, exact and fast: two items, their depth maps reused (no network run), names saying which is which
    both = compare.compare_items(shas[:1], [MODEL], ["fp32", "bf16"])
    mixed = run_job(runner, compare.start_compare(service, runner, both, store, session=SESSION))
    shown = service.access.comparison(SESSION, service.comparisons.cached(mixed["key"]))
    assert shown.precisions == ("fp32", "bf16") and shown.names[1].endswith("· bf16")
    assert env["estimators"][(MODEL, "bf16")].calls == 2 and env["estimators"][(MODEL, "fp32")].calls == 2
    twice = [DepthRef(shas[0], MODEL, 0, "bf16")] * 2
    with pytest.raises(ComparisonError, match="chosen twice"):
        ComparisonItems(twice)


def test_model_note_names_the_precision_and_the_measured_deviation(env):
    note = str(choices.model_info(MODEL, "bf16", "OpenVINO 2026.4.1, bf16, 0.09 max / 0.018 mean of std from fp32"))
    assert "Fast (bf16)" in note and "0.09 max / 0.018 mean" in note
    assert "precision-note" not in str(choices.model_info(MODEL, "fp32"))  # nothing to say before a run
    assert "Last run: OpenVINO" in str(choices.model_info(MODEL, "fp32", "OpenVINO 2026.4.1, fp32, 1e-05 max"))
    assert choices.valid_precision("bf16", FAST_OFFERED) == "bf16"
    assert choices.valid_precision("bf16", FAST_NOT_OFFERED) == "fp32"
    # the service reports what ran a model last (None before its first depth map here)
    assert env["service"].depth_maps.last_runtime(MODEL, "bf16") is None


def test_picker_offers_fast_only_where_native_and_says_why_not():
    offered = str(precision_picker("p", FAST_OFFERED))
    assert "Fast (bf16)" in offered and "'disabled': True" not in offered and NO_FAST_MODE not in offered
    refused = str(precision_picker("p", FAST_NOT_OFFERED))
    assert "'disabled': True" in refused and NO_FAST_MODE in refused
    here = precision_choices_here()
    assert list(here.options)[0] == "fp32" and here.default in here.options
    if cpu_flags_known() and not cpu_has_bf16_flags():
        assert "bf16" not in here.options and here.unavailable == NO_FAST_MODE


@pytest.mark.slow
def test_real_network_fast_mode_on_this_cpu(weights_dir, yunet_path, faces_dir):
    """The real estimator: bf16 where this CPU has it natively (else exact, saying so), close to fp32."""
    from face3d_core.models.estimator import clear_estimators, native_bf16_available
    from tests.conftest import load_fill_module

    fill = load_fill_module()
    from face3d_core.models.registry import get_spec

    spec = get_spec(MODEL)
    import torch

    torch.save(fill.fill_state_dict(spec.build().state_dict()), weights_dir / spec.file_name)
    cache = ResultCache(weights_dir / "results")
    service = Face3DService(cache, detector_path=yunet_path)
    try:
        meta = ingest_upload(service, (faces_dir / "fr_obama_official_portrait.jpg").read_bytes(), "a.jpg")
        exact = compute_depth(service, meta.sha256, MODEL, 0)
        fast = compute_depth(service, meta.sha256, MODEL, 0, precision="bf16")
        assert "fp32" in exact.runtime
        assert ("bf16" if native_bf16_available() else "fp32") in fast.runtime, fast.runtime
        assert depth_key(service, meta.sha256, MODEL, 0, "bf16") != depth_key(service, meta.sha256, MODEL, 0)
        a, b = exact.depth_rel.ravel(), fast.depth_rel.ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.99
        assert service.depth_maps.last_runtime(MODEL, "bf16") == fast.runtime
    finally:
        cache.close()
        clear_estimators()
