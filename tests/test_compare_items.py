"""Compare faces or models (issue 17): items, chips, cached depth maps reused, missing weights leave one item out.

A real service (cache in a temp folder, the real YuNet detector, real photos) with stand-in
networks per model, so no weights are needed and each network's runs can be counted: MiDaS small
gives a face-like depth, Depth Anything V2 S a differently shaped one, and DPT-Hybrid has no
weights (its loader raises the real missing-weights error of an offline server).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest

from dashboard import ids
from dashboard.callbacks import choices, compare, measure, upload
from dashboard.callbacks.depth import NothingSelectedError
from dashboard.jobs import DiskJobStore, ThreadJobRunner
from dashboard.services import Face3DService
from dashboard.services.comparison import Comparisons, SkippedItem
from face3d_core import compare as core_compare
from face3d_core.cache import ResultCache
from face3d_core.compare import ComparisonError, ComparisonItems
from face3d_core.errors import WeightsUnavailableError
from face3d_core.models.registry import get_spec
from face3d_core.weights import resolve_weights
from tests.doubles import FakeEstimator, NoJobsRunner
from tests.harness.callbacks import finish_job
from tests.harness.dash_client import data_url
from tests.harness.page_text import component_text, internal_leaks

SMALL, ANYTHING, HYBRID = "midas_v21_small_256", "depth_anything_v2_vits", "dpt_hybrid_384"
SESSION = "7" * 32
PHOTOS = ["fr_obama_official_portrait.jpg", "skimage_astronaut.png"]


class SquaredEstimator(FakeEstimator):
    """Another network: the same face, a differently shaped relief (so two models' items differ)."""

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        return super().predict(image_rgb) ** 2


class NoWeightsEstimator(FakeEstimator):
    """A network whose weights are not on this (offline) server: loading raises the real error."""

    loaded = False

    def __init__(self, model: str):
        super().__init__()
        self.model = model

    def load(self, progress=None) -> None:
        resolve_weights(get_spec(self.model).weights_file, allow_download=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory, yunet_path, faces_dir):
    root = tmp_path_factory.mktemp("compare-items")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACE3D_WEIGHTS_DIR", str(root / "weights"))
        mp.setenv("FACE3D_CACHE_DIR", str(root / "cache"))
        mp.setenv("FACE3D_OFFLINE", "1")
        for model in (SMALL, ANYTHING):  # the stand-in networks have their weights (files that are never read)
            (root / "weights" / get_spec(model).file_name).parent.mkdir(exist_ok=True)
            (root / "weights" / get_spec(model).file_name).write_bytes(b"stand-in")
        networks = {SMALL: FakeEstimator(), ANYTHING: SquaredEstimator(), HYBRID: NoWeightsEstimator(HYBRID)}
        cache = ResultCache(root / "results")
        service = Face3DService(cache, estimator_factory=lambda model, _p: networks[model], detector_path=yunet_path)
        store = DiskJobStore(root / "jobs")
        runner = ThreadJobRunner(store, service.tasks(), max_workers=1)
        contents = [data_url((faces_dir / name).read_bytes()) for name in PHOTOS]
        uploads, _ = upload.handle_upload(service, contents, PHOTOS, None, session=SESSION)
        yield {
            "service": service,
            "runner": runner,
            "networks": networks,
            "store": uploads,
            "shas": [item["sha"] for item in uploads["items"]],
        }
        runner.shutdown()
        store.close()
        cache.close()


def calls(env) -> dict[str, int]:
    return {model: network.calls for model, network in env["networks"].items()}


def test_items_are_every_face_under_every_model_less_the_removed_ones():
    faces, models, precisions = ["a" * 64, "b" * 64], [SMALL, ANYTHING], ["fp32"]
    items = compare.compare_items(faces, models, precisions)
    assert [(i["sha"][0], i["model"]) for i in items] == [("a", SMALL), ("a", ANYTHING), ("b", SMALL), ("b", ANYTHING)]
    signature = compare.choice_signature(faces, models, precisions)
    removed = compare.remove_item(None, compare.item_key(items[1]), signature)
    assert compare.compare_items(faces, models, precisions, removed) == [items[0], *items[2:]]
    # a removal holds for the choice it was made in: another choice shows every item again
    assert len(compare.compare_items(faces, [SMALL], precisions, removed)) == 2
    assert compare.remove_item(removed, compare.item_key(items[1]), signature) == removed  # not twice
    # junk from the browser is ignored: unknown models and precisions, non-strings, repeats
    junk = compare.compare_items(["a" * 64, 7, "a" * 64], [SMALL, "evil", None], ["fp32", "fp64"], "x")
    assert junk == [{"sha": "a" * 64, "model": SMALL, "precision": "fp32"}]
    assert compare.compare_items(None, None, None) == []


def test_one_face_under_two_models_reuses_the_cached_depth_map_and_titles_say_the_model(env):
    service, runner, store, sha = env["service"], env["runner"], env["store"], env["shas"][0]
    items = compare.compare_items([sha], [SMALL, ANYTHING], ["fp32"])
    chips, note = compare.render_items(service, items, store, session=SESSION)
    text = component_text(chips)
    assert "fr_obama_official_portrait.jpg · MiDaS small" in text and "to compute" in text and note == "2 of at most 6"
    service.depth_maps.compute(compare.item_refs(service, items, store, session=SESSION)[0])  # MiDaS small: cached
    assert "ready" in component_text(compare.render_items(service, items, store, session=SESSION)[0])
    before = calls(env)
    result = finish_job(runner, compare.start_compare(service, runner, items, store, session=SESSION), SESSION)
    assert calls(env)[SMALL] == before[SMALL] and calls(env)[ANYTHING] == before[ANYTHING] + 1  # only the new one ran
    assert result["count"] == 2 and result["skipped"] == []
    shown = compare.render_compare(service, result, 0, session=SESSION)
    titles = [a["hovertext"] for a in shown[2]["layout"]["annotations"]]
    assert titles == [
        "fr_obama_official_portrait.jpg · MiDaS small",
        "fr_obama_official_portrait.jpg · Depth Anything V2 S",
    ]
    assert [trace.name for trace in shown[5].data[::2]] == titles  # the profiles' legend
    diff, metrics = compare.render_pair(service, result, 0, 1, session=SESSION)
    assert np.nanmax(np.abs(np.asarray(diff.data[0].z, np.float64))) > 0.01  # the two networks see it differently
    assert "Nose prominence: fr_obama_official_portrait.jpg · Depth Anything V2 S" in component_text(metrics)
    shown_result = service.access.comparison(SESSION, service.comparisons.cached(result["key"]))
    _, html = service.reports.comparison_report(shown_result, compare.compare_settings(service, shown_result.refs))
    assert b"face3d comparison of 2 items" in html and b"Depth Anything V2" in html  # not "2 faces"
    # the same items again: the cached comparison, no job
    again = compare.start_compare(service, NoJobsRunner(), items, store, session=SESSION)
    assert again.job_id is None and again.result["key"] == result["key"]


def test_missing_weights_leave_that_item_out_with_the_usual_help_and_the_others_run(env):
    service, runner, store, shas = env["service"], env["runner"], env["store"], env["shas"]
    items = compare.compare_items(shas, [SMALL, HYBRID], ["fp32"])  # 2 faces x 2 models, DPT-Hybrid has no weights
    chips, _ = compare.render_items(service, items, store, session=SESSION)
    assert component_text(chips).count("weights missing") == 2
    result = finish_job(runner, compare.start_compare(service, runner, items, store, session=SESSION), SESSION)
    assert result["count"] == 2 and [s["name"] for s in result["skipped"]] == [
        "fr_obama_official_portrait.jpg · DPT-Hybrid",
        "skimage_astronaut.png · DPT-Hybrid",
    ]
    compared = service.comparisons.cached(result["key"])
    assert compared.models == (SMALL, SMALL)
    alerts = compare.render_compare(service, result, 0, session=SESSION)[-1]
    text = component_text(alerts)
    assert len(alerts) == 2 and "Not compared: fr_obama_official_portrait.jpg · DPT-Hybrid" in text
    spec = get_spec(HYBRID)
    assert spec.file_name in text and spec.url in text and f"face3d models --download {HYBRID}" in text
    assert internal_leaks(text) == []
    # fewer than two items left: the usual missing-weights error itself
    with pytest.raises(WeightsUnavailableError):
        service.comparisons.compute(ComparisonItems(compare.item_refs(service, items[:2], store, session=SESSION)))


def test_skipped_items_from_the_browser_are_checked():
    good = SkippedItem("a.jpg · DPT-Hybrid", HYBRID, "Model weights missing", "Ask the administrator.")
    assert SkippedItem.from_dict(good.to_dict()) == good
    for junk in (None, "x", {**good.to_dict(), "model": "evil"}, {**good.to_dict(), "title": 7}):
        assert SkippedItem.from_dict(junk) is None
    assert compare.skipped_alerts({"skipped": [{"model": "evil"}, "junk"] * 50}) == []


def test_the_items_are_checked_when_compare_is_pressed(env):
    service, runner, store, shas = env["service"], NoJobsRunner(), env["store"], env["shas"]
    with pytest.raises(NothingSelectedError, match="at least two faces"):
        compare.start_compare(
            service, runner, compare.compare_items(shas[:1], [SMALL], ["fp32"]), store, session=SESSION
        )
    seven = compare.compare_items(shas, [SMALL, ANYTHING, HYBRID, "dpt_levit_224"], ["fp32"])[:7]
    with pytest.raises(NothingSelectedError, match="at most 6"):
        compare.start_compare(service, runner, seven, store, session=SESSION)
    twice = compare.compare_items(shas[:1], [SMALL], ["fp32"]) * 2
    with pytest.raises(ComparisonError, match="chosen twice"):
        compare.start_compare(service, runner, twice, store, session=SESSION)
    assert runner.submitted == []


def test_measurement_files_carry_the_model_of_every_row(env):
    service, store, sha = env["service"], env["store"], env["shas"][0]
    items = compare.compare_items([sha], [SMALL, ANYTHING], ["fp32"])
    result = finish_job(
        env["runner"], compare.start_compare(service, env["runner"], items, store, session=SESSION), SESSION
    )
    name, data, _ = measure.download_file(
        service, ids.COMPARE_DOWNLOAD_MEASURE_CSV, compare_data=result, session=SESSION
    )
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert {(r["image"], r["model"], r["precision"]) for r in rows} == {
        (PHOTOS[0], SMALL, "fp32"),
        (PHOTOS[0], ANYTHING, "fp32"),
    }
    _, data, _ = measure.download_file(service, ids.COMPARE_DOWNLOAD_MEASURE_JSON, compare_data=result, session=SESSION)
    assert [(f["image"], f["model"]) for f in json.loads(data)["faces"]] == [(PHOTOS[0], SMALL), (PHOTOS[0], ANYTHING)]
    table, _ = measure.render_compare_measurements(service, result, session=SESSION)
    assert "fr_obama_official_portrait.jpg · Depth Anything V2 S" in component_text(table)  # a column per item


def test_compare_follows_the_other_tabs_model_until_several_are_chosen():
    assert choices.follow_choice(ANYTHING, [SMALL]) == [ANYTHING]
    assert choices.follow_choice(ANYTHING, [SMALL, HYBRID]) is choices.no_update
    assert choices.follow_choice(None, []) is choices.no_update
    info = component_text(choices.models_info([SMALL, HYBRID], ["fp32"]))
    assert "Weights missing" in info and get_spec(HYBRID).file_name in info


def test_a_comparison_is_checked_and_keyed_once(env, monkeypatch):
    """Issue 17 item 5: the items' check and the key ran 3 times per comparison (callback, service, core)."""
    service, runner, store, shas = env["service"], env["runner"], env["store"], env["shas"]
    counts: Counter[str] = Counter()
    check, key = core_compare.check_comparable, Comparisons.key
    monkeypatch.setattr(core_compare, "check_comparable", lambda refs: counts.update(["check"]) or check(refs))
    monkeypatch.setattr(Comparisons, "key", lambda self, items: counts.update(["key"]) or key(self, items))
    # cached depth maps: compared in the callback
    cached = compare.compare_items(shas[::-1], [SMALL], ["fp32"])  # an order not compared before
    for ref in compare.item_refs(service, cached, store, session=SESSION):
        service.depth_maps.compute(ref)
    counts.clear()
    result = finish_job(runner, compare.start_compare(service, NoJobsRunner(), cached, store, session=SESSION), SESSION)
    assert result["count"] == 2 and counts == {"check": 1, "key": 1}
    # a network to run: a job, which gets the key; its parameters are checked where they enter the worker
    counts.clear()
    fresh = compare.compare_items(shas[1:], [ANYTHING, SMALL], ["bf16"])  # bf16: not cached yet
    outcome = compare.start_compare(service, runner, fresh, store, session=SESSION)
    assert outcome.job_id is not None
    result = finish_job(runner, outcome, SESSION)
    assert result["count"] == 2 and counts == {"check": 2, "key": 1}
