"""Tests of the content-addressed result cache (face3d_core.cache)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np
import pytest

from face3d_core import cache as cache_mod
from face3d_core.cache import CACHE_VERSION, ResultCache, combine_hashes, get_cache, make_key, params_digest
from face3d_core.errors import CacheError

SHA_A = "a" * 64
SHA_B = "b" * 64


@dataclasses.dataclass(frozen=True)
class _Params:
    sigma: float = 1.5
    stride: int = 2
    mode: str = "mesh"


@pytest.fixture()
def cache(tmp_path):
    result = ResultCache(tmp_path / "results", size_limit_mb=64)
    yield result
    result.close()


# -- keys -------------------------------------------------------------------------------


def test_key_contains_kind_hash_model_and_version():
    key = make_key("depth", SHA_A, model="midas_v21_small_256", params={"face": 0})
    assert key.startswith(f"face3d/v{CACHE_VERSION}/depth/{SHA_A}/midas_v21_small_256/")


def test_upload_bytes_keep_their_version_when_the_cache_version_moves():
    assert make_key("upload", SHA_A) == f"face3d/v{cache_mod.UPLOAD_VERSION}/upload/{SHA_A}/-/-"
    assert make_key("upload-meta", SHA_A).startswith(f"face3d/v{CACHE_VERSION}/upload-meta/")
    assert make_key("upload", SHA_A, version=CACHE_VERSION + 1) != make_key("upload", SHA_A)


def test_key_is_deterministic_and_order_independent():
    assert make_key("depth", SHA_A, params={"a": 1, "b": 2.5}) == make_key("depth", SHA_A, params={"b": 2.5, "a": 1})


def test_key_changes_with_every_input():
    base = make_key("depth", SHA_A, model="m1", params={"face": 0})
    assert make_key("depth", SHA_B, model="m1", params={"face": 0}) != base
    assert make_key("depth", SHA_A, model="m2", params={"face": 0}) != base
    assert make_key("depth", SHA_A, model="m1", params={"face": 1}) != base
    assert make_key("model3d", SHA_A, model="m1", params={"face": 0}) != base
    assert make_key("depth", SHA_A, model="m1", params={"face": 0}, version=CACHE_VERSION + 1) != base


def test_dataclass_params_hash_like_their_fields():
    assert params_digest(_Params()) == params_digest({"sigma": 1.5, "stride": 2, "mode": "mesh"})
    assert params_digest(_Params(sigma=2.0)) != params_digest(_Params())


def test_numpy_scalars_and_tuples_are_accepted_in_params():
    assert params_digest({"x": np.float32(1.5), "t": (1, 2)}) == params_digest({"x": 1.5, "t": [1, 2]})


@pytest.mark.parametrize("bad", ["", "A" * 64, "a" * 63, "../../etc", None])
def test_malformed_hash_is_rejected(bad):
    with pytest.raises(ValueError):
        make_key("depth", bad)


@pytest.mark.parametrize("kind", ["", "Depth", "a/b", "../x"])
def test_malformed_kind_is_rejected(kind):
    with pytest.raises(ValueError):
        make_key(kind, SHA_A)


def test_unhashable_param_type_is_rejected():
    with pytest.raises(TypeError):
        params_digest({"x": object()})


def test_combine_hashes_is_order_sensitive():
    assert combine_hashes([SHA_A, SHA_B]) != combine_hashes([SHA_B, SHA_A])
    assert len(combine_hashes([SHA_A])) == 64


# -- storage ----------------------------------------------------------------------------


def test_roundtrip_of_arrays_and_objects(cache):
    value = {"depth": np.arange(12, dtype=np.float32).reshape(3, 4), "name": "x", "params": _Params()}
    key = make_key("depth", SHA_A)
    cache.set(key, value)
    got = cache.get(key)
    np.testing.assert_array_equal(got["depth"], value["depth"])
    assert got["params"] == _Params()
    assert cache.get(make_key("depth", SHA_B), "missing") == "missing"


def test_second_request_is_served_from_the_cache(cache):
    calls = []

    def compute():
        calls.append(1)
        return np.ones(1000, dtype=np.float32)

    key = make_key("depth", SHA_A)
    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert cache.hits >= 1


def test_concurrent_requests_compute_once(cache):
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return 42

    key = make_key("depth", SHA_A)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute(key, compute))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 4
    assert len(calls) == 1
    assert cache.locks_in_use == 0  # the key's lock is dropped once nobody waits for it


def test_key_locks_do_not_accumulate_over_many_keys(cache):
    for i in range(200):
        cache.get_or_compute(make_key("depth", SHA_A, params={"i": i}), lambda i=i: i)
    assert cache.locks_in_use == 0
    failing_key = make_key("depth", SHA_B)
    with pytest.raises(ZeroDivisionError):  # a failed computation releases its lock too
        cache.get_or_compute(failing_key, lambda: 1 / 0)
    assert cache.locks_in_use == 0
    assert cache.get_or_compute(failing_key, lambda: "second try") == "second try"


def test_key_locks_serialise_one_key_and_drop_it_after_the_last_waiter():
    locks = cache_mod.KeyLocks()
    inside, release = threading.Event(), threading.Event()
    order = []

    def first():
        with locks.hold("k"):
            inside.set()
            release.wait(5)
            order.append("first")

    def second():
        with locks.hold("k"):
            order.append("second")

    holder = threading.Thread(target=first)
    holder.start()
    inside.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.2)
    with locks.hold("other"):  # another key is not blocked
        assert len(locks) == 2
    assert order == [] and len(locks) == 1  # the waiter waits on the holder's lock
    release.set()
    holder.join()
    waiter.join()
    assert order == ["first", "second"] and len(locks) == 0


def test_a_store_failure_is_logged_or_raised_as_asked(cache, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise CacheError("disk full")

    monkeypatch.setattr(cache, "set", refuse)
    assert cache.get_or_compute(make_key("depth", SHA_A), lambda: 5) == 5  # logged, value returned
    with pytest.raises(CacheError):
        cache.get_or_compute(make_key("depth", SHA_B), lambda: 6, must_store=True)


def test_ping_and_location(cache, tmp_path):
    assert cache.ping() is True
    assert cache.location == str(tmp_path / "results")
    assert isinstance(cache, cache_mod.ResultStore)


def test_corrupt_large_entry_is_detected_and_recomputed(cache):
    key = make_key("depth", SHA_A)
    cache.set(key, np.arange(100_000, dtype=np.float32))  # > 32 kB: stored in its own file
    path = cache.entry_path(key)
    assert path is not None and path.is_file()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.get(key) is None  # integrity check failed -> miss
    assert key not in cache  # and the damaged entry is gone
    value = cache.get_or_compute(key, lambda: np.zeros(3))
    np.testing.assert_array_equal(value, np.zeros(3))


def test_truncated_entry_is_a_miss(cache):
    key = make_key("depth", SHA_A)
    cache.set(key, np.arange(100_000, dtype=np.float32))
    path = cache.entry_path(key)
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get(key, "recompute") == "recompute"


def test_foreign_value_is_a_miss(cache):
    key = make_key("depth", SHA_A)
    cache._cache.set(key, b"not an envelope")  # noqa: SLF001 - simulate an entry written by something else
    assert cache.get(key) is None


def test_size_limit_evicts_least_recently_used(tmp_path):
    small = ResultCache(tmp_path / "small", size_limit_mb=1)
    try:
        keys = [make_key("depth", SHA_A, params={"i": i}) for i in range(12)]
        for key in keys:
            small.set(key, np.random.default_rng(0).random(200_000 // 8 * 2).astype(np.float64))  # ~400 kB
        assert small.volume() < 3 * 1024 * 1024
        assert small.get(keys[-1]) is not None  # the newest survives
        assert small.get(keys[0]) is None  # the oldest was evicted
    finally:
        small.close()


def test_cache_dir_and_size_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "envcache"))
    monkeypatch.setenv("FACE3D_CACHE_SIZE_MB", "5")
    env_cache = ResultCache()
    try:
        assert env_cache.directory == tmp_path / "envcache" / "results"
        assert env_cache.size_limit == 5 * 1024 * 1024
    finally:
        env_cache.close()


def test_invalid_size_env_falls_back_to_default(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_CACHE_SIZE_MB", "lots")
    fallback = ResultCache(tmp_path / "c")
    try:
        assert fallback.size_limit == cache_mod.DEFAULT_SIZE_MB * 1024 * 1024
    finally:
        fallback.close()


def test_persists_across_instances(tmp_path):
    key = make_key("upload", SHA_A)
    first = ResultCache(tmp_path / "p")
    first.set(key, b"photo bytes")
    first.close()
    second = ResultCache(tmp_path / "p")
    try:
        assert second.get(key) == b"photo bytes"
    finally:
        second.close()


def test_unusable_folder_raises_cache_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError) as info:
        ResultCache(blocker / "sub")
    assert "FACE3D_CACHE_DIR" in str(info.value)


def test_get_cache_shares_one_instance_per_folder(tmp_path):
    assert get_cache(tmp_path / "g") is get_cache(tmp_path / "g")


# -- bounded waits, read-only folders and damaged indexes (face3d_core.cache.diskdb) ---------


def test_a_lock_held_elsewhere_makes_writes_give_up_in_bounded_time_without_spinning(tmp_path):
    import sqlite3

    from face3d_core.cache import CacheBusyError, DiskDB

    db = DiskDB(tmp_path / "db", label="the demo store", lock_wait_s=1.5)
    db.set("k", 1)
    holder = sqlite3.connect(tmp_path / "db" / "cache.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing and never finishing
    try:
        cpu, wall = time.process_time(), time.monotonic()
        with pytest.raises(CacheBusyError, match="stayed locked"):
            db.set("k", 2)
        waited, used = time.monotonic() - wall, time.process_time() - cpu
        assert 1.0 <= waited < 6.0, waited  # the busy timeout of one attempt, then the deadline
        assert used < 0.5 * waited, (used, waited)  # it slept; it did not spin
        assert db.get("k") == 1  # a read is still served (without recording its access)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    db.set("k", 3)
    assert db.get("k") == 3


def test_a_read_only_folder_serves_reads_and_refuses_writes_at_once(tmp_path, monkeypatch):
    from face3d_core.cache import CacheNotWritableError

    key = make_key("depth", SHA_A)
    cache = ResultCache(tmp_path / "ro")
    cache.set(key, np.arange(100_000, dtype=np.float32))
    cache.close()
    reopened = ResultCache(tmp_path / "ro")
    folder = str(tmp_path / "ro")
    real_access = os.access
    # a read-only mount answers access(W_OK) with EROFS: the same answer, without a mount
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path).startswith(folder) else real_access(path, mode)
    )
    started = time.monotonic()
    np.testing.assert_array_equal(reopened.get(key), np.arange(100_000, dtype=np.float32))
    assert key in reopened
    with pytest.raises(CacheNotWritableError, match="cache is not writable"):
        reopened.set(make_key("depth", SHA_B), b"x")
    assert time.monotonic() - started < 1.0
    reopened.close()


def test_a_damaged_index_found_by_quick_check_is_moved_aside_and_the_files_kept(tmp_path, caplog):
    import logging
    import sqlite3

    folder = tmp_path / "damaged"
    first = ResultCache(folder)
    for index in range(40):
        first.set(make_key("depth", SHA_A, params={"i": index}), np.full(20_000, index, dtype=np.float32))
    first.close()  # the last connection: the write-ahead log is folded into cache.db
    files = sorted(p.name for p in folder.rglob("*.val"))
    index = folder / "cache.db"
    with sqlite3.connect(index) as probe:
        page_size = probe.execute("PRAGMA page_size").fetchone()[0]
        pages = probe.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 3
    with open(index, "r+b") as handle:  # a page in the middle overwritten: the header is still fine
        handle.seek(page_size * (pages - 2))
        handle.write(b"\xff" * page_size)
    with caplog.at_level(logging.WARNING, logger="face3d_core.cache.diskdb"):
        second = ResultCache(folder)
    try:
        assert any("moved to cache.db.damaged-" in r.getMessage() for r in caplog.records), caplog.text
        assert len(list(folder.glob("cache.db.damaged-*[0-9]"))) == 1
        assert sorted(p.name for p in folder.rglob("*.val")) == files  # the stored files are kept
        assert second.get(make_key("depth", SHA_A, params={"i": 1})) is None  # a fresh index
        second.set(make_key("depth", SHA_B), 1)
        assert second.get(make_key("depth", SHA_B)) == 1
    finally:
        second.close()


def test_only_diskdb_touches_diskcache_and_nothing_retries_forever():
    """diskcache's retry=True loops forever on a read-only folder: every use goes through DiskDB."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in [*(root / "face3d_core").rglob("*.py"), *(root / "dashboard").rglob("*.py")]:
        text = path.read_text()
        assert "retry=True" not in text, path
        if path.name != "diskdb.py":
            assert "import diskcache" not in text and "diskcache." not in text, path


