"""Hostile files through every way in, tried for real: upload callback, running server, CLI.

The corpus (:func:`tests.harness.hostile_files.hostile_corpus`: 0 bytes, truncated files, a PNG
"bomb", a 30 MB file, other formats renamed, random bytes ...) plus malicious file names and odd
but valid photos goes

1. through the upload callback as a plain function (and a hypothesis fuzz test of it);
2. through the running app over HTTP (peak memory of the server, no file written outside the
   cache directory);
3. through the CLI (a subprocess, peak memory measured, no file written outside ``--out-dir``).

Every bad file gets exactly one clear message and the good files are still done. The decoder
itself is tested in ``test_hostile_inputs.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import ids
from dashboard.callbacks.upload import handle_upload, store_items
from dashboard.services import Face3DService
from face3d_core.cache import ResultCache
from tests.doubles import FakeEstimator
from tests.harness.cli_peak_rss import run_cli
from tests.harness.dash_client import DashHttp, data_url, output
from tests.harness.flows import upload
from tests.harness.hostile_files import EVIL_NAMES, file_tree, hostile_corpus, odd_but_valid, png_bytes
from tests.harness.paths import MODEL, PHOTO, REPO_ROOT, SECOND_PHOTO, YUNET_PATH, require
from tests.harness.processes import child_env
from tests.harness.service_calls import upload_meta

#: Most the peak resident memory of a process may grow while it handles the whole corpus.
#: A decoded 50000x50000 "PNG bomb" alone would need 7.5 GB.
MEMORY_GROWTH_LIMIT = 400 * 2**20


# =====================================================================================
# 1. The upload callback as a plain function (fuzzed)
# =====================================================================================


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Face3DService:
    require(PHOTO, YUNET_PATH)
    cache = ResultCache(tmp_path_factory.mktemp("svc") / "results")
    yield Face3DService(cache, estimator_factory=lambda *_: FakeEstimator(), detector_path=YUNET_PATH)
    cache.close()


def _texts(component) -> str:
    return json.dumps(component.to_plotly_json(), default=lambda o: o.to_plotly_json())


def test_upload_callback_gives_every_hostile_file_its_own_message(service):
    corpus = hostile_corpus()
    names = list(corpus)
    contents = [data_url(data) for data in corpus.values()]
    photo = PHOTO.read_bytes()
    names += list(EVIL_NAMES)
    contents += [data_url(photo)] * len(EVIL_NAMES)
    good = odd_but_valid(PHOTO)
    names += list(good)
    contents += [data_url(data) for data in good.values()]
    contents.append("data:image/png;base64,!!!not base64!!!")
    names.append("broken_base64.png")
    contents.append("not a data url")
    names.append("no_data_url.png")

    store, messages = handle_upload(service, contents, names, None, session="")

    items = store_items(store)
    texts = [_texts(m) for m in messages]
    # one warning per hostile or broken file, naming it, with a clear sentence
    for name in [*corpus, "broken_base64.png", "no_data_url.png"]:
        hits = [t for t in texts if json.dumps(name)[1:-1] in t]
        assert len(hits) == 1, (name, hits)
        assert '"color": "warning"' in hits[0] and "Traceback" not in hits[0]
    assert not any('"color": "danger"' in t for t in texts), "an unexpected error reached the user"
    # the valid photos were stored: the evil-named photo once (same bytes), CMYK and 16-bit PNG
    assert len(items) == 3, items
    for item in items:
        assert upload_meta(service, item["sha"]) is not None


def _mutated(base: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[: max(1, len(data) - cut % len(data))])


_SMALL_FACE = None


def _small_face() -> bytes:
    global _SMALL_FACE
    if _SMALL_FACE is None:
        _SMALL_FACE = (
            SECOND_PHOTO.read_bytes() if SECOND_PHOTO.is_file() else png_bytes(np.zeros((32, 32, 3), np.uint8))
        )
    return _SMALL_FACE


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    files=st.lists(
        st.tuples(
            st.text(min_size=0, max_size=80),
            st.one_of(
                st.binary(max_size=2048).map(data_url),
                st.text(max_size=200),
                st.tuples(
                    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
                    st.integers(0, 10_000),
                ).map(lambda e: data_url(_mutated(_small_face(), e[0], e[1]))),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_upload_callback_never_raises(service, files):
    """Any names and contents: the callback returns; each file gets at most one message; names stay text."""
    names = [name for name, _ in files]
    contents = [content for _, content in files]
    store, messages = handle_upload(service, contents, names, None, session="")
    assert isinstance(store, dict) and len(store_items(store)) <= len(files)
    for message in messages:
        payload = message.to_plotly_json()
        assert payload["type"] == "Alert" and payload["props"].get("color") != "danger", _texts(message)
        assert "dangerously_allow_html" not in _texts(message)


# =====================================================================================
# 2. The running app over HTTP
# =====================================================================================


def test_hostile_uploads_over_http_bounded_memory_no_stray_files(fake_server):
    client = DashHttp(fake_server.url)
    root = fake_server.cache_dir.parent
    photo = PHOTO.read_bytes()
    warm = upload(client, photo, "warm-up.png")  # decoder, detector and figures warmed up
    assert output(warm, ids.UPLOADS_STORE, "data")["items"]
    before_rss = fake_server.peak_rss_bytes()
    before_files = file_tree(root, exclude=fake_server.cache_dir)

    for name, data in hostile_corpus().items():
        response = upload(client, data, name)
        messages = json.dumps(output(response, ids.UPLOAD_MESSAGES, "children"))
        assert name in messages and '"warning"' in messages, (name, messages[:300])
        assert output(response, ids.UPLOADS_STORE, "data")["items"] == [], name
    for name in EVIL_NAMES:
        response = upload(client, photo, name)
        assert output(response, ids.UPLOADS_STORE, "data")["items"], name

    assert fake_server.alive()
    assert requests.get(fake_server.url + "face3d/health", timeout=10).status_code == 200
    after_rss = fake_server.peak_rss_bytes()
    if before_rss and after_rss:
        print(f"server peak RSS {before_rss / 2**20:.0f} MiB -> {after_rss / 2**20:.0f} MiB over the corpus")
        assert after_rss - before_rss < MEMORY_GROWTH_LIMIT
    assert file_tree(root, exclude=fake_server.cache_dir) - before_files <= {"server.log"}
    assert not (root / "a" / "x.png").exists() and not (REPO_ROOT / "x.png").exists()
    log = fake_server.log_text()
    assert "Unexpected error" not in log and "Traceback" not in log, log[-3000:]


# =====================================================================================
# 3. The command line (a subprocess)
# =====================================================================================


@pytest.mark.slow
def test_cli_reports_each_hostile_file_and_does_the_good_ones(tmp_path, fill_weights):
    require(PHOTO, YUNET_PATH)
    root = tmp_path
    for folder in ("home", "tmp", "cache", "a/b/work", "out", "in"):
        (root / folder).mkdir(parents=True)
    cwd = root / "a" / "b" / "work"
    env = child_env(
        FACE3D_WEIGHTS_DIR=str(fill_weights),
        FACE3D_CACHE_DIR=str(root / "cache"),
        HOME=str(root / "home"),
        TMPDIR=str(root / "tmp"),
    )
    bad = hostile_corpus()
    for name, data in bad.items():
        (root / "in" / name).write_bytes(data)
    good = odd_but_valid(PHOTO)
    for name, data in good.items():
        (root / "in" / name).write_bytes(data)
    photo = PHOTO.read_bytes()
    (root / "a" / "x.png").write_bytes(photo)  # reached as ../../x.png from the working folder
    (root / "in" / "<i onmouseover=alert(1)>bold<i> & 'quoted'.png").write_bytes(photo)
    good_args = [str(root / "in" / name) for name in good]
    good_args += ["../../x.png", str(root / "in" / "<i onmouseover=alert(1)>bold<i> & 'quoted'.png")]
    bad_args = [str(root / "in" / name) for name in bad]
    common = ["depth", "--full-frame", "--no-progress", "--out-dir", str(root / "out"), "--model", MODEL]

    rc, _, baseline_rss = run_cli([*common, str(root / "in" / "cmyk_face.jpg")], cwd=cwd, env=env)
    assert rc == 0
    for path in (root / "out").iterdir():
        path.unlink()
    before = file_tree(root, exclude=root / "out")

    rc, stderr, hostile_rss = run_cli([*common, *bad_args, *good_args], cwd=cwd, env=env)

    assert rc == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("face3d: error:")]
    assert len(error_lines) == len(bad), "\n".join(error_lines)
    for name in bad:
        line = next(line for line in error_lines if name in line)
        message = line.split(": ", 3)[-1]
        assert 10 < len(message) < 300 and message.endswith("."), line
    # the good files were all done, and every output is a plain file in --out-dir
    outputs = sorted(p.name for p in (root / "out").iterdir())
    for stem in ("cmyk_face", "gray16_face", "x", "<i onmouseover=alert(1)>bold<i> & 'quoted'"):
        assert f"{stem}_depth.png" in outputs and f"{stem}_depth.npy" in outputs, outputs
    assert file_tree(root, exclude=root / "out") == before, "the CLI wrote files outside --out-dir"
    growth = hostile_rss - baseline_rss
    print(f"CLI peak RSS: {baseline_rss / 2**20:.0f} MiB one photo, {hostile_rss / 2**20:.0f} MiB with the corpus")
    assert growth < MEMORY_GROWTH_LIMIT, f"peak memory grew by {growth / 2**20:.0f} MiB on the hostile corpus"


def test_a_drop_of_more_files_than_are_read_says_so_once(service):
    from dashboard.callbacks.upload import MAX_FILES_READ

    offered = MAX_FILES_READ + 50
    store, messages = handle_upload(service, ["not a data url"] * offered, None, None, session="")
    texts = [_texts(m) for m in messages]
    assert store_items(store) == []
    assert sum(f"Only the first {MAX_FILES_READ} files were read" in t for t in texts) == 1
    assert len(texts) == MAX_FILES_READ + 1  # one refusal per file read, named "file N"
    assert sum("file 1" in t for t in texts) >= 1  # files without names are named by their place
