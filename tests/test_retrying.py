"""The retrying wrappers: bounded backoff, only idempotent operations retried, protocols still satisfied.

Faults are injected by small in-process wrappers around the memory stores
(no real server fails on demand); the outage tests in ``tests/faults/`` do the
same against real servers behind a loopback proxy.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import tensordb_core as tdb
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore
from tensordb_core.errors import (
    BackendUnavailable,
    BlobNotFound,
    IntegrityError,
    InvalidQuery,
    InvalidURI,
    TransientError,
)
from tensordb_core.store.blobkit import content_key
from tensordb_core.store.retrying import (
    Retrier,
    RetryingBlobStore,
    RetryingIndexStore,
    RetryPolicy,
    is_content_address,
    unwrap,
)
from tensordb_core.store.uri import parse_uri
from tensordb_core.testing import IndexStoreSuite
from tensordb_core.testing.blob_suite import BlobStoreSuite

FAST = RetryPolicy(attempts=6, initial_delay_s=0.0, max_delay_s=0.0)
SECRET = "s3cr3t-Pa55"


class Faults:
    """A deterministic schedule: every ``period``-th eligible call *of each thread* fails.

    Per thread, so threads racing in the concurrency tests cannot starve one
    another into an unbroken run of failures.
    """

    def __init__(self, period: int = 3) -> None:
        self.period, self.injected = period, 0
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return getattr(self._local, "calls", 0)

    @calls.setter
    def calls(self, value: int) -> None:
        self._local.calls = value

    def hit(self) -> bool:
        self.calls += 1
        if self.calls % self.period == 0:
            with self._lock:
                self.injected += 1
            return True
        return False

    def fail(self, what: str) -> TransientError:
        return TransientError(f"injected failure during {what} (password {SECRET} in a careless message)")


class FlakyCursor:
    """Fails on ``next`` on schedule; a sorted cursor only before its first document (see the module docs)."""

    def __init__(self, docs: Any, faults: Faults, mid_way: bool) -> None:
        self.it, self.faults, self.mid_way, self.yielded = iter(docs), faults, mid_way, 0

    def __iter__(self) -> FlakyCursor:
        return self

    def __next__(self) -> dict[str, Any]:
        if (self.mid_way or not self.yielded) and self.faults.hit():
            raise self.faults.fail("a cursor read")
        doc = next(self.it)
        self.yielded += 1
        return doc

    def close(self) -> None:
        pass


class FlakyIndex:
    """Fails the operations the wrapper retries, sometimes *after* applying them (an ambiguous failure)."""

    def __init__(self, inner: MemoryIndexStore, faults: Faults) -> None:
        self.inner, self.faults, self.uri = inner, faults, inner.uri

    def insert_many(self, collection: str, docs: Any) -> list[str]:
        docs = list(docs)
        if docs and all("_id" in d for d in docs) and self.faults.hit():
            self.inner.insert_many(collection, docs[: len(docs) // 2 + self.faults.calls % 2])
            raise self.faults.fail("insert_many (part of it applied)")
        return self.inner.insert_many(collection, docs)

    def find(self, collection: str, query: Any = None, *, sort: Any = None, **kw: Any) -> FlakyCursor:
        resumable = sort is None and (kw.get("projection") or {}).get("_seq", 1) != 0
        return FlakyCursor(self.inner.find(collection, query, sort=sort, **kw), self.faults, mid_way=resumable)

    def tail(self, collection: str, query: Any = None, *, after: int = 0, limit: int = 0) -> FlakyCursor:
        return FlakyCursor(self.inner.tail(collection, query, after=after, limit=limit), self.faults, True)

    def _before(self, name: str) -> Any:
        def call(*args: Any, **kw: Any) -> Any:
            if self.faults.hit():
                raise self.faults.fail(name)
            return getattr(self.inner, name)(*args, **kw)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in ("count", "last_seq", "delete_many", "create_index"):
            return self._before(name)
        return getattr(self.inner, name)  # update_many, find_one_and_update, close: never retried, never failed


class FlakyBlobs:
    def __init__(self, inner: MemoryBlobStore, faults: Faults) -> None:
        self.inner, self.faults, self.uri = inner, faults, inner.uri

    def put(self, key: str, data: Any) -> None:
        if is_content_address(key) and self.faults.hit():
            if self.faults.calls % 2:
                self.inner.put(key, data)  # stored, but the answer was lost
            raise self.faults.fail("put")
        self.inner.put(key, data)

    def get_many(self, requests: Any) -> Iterator[bytes]:
        for request in requests:
            if self.faults.hit():
                raise self.faults.fail("get_many")
            yield self.inner.get(request) if isinstance(request, str) else self.inner.get(*request)

    def list(self, prefix: str = "") -> Iterator[str]:
        if self.faults.hit():  # the listing request fails (restarting a listing only resumes if it gets through)
            raise self.faults.fail("list")
        yield from list(self.inner.list(prefix))

    def __getattr__(self, name: str) -> Any:
        if name in ("get", "exists", "size", "delete"):
            def call(*args: Any, **kw: Any) -> Any:
                if self.faults.hit():
                    raise self.faults.fail(name)
                return getattr(self.inner, name)(*args, **kw)

            return call
        return getattr(self.inner, name)


# -- the wrappers still satisfy the protocols ------------------------------------------------------


class TestWrappedMemoryIndex(IndexStoreSuite):
    @pytest.fixture
    def index_store(self) -> Iterator[RetryingIndexStore]:
        store = RetryingIndexStore(MemoryIndexStore.named(""), FAST)
        yield store
        store.close()


class TestWrappedFlakyMemoryIndex(IndexStoreSuite):
    """Every third retryable call fails, some after being applied: the suite cannot tell."""

    @pytest.fixture
    def index_store(self) -> Iterator[RetryingIndexStore]:
        faults = Faults(3)
        store = RetryingIndexStore(FlakyIndex(MemoryIndexStore.named(""), faults), FAST)
        yield store
        store.close()
        assert faults.injected > 0 or faults.calls < 3


class TestWrappedMemoryBlobs(BlobStoreSuite):
    @pytest.fixture
    def blob_store(self) -> Iterator[RetryingBlobStore]:
        store = RetryingBlobStore(MemoryBlobStore(), FAST)
        yield store
        store.close()


class TestWrappedFlakyMemoryBlobs(BlobStoreSuite):
    @pytest.fixture
    def blob_store(self) -> Iterator[RetryingBlobStore]:
        faults = Faults(3)
        store = RetryingBlobStore(FlakyBlobs(MemoryBlobStore(), faults), FAST)
        yield store
        store.close()


# -- schedule and limits ---------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now


def down_index(uri: str = f"mongodb://alice:{SECRET}@db.example:27017/lab?authSource=admin") -> tuple[Any, list[str]]:
    """An index store whose every call fails transiently, recording the calls."""
    calls: list[str] = []

    class Down:
        def __init__(self) -> None:
            self.uri = parse_uri(uri)

        def __getattr__(self, name: str) -> Any:
            def call(*args: Any, **kw: Any) -> Any:
                calls.append(name)
                raise TransientError(f"connection refused by {self.uri.reveal()}")

            return call

    return Down(), calls


def test_backoff_grows_exponentially_with_jitter_and_stays_capped() -> None:
    policy = RetryPolicy(attempts=8, initial_delay_s=0.1, max_delay_s=1.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    for failures, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (7, 1.0)]:
        for _ in range(50):
            assert 0.5 * cap <= policy.delay(failures, rng) <= cap
    no_jitter = RetryPolicy(initial_delay_s=0.1, jitter=0.0)
    assert [no_jitter.delay(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])


def test_persistent_failure_ends_in_backend_unavailable_after_the_attempt_limit() -> None:
    inner, calls = down_index()
    t = FakeTime()
    store = RetryingIndexStore(inner, retrier=Retrier(RetryPolicy(attempts=4, initial_delay_s=0.01, jitter=0.0),
                                                      "index store Down", inner.uri, sleep=t.sleep, clock=t.clock))
    with pytest.raises(BackendUnavailable) as info:
        store.count("data")
    assert calls == ["count"] * 4
    assert t.sleeps == pytest.approx([0.01, 0.02, 0.04])
    message = str(info.value)
    assert "count in data" in message and "index store Down" in message and "db.example:27017" in message
    assert "4 time(s)" in message and SECRET not in message and "***" in message
    assert isinstance(info.value.__cause__, TransientError)


def test_total_time_bounds_the_retries() -> None:
    inner, calls = down_index()
    t = FakeTime()
    policy = RetryPolicy(attempts=100, initial_delay_s=1.0, max_delay_s=1.0, jitter=0.0, total_s=3.5)
    store = RetryingIndexStore(inner, retrier=Retrier(policy, "x", inner.uri, sleep=t.sleep, clock=t.clock))
    with pytest.raises(BackendUnavailable, match="3.0s"):
        store.last_seq("data")
    assert len(calls) == 4 and sum(t.sleeps) <= 3.5


def test_non_idempotent_operations_are_not_retried() -> None:
    inner, calls = down_index()
    store = RetryingIndexStore(inner, FAST)
    for call in (lambda: store.update_many("c", {}, {"$inc": {"n": 1}}),
                 lambda: store.find_one_and_update("c", {}, {"$set": {"a": 1}}),
                 lambda: store.insert_many("c", [{"a": 1}]),
                 lambda: store.insert_many("c", [{"_id": "x"}, {"a": 1}])):  # one doc without a caller id
        before = len(calls)
        with pytest.raises(TransientError):
            call()
        assert len(calls) == before + 1


def test_generic_blob_keys_are_not_retried_but_content_addresses_are() -> None:
    faults = Faults(1)  # every eligible call fails
    store = RetryingBlobStore(FlakyBlobs(MemoryBlobStore(), faults), RetryPolicy(attempts=3, initial_delay_s=0))
    store.put("runs/state.json", b"{}")  # generic keys: the flaky store never fails them, and no retry wraps them
    data = b"chunk"
    with pytest.raises(BackendUnavailable, match="put"):
        store.put(content_key(data), data)
    assert faults.calls == 3


def test_errors_that_are_not_transient_pass_straight_through() -> None:
    blobs = RetryingBlobStore(MemoryBlobStore(), FAST)
    with pytest.raises(BlobNotFound):
        blobs.get(content_key(b"nothing"))
    index = RetryingIndexStore(MemoryIndexStore(), FAST)
    with pytest.raises(InvalidQuery):
        list(index.find("c", {"$where": "1"}))
    index.insert_many("c", [{"_id": "a"}])
    with pytest.raises(IntegrityError):
        index.insert_many("c", [{"_id": "a"}])  # a duplicate on the first try is the caller's


# -- insert_many with caller ids -------------------------------------------------------------------


class LostAnswer:
    """Applies the first ``applied`` documents of the first insert, then reports a dropped connection."""

    def __init__(self, inner: MemoryIndexStore, applied: int) -> None:
        self.inner, self.applied, self.uri, self.tries = inner, applied, inner.uri, 0

    def insert_many(self, collection: str, docs: Any) -> list[str]:
        self.tries += 1
        if self.tries == 1:
            if self.applied:
                self.inner.insert_many(collection, list(docs)[: self.applied])
            raise TransientError("connection reset")
        return self.inner.insert_many(collection, docs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("applied", [0, 2, 5])
def test_an_ambiguous_insert_is_completed_exactly_once(applied: int) -> None:
    mem = MemoryIndexStore()
    store = RetryingIndexStore(LostAnswer(mem, applied), FAST)
    docs = [{"_id": f"d{i}", "v": i, "tags": {"split": "train"}} for i in range(5)]
    assert store.insert_many("data", docs) == [d["_id"] for d in docs]
    got = list(mem.find("data"))
    assert sorted(d["_id"] for d in got) == [f"d{i}" for i in range(5)]  # none lost, none twice
    assert all(d["v"] == int(d["_id"][1:]) for d in got)


def test_a_retry_that_meets_someone_elses_document_raises() -> None:
    mem = MemoryIndexStore()

    class Racing(LostAnswer):
        def insert_many(self, collection: str, docs: Any) -> list[str]:
            self.tries += 1
            if self.tries == 1:
                self.inner.insert_many(collection, [{"_id": "d0", "v": "someone else"}])
                raise TransientError("connection reset")
            return self.inner.insert_many(collection, docs)

    store = RetryingIndexStore(Racing(mem, 0), FAST)
    with pytest.raises(IntegrityError, match="other documents"):
        store.insert_many("data", [{"_id": "d0", "v": 0}, {"_id": "d1", "v": 1}])
    assert [d["v"] for d in mem.find("data")] == ["someone else"]


# -- cursors ---------------------------------------------------------------------------------------


@pytest.fixture
def flaky_index() -> tuple[RetryingIndexStore, MemoryIndexStore, Faults]:
    mem = MemoryIndexStore()
    mem.insert_many("c", [{"_id": f"d{i:02d}", "i": i, "even": i % 2 == 0} for i in range(40)])
    faults = Faults(4)
    return RetryingIndexStore(FlakyIndex(mem, faults), FAST), mem, faults


def test_a_cursor_resumes_after_the_last_document_it_yielded(flaky_index) -> None:
    store, _mem, faults = flaky_index
    assert [d["i"] for d in store.find("c")] == list(range(40))
    assert [d["i"] for d in store.find("c", {"even": True}, skip=3, limit=10)] == list(range(6, 26, 2))
    assert list(store.find("c", {"i": {"$lt": 5}}, projection={"i": 1})) == [
        {"_id": f"d{i:02d}", "i": i} for i in range(5)]  # _seq was fetched to resume, then hidden
    assert [d["i"] for d in store.tail("c", after=30)] == list(range(30, 40))
    assert faults.injected >= 10


def test_a_sorted_cursor_is_reopened_only_before_its_first_document() -> None:
    mem = MemoryIndexStore()
    mem.insert_many("c", [{"i": i} for i in range(10)])

    class MidWayFailure(FlakyIndex):
        def find(self, collection: str, query: Any = None, *, sort: Any = None, **kw: Any) -> FlakyCursor:
            return FlakyCursor(self.inner.find(collection, query, sort=sort, **kw), self.faults, mid_way=True)

    faults = Faults(3)
    store = RetryingIndexStore(MidWayFailure(mem, faults), FAST)
    with pytest.raises(TransientError):
        list(store.find("c", sort=[("i", -1)]))  # third call fails after two documents: resuming could skip some
    faults.calls = 0
    faults.period = 1  # first next() fails, then a fresh cursor: nothing was yielded, so it is simply reopened
    faults_once = {"left": 1}

    def first_only() -> bool:
        if faults_once["left"]:
            faults_once["left"] -= 1
            return True
        return False

    faults.hit = first_only  # type: ignore[method-assign]
    assert [d["i"] for d in store.find("c", sort=[("i", -1)])] == list(range(9, -1, -1))


def test_get_many_and_list_resume_without_repeating() -> None:
    mem = MemoryBlobStore()
    keys = []
    for i in range(30):
        data = f"blob {i}".encode()
        keys.append(content_key(data))
        mem.put(keys[-1], data)
    faults = Faults(4)
    store = RetryingBlobStore(FlakyBlobs(mem, faults), FAST)
    requests = keys + [(keys[0], 0, 4)]
    assert list(store.get_many(requests)) == [f"blob {i}".encode() for i in range(30)] + [b"blob"]
    assert faults.injected >= 7

    class BreaksOnceMidWay(FlakyBlobs):
        def list(self, prefix: str = "") -> Iterator[str]:
            for n, key in enumerate(sorted(self.inner.list(prefix))):
                if n == 20 and not self.faults.injected:
                    self.faults.injected += 1
                    raise self.faults.fail("list")
                yield key

    broken = BreaksOnceMidWay(mem, Faults(1))
    listed = list(RetryingBlobStore(broken, FAST).list())
    assert sorted(listed) == sorted(keys) and len(listed) == 30 and broken.faults.injected == 1


# -- connect() and attribute forwarding ------------------------------------------------------------


def test_connect_wraps_both_stores_and_forwards_backend_methods(tmp_path) -> None:
    with tdb.connect(tmp_path / "w", study="s") as db:
        assert isinstance(db.index, RetryingIndexStore) and isinstance(db.blobs, RetryingBlobStore)
        assert type(unwrap(db.blobs)).__name__ == "FileBlobStore"
        assert db.blobs.path_of(content_key(b"x")).startswith(str(tmp_path))  # optional capability, forwarded
        assert db.blobs.capabilities.read_into  # declared by the file store, passed on by the wrapper
        assert db.index.retrier.policy == RetryPolicy()
    with tdb.connect(f"memory://retry-{id(tmp_path)}", study="s", retry={"attempts": 2, "total_s": 1}) as db:
        assert db.index.retrier.policy.attempts == 2 and not db.blobs.capabilities.read_into
    with tdb.connect(f"memory://retry-off-{id(tmp_path)}", study="s", retry=False) as db:
        assert isinstance(db.index, MemoryIndexStore)


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"jitter": 2}, {"total_s": -1}, {"atempts": 3}, "often",
                                 {"multiplier": 0.5}, {"attempts": True}])
def test_bad_retry_settings_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidURI):
        tdb.connect("memory://bad-retry", study="s", retry=bad)


def test_retries_are_logged_at_debug_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    faults = Faults(2)
    mem = MemoryIndexStore(parse_uri(f"mongodb://bob:{SECRET}@h/db?password={SECRET}"))
    store = RetryingIndexStore(FlakyIndex(mem, faults), FAST)
    with caplog.at_level(logging.DEBUG, logger="tensordb_core.store.retrying"):
        store.count("c")
        store.count("c")
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