def _blob(index: int) -> np.ndarray:
    return np.random.default_rng(index).random(50_000)  # 400 kB, in its own file


def test_checking_that_an_entry_exists_counts_as_using_it(tmp_path):
    small = ResultCache(tmp_path / "lru", size_limit_mb=1.5)
    try:
        first, second, third = (make_key("depth", SHA_A, params={"i": i}) for i in range(3))
        for index, key in enumerate((first, second, third)):
            small.set(key, _blob(index))
            time.sleep(0.01)
        assert first in small  # a page asks whether the photo is still there: a use
        small.set(make_key("depth", SHA_A, params={"i": 3}), _blob(3))
        assert small.get(second) is None, "the least recently used entry should have gone"
        assert small.get(first) is not None
    finally:
        small.close()


def test_pinned_entries_are_never_evicted_and_a_full_cache_refuses_instead(tmp_path):
    from face3d_core.cache import CacheFullError

    small = ResultCache(tmp_path / "pins", size_limit_mb=1.5)
    try:
        mine = [make_key("depth", SHA_A, params={"i": i}) for i in range(2)]
        small.pin(SHA_A, 60)  # a photo (and its results) in use
        for index, key in enumerate(mine):
            small.set(key, _blob(index))
        assert small.pinned_hashes() == {SHA_A}
        other = [make_key("depth", SHA_B, params={"i": i}) for i in range(6)]
        refused = 0
        for index, key in enumerate(other):
            try:
                small.set(key, _blob(10 + index))
            except CacheFullError as exc:
                refused += 1
                assert "in use right now" in exc.user_message and "FACE3D_CACHE_SIZE_MB" in exc.user_message
        assert all(small.get(key) is not None for key in mine), "a pinned entry was evicted"
        assert refused == 0  # unpinned entries of the other photo made room for each other
        assert small.volume() <= small.size_limit
        small.pin(SHA_B, 60)  # now everything is in use: a new entry does not fit and is refused
        with pytest.raises(CacheFullError):
            small.set(make_key("depth", "c" * 64), _blob(99))
        assert small.get(make_key("depth", "c" * 64)) is None
        assert all(small.get(key) is not None for key in mine)
        small.pin(SHA_A, 0.2)
        time.sleep(0.3)  # the pin runs out: the photo may be evicted again, least recently used first
        small.set(make_key("depth", "c" * 64), _blob(99))
        assert small.get(make_key("depth", "c" * 64)) is not None
    finally:
        small.close()
