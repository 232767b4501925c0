"""The blob-store conformance suite: the definition of done for every :class:`~tensordb_core.store.protocols.BlobStore`.

A backend (ours or a third party's) runs it by subclassing and providing a
function-scoped ``blob_store`` fixture that yields a fresh, *empty* store::

    from tensordb_core.testing import BlobStoreSuite

    class TestMyBlobs(BlobStoreSuite):
        list_page_past = 1_001          # my server pages list() by 1,000

        @pytest.fixture
        def blob_store(self, my_server):
            store = MyBlobStore(my_server.url, prefix=new_id())
            yield store
            store.close()

Semantics the suite pins down (the protocol's docstrings leave them open)
--------------------------------------------------------------------------
* **Keys** are checked with :func:`tensordb_core.store.blobkit.check_key` before the
  store is touched: an invalid key raises :class:`~tensordb_core.store.blobkit.InvalidBlobKey`
  (an :class:`~tensordb_core.errors.InvalidQuery`) from every method taking a key.
* **Ranges** follow Python slicing for ``0 <= start <= end``: ``get(k, s, e)``
  returns ``data[s:e]``, so an ``end`` past the size is clamped and a ``start``
  at or past the size gives ``b""`` (unlike HTTP, where that is a 416).
  A negative ``start`` or ``end < start`` raises ``InvalidQuery``
  (:func:`~tensordb_core.store.blobkit.split_request` does both).
* A **missing key** raises :class:`~tensordb_core.errors.BlobNotFound` from
  ``get`` (whatever the range, empty ones included), ``size`` and, when its turn
  comes, ``get_many``.
* ``get`` and ``get_many`` return ``bytes`` (not views the caller could see change).
* ``put`` stores the *bytes* of its argument: ``len(memoryview(arr))`` counts
  elements, the stored blob has ``arr.nbytes`` bytes.  The caller may reuse its
  buffer as soon as ``put`` returns.
* ``put`` of existing bytes under the same key is a no-op; with different bytes
  the last writer wins (unless the store declares ``overwrite_replaces=False``).
* **Capabilities**: what a store declares in ``capabilities``
  (:class:`~tensordb_core.store.protocols.BlobCapabilities`) is tested here;
  the suite reads the declaration, the subclass sets nothing.
* **Atomic visibility**: while a blob is being written a reader sees either
  ``BlobNotFound`` or the whole blob, never a prefix of it.
* ``list(prefix)`` is a plain string prefix, as in S3: ``"a/b"`` matches
  ``a/b/1`` *and* ``a/bc``; ``"a/b/"`` matches only what is under ``a/b/``.
  It yields whole keys, each once, in any order.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import pytest

from tensordb_core.errors import BlobNotFound, InvalidQuery, NotFound
from tensordb_core.store.blobkit import InvalidBlobKey, content_key
from tensordb_core.store.protocols import BlobCapabilities, BlobStore, MapsBlobs, ReadsInto
from tensordb_core.store.uri import StoreURI

MiB = 2**20

#: Keys no backend may accept (each reason is the id of its test).
INVALID_KEYS: dict[str, str] = {
    "empty": "",
    "parent": "../x",
    "inner-parent": "a/../b",
    "dot-segment": "a/./b",
    "dotdot-alone": "..",
    "dot-alone": ".",
    "absolute": "/abs",
    "trailing-slash": "a/",
    "double-slash": "a//b",
    "space": "a b",
    "backslash": "a\\b",
    "newline": "a\nb",
    "non-ascii": "caf\u00e9",
    "colon": "c:x",
}

#: Unusual keys every backend must accept and keep distinct.
ODD_VALID_KEYS = ["a-b_c.d", ".hidden", "x..y", "A/B/C", "0", "-", "_/_", "long/" + "x" * 200]


def payload(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (seeded, so a failure reproduces)."""
    return np.random.default_rng(seed).bytes(size)


def _run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` on ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)

    def go(i: int) -> Any:
        barrier.wait()
        return target(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return [f.result() for f in [pool.submit(go, i) for i in range(count)]]


class BlobStoreSuite:
    """Subclass me and provide a function-scoped ``blob_store`` fixture yielding an empty store.

    The class attributes size the tests to the server under test; what the store
    can do is read from its declared ``capabilities``.
    """

    #: The largest round trip (bytes).  64 MiB crosses every multipart/resumable threshold we know.
    large_blob_bytes: ClassVar[int] = 64 * MiB
    #: Create this many keys under one prefix to prove ``list()`` follows pagination
    #: (e.g. 1,001 for S3's 1,000-key pages).  0: the store does not page, the test is not generated.
    list_page_past: ClassVar[int] = 0
    #: Size of each blob written while readers poll it (atomic-visibility test).
    partial_read_bytes: ClassVar[int] = 4 * MiB
    #: How many times the writer rewrites each of those blobs while readers poll.
    partial_rewrites: ClassVar[int] = 4
    #: Threads used by the concurrency tests.
    threads: ClassVar[int] = 8

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Generate the pagination test only for stores that declare a page size to cross."""
        super().__init_subclass__(**kwargs)
        if cls.list_page_past > 0:
            cls.test_list_pages_past_first_page = BlobStoreSuite._list_pages_past_first_page  # type: ignore[attr-defined]
        elif "test_list_pages_past_first_page" in dir(cls):
            cls.test_list_pages_past_first_page = None  # type: ignore[attr-defined]  # a subclass turned it off

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize the round trip by this subclass's sizes (the large one runs once)."""
        if "round_trip_size" in metafunc.fixturenames:
            large = metafunc.cls.large_blob_bytes
            sizes = sorted({s for s in (0, 1, 1000, 65_537, MiB + 7) if s < large} | {large})
            metafunc.parametrize("round_trip_size", sizes, ids=[f"{s}B" for s in sizes])

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def put_content(store: BlobStore, data: bytes, prefix: str = "") -> str:
        """Store ``data`` under its content address (optionally below ``prefix``) and return the key."""
        key = prefix + content_key(data)
        store.put(key, data)
        return key

    @staticmethod
    def keys(store: BlobStore, prefix: str = "") -> list[str]:
        """``store.list(prefix)`` as a sorted list, failing on duplicates."""
        found = list(store.list(prefix))
        assert all(isinstance(k, str) for k in found), found[:5]
        assert len(found) == len(set(found)), f"list({prefix!r}) yielded duplicates"
        return sorted(found)

    # -- the protocol ----------------------------------------------------------------------------

    def test_is_a_blob_store(self, blob_store: BlobStore) -> None:
        assert isinstance(blob_store, BlobStore)
        assert isinstance(blob_store.uri, StoreURI)
        assert self.keys(blob_store) == [], "the fixture must yield an empty store"

    def test_declares_its_capabilities(self, blob_store: BlobStore) -> None:
        caps = blob_store.capabilities
        assert isinstance(caps, BlobCapabilities), "a store declares BlobCapabilities (the defaults are a valid choice)"
        if caps.read_into:
            assert isinstance(blob_store, ReadsInto), "read_into=True needs a read_into method"
        if caps.map:
            assert isinstance(blob_store, MapsBlobs), "map=True needs a map method"

    def test_map_gives_a_read_only_view_that_outlives_the_key_where_declared(self, blob_store: BlobStore) -> None:
        if not blob_store.capabilities.map:
            return  # the store does not offer it; the stream reads into buffers or calls get_many
        assert isinstance(blob_store, MapsBlobs)
        data = payload(200_000, seed=3)  # past a 64 KiB mapping granularity, so offsets need aligning
        key = self.put_content(blob_store, data)
        whole = blob_store.map(key)
        assert whole.readonly and bytes(whole) == data
        with pytest.raises(TypeError):
            whole[0] = 0  # a view the caller could write would change the stored blob for everyone
        assert bytes(blob_store.map(key, 70_000, 140_001)) == data[70_000:140_001]
        assert bytes(blob_store.map(key, 199_990, 300_000)) == data[199_990:], "end past the size is clamped"
        assert bytes(blob_store.map(key, 200_000)) == b"" and bytes(blob_store.map(key, 250_000, 260_000)) == b""
        blob_store.put(key, data)  # the same bytes again: a no-op that must not disturb a live view
        blob_store.delete(key)  # garbage collection while a reader holds a view
        assert bytes(whole) == data, "a mapped view must stay valid and unchanged after its key is deleted"
        with pytest.raises(BlobNotFound):
            blob_store.map(key)
        with pytest.raises(InvalidBlobKey):
            blob_store.map("../x")
        with pytest.raises(InvalidQuery):
            blob_store.map(content_key(b"x"), -1)
        empty = self.put_content(blob_store, b"")
        assert bytes(blob_store.map(empty)) == b""

    def test_read_into_fills_a_buffer_where_declared(self, blob_store: BlobStore) -> None:
        if not blob_store.capabilities.read_into:
            return  # the store does not offer it; the stream falls back to get_many
        assert isinstance(blob_store, ReadsInto)
        data = payload(10_000, seed=2)
        key = self.put_content(blob_store, data)
        buf = bytearray(4000)
        assert blob_store.read_into(key, 1000, buf) == 4000 and bytes(buf) == data[1000:5000]
        assert blob_store.read_into(key, 8000, memoryview(buf)) == 2000 and bytes(buf[:2000]) == data[8000:]
        assert blob_store.read_into(key, 20_000, buf) == 0
        with pytest.raises(BlobNotFound):
            blob_store.read_into(content_key(b"nope"), 0, buf)
        with pytest.raises(InvalidBlobKey):
            blob_store.read_into("../x", 0, buf)

    def test_round_trip(self, blob_store: BlobStore, round_trip_size: int) -> None:
        data = payload(round_trip_size, seed=round_trip_size)
        key = self.put_content(blob_store, data, prefix="rt/")
        assert blob_store.exists(key)
        assert blob_store.size(key) == round_trip_size
        got = blob_store.get(key)
        assert type(got) is bytes
        assert len(got) == round_trip_size
        assert hashlib.sha256(got).hexdigest() == key[len("rt/") :]
        assert got == data
        if round_trip_size:
            tail = max(0, round_trip_size - 1000)
            assert blob_store.get(key, tail, round_trip_size) == data[tail:]
        assert self.keys(blob_store) == [key]

    def test_put_accepts_bytes_like(self, blob_store: BlobStore) -> None:
        base = payload(3000, seed=1)
        buf = bytearray(base)
        blob_store.put("like/bytearray", buf)
        buf[:10] = b"\0" * 10  # the store must have copied the bytes, not kept the buffer
        assert blob_store.get("like/bytearray") == base

        blob_store.put("like/memoryview", memoryview(base)[100:2100])
        assert blob_store.get("like/memoryview") == base[100:2100]

        arr = np.arange(1000, dtype=np.float32)  # memoryview len() counts 1,000 items; 4,000 bytes
        blob_store.put("like/array", memoryview(arr))
        assert blob_store.size("like/array") == arr.nbytes
        assert blob_store.get("like/array") == arr.tobytes()

        blob_store.put("like/bytes", base)
        assert blob_store.get("like/bytes") == base

    def test_odd_but_valid_keys(self, blob_store: BlobStore) -> None:
        for i, key in enumerate(ODD_VALID_KEYS):
            blob_store.put(key, f"value {i}".encode())
        for i, key in enumerate(ODD_VALID_KEYS):
            assert blob_store.get(key) == f"value {i}".encode(), key
        assert self.keys(blob_store) == sorted(ODD_VALID_KEYS)

    def test_overwrite_with_same_bytes_is_a_no_op(self, blob_store: BlobStore) -> None:
        data = payload(5000, seed=2)
        key = self.put_content(blob_store, data)
        blob_store.put(key, data)
        blob_store.put(key, bytearray(data))
        assert blob_store.get(key) == data
        assert blob_store.size(key) == len(data)
        assert self.keys(blob_store) == [key]

    def test_overwrite_with_different_bytes(self, blob_store: BlobStore) -> None:
        old, new = payload(4000, seed=3), payload(4000, seed=4)  # same size on purpose
        blob_store.put("mutable/name", old)
        blob_store.put("mutable/name", new)
        got = blob_store.get("mutable/name")
        if blob_store.capabilities.overwrite_replaces:
            assert got == new
        else:
            assert got in (old, new)
        assert self.keys(blob_store) == ["mutable/name"]

    # -- ranges ----------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (0, 0),
            (0, 1),
            (0, 1000),
            (999, 1000),
            (10, 20),
            (0, None),
            (500, None),
            (990, 5000),
            (1000, None),
            (1000, 1010),
            (2000, 3000),
            (5, 5),
            (999, None),
        ],
    )
    def test_ranged_get(self, blob_store: BlobStore, start: int, end: int | None) -> None:
        data = payload(1000, seed=5)
        key = self.put_content(blob_store, data)
        got = blob_store.get(key, start, end)
        assert type(got) is bytes
        assert got == data[start:end]

    def test_ranged_get_matches_slicing(self, blob_store: BlobStore) -> None:
        data = payload(4096, seed=6)
        key = self.put_content(blob_store, data)
        rng = np.random.default_rng(7)
        for _ in range(40):
            start = int(rng.integers(0, 5000))
            end = start + int(rng.integers(0, 3000))
            assert blob_store.get(key, start, end) == data[start:end], (start, end)

    def test_ranges_of_an_empty_blob(self, blob_store: BlobStore) -> None:
        key = self.put_content(blob_store, b"")
        assert blob_store.get(key) == b""
        assert blob_store.get(key, 0, 10) == b""
        assert blob_store.get(key, 3, None) == b""
        assert blob_store.size(key) == 0
        assert blob_store.exists(key)

    @pytest.mark.parametrize(("start", "end"), [(-1, 5), (10, 5), (-5, None)])
    def test_invalid_range(self, blob_store: BlobStore, start: int, end: int | None) -> None:
        key = self.put_content(blob_store, payload(100, seed=8))
        with pytest.raises(InvalidQuery):
            blob_store.get(key, start, end)
        with pytest.raises(InvalidQuery):
            list(blob_store.get_many([(key, start, end)]))

    # -- missing keys, exists, delete, size ------------------------------------------------------

    def test_missing_key(self, blob_store: BlobStore) -> None:
        missing = content_key(b"never stored")
        assert not blob_store.exists(missing)
        for call in (
            lambda: blob_store.get(missing),
            lambda: blob_store.get(missing, 0, 0),
            lambda: blob_store.get(missing, 5, 10),
            lambda: blob_store.size(missing),
        ):
            with pytest.raises(BlobNotFound) as info:
                call()
            assert isinstance(info.value, NotFound) and isinstance(info.value, FileNotFoundError)

    def test_missing_key_in_a_prefix_that_exists(self, blob_store: BlobStore) -> None:
        blob_store.put("dir/present", b"x")
        with pytest.raises(BlobNotFound):
            blob_store.get("dir/absent")
        with pytest.raises(BlobNotFound):
            blob_store.get("dir")  # a "directory" is not a blob
        with pytest.raises(BlobNotFound):
            blob_store.get("dir/present/below")
        assert not blob_store.exists("dir")
        assert not blob_store.exists("dir/present/below")

    def test_delete(self, blob_store: BlobStore) -> None:
        data = payload(2000, seed=9)
        key = self.put_content(blob_store, data)
        other = self.put_content(blob_store, payload(10, seed=10))
        blob_store.delete(key)
        assert not blob_store.exists(key)
        with pytest.raises(BlobNotFound):
            blob_store.get(key)
        with pytest.raises(BlobNotFound):
            blob_store.size(key)
        assert self.keys(blob_store) == [other]
        blob_store.delete(key)  # deleting a missing key is fine
        blob_store.delete("never/was")
        blob_store.put(key, data)  # and the key can be written again
        assert blob_store.get(key) == data

    def test_size_and_exists(self, blob_store: BlobStore) -> None:
        for n in (0, 1, 777):
            key = self.put_content(blob_store, payload(n, seed=100 + n), prefix="sz/")
            assert blob_store.exists(key)
            assert blob_store.size(key) == n

    # -- list ------------------------------------------------------------------------------------

    def test_list_is_a_plain_string_prefix(self, blob_store: BlobStore) -> None:
        keys = ["a/b/1", "a/b/2", "a/b/c/d", "a/bc", "a/bcd/1", "ab", "b/a/1", "x"]
        for key in keys:
            blob_store.put(key, key.encode())
        expect = {
            "": keys,
            "a": ["a/b/1", "a/b/2", "a/b/c/d", "a/bc", "a/bcd/1", "ab"],
            "a/": ["a/b/1", "a/b/2", "a/b/c/d", "a/bc", "a/bcd/1"],
            "a/b": ["a/b/1", "a/b/2", "a/b/c/d", "a/bc", "a/bcd/1"],
            "a/b/": ["a/b/1", "a/b/2", "a/b/c/d"],
            "a/bc": ["a/bc", "a/bcd/1"],
            "a/bc/": [],
            "a/b/c": ["a/b/c/d"],
            "a/b/1": ["a/b/1"],
            "a/b/1/": [],
            "b": ["b/a/1"],
            "x": ["x"],
            "xy": [],
            "zzz": [],
            "zzz/": [],
        }
        for prefix, want in expect.items():
            assert self.keys(blob_store, prefix) == sorted(want), f"list({prefix!r})"

    def test_list_content_addresses_by_partial_prefix(self, blob_store: BlobStore) -> None:
        keys = [self.put_content(blob_store, payload(50, seed=200 + i), prefix="cas/") for i in range(40)]
        keys += [self.put_content(blob_store, payload(50, seed=300 + i)) for i in range(10)]
        assert self.keys(blob_store) == sorted(keys)
        for key in keys[::7]:
            for cut in (1, 2, 3, 5, len(key)):
                prefix = key[:cut]
                assert self.keys(blob_store, prefix) == sorted(k for k in keys if k.startswith(prefix)), prefix

    def test_list_of_an_empty_store(self, blob_store: BlobStore) -> None:
        assert self.keys(blob_store) == []
        assert self.keys(blob_store, "a/") == []

    def test_key_that_is_also_a_prefix(self, blob_store: BlobStore) -> None:
        blob_store.put("nest/a", b"outer")
        if blob_store.capabilities.key_as_prefix:
            blob_store.put("nest/a/b", b"inner")
            assert blob_store.get("nest/a") == b"outer"
            assert blob_store.get("nest/a/b") == b"inner"
            assert self.keys(blob_store, "nest/") == ["nest/a", "nest/a/b"]
        else:
            with pytest.raises(InvalidBlobKey):
                blob_store.put("nest/a/b", b"inner")
            blob_store.put("nest/c/d", b"deep")
            with pytest.raises(InvalidBlobKey):
                blob_store.put("nest/c", b"shallow")
            assert blob_store.get("nest/a") == b"outer"
            assert blob_store.get("nest/c/d") == b"deep"
            assert self.keys(blob_store, "nest/") == ["nest/a", "nest/c/d"]

    def _list_pages_past_first_page(self, blob_store: BlobStore) -> None:
        """(Generated only when ``list_page_past > 0``.)  list() returns every key past the first page."""
        n = self.list_page_past
        keys = [f"pages/k{i:06d}" for i in range(n)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(lambda k: blob_store.put(k, k.encode()), keys))
        blob_store.put("pagesX", b"outside")
        assert self.keys(blob_store, "pages/") == keys
        assert len(self.keys(blob_store)) == n + 1

    # -- get_many --------------------------------------------------------------------------------

    def test_get_many_keeps_request_order(self, blob_store: BlobStore) -> None:
        blobs = [payload(100 + 37 * i, seed=400 + i) for i in range(6)]
        keys = [self.put_content(blob_store, b, prefix="gm/") for b in blobs]
        requests: list[Any] = [
            keys[3],
            (keys[0], 10, 20),
            keys[0],
            (keys[5], 0, 1),
            keys[3],
            (keys[1], 50, 10_000),
            (keys[2], 5, 5),
            keys[4],
            (keys[4], 300, 400),
        ]
        want = [
            blobs[3],
            blobs[0][10:20],
            blobs[0],
            blobs[5][:1],
            blobs[3],
            blobs[1][50:],
            b"",
            blobs[4],
            blobs[4][300:400],
        ]
        got = list(blob_store.get_many(requests))
        assert all(type(g) is bytes for g in got)
        assert got == want
        assert list(blob_store.get_many(iter(requests))) == want  # a one-shot iterator works too
        assert list(blob_store.get_many([])) == []

    def test_get_many_of_many_small_blobs(self, blob_store: BlobStore) -> None:
        rng = np.random.default_rng(11)
        blobs = [payload(int(rng.integers(0, 2000)), seed=1000 + i) for i in range(500)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            keys = list(pool.map(lambda b: self.put_content(blob_store, b, prefix="many/"), blobs))
        assert list(blob_store.get_many(keys)) == blobs
        order = rng.permutation(len(keys))
        assert list(blob_store.get_many(keys[i] for i in order)) == [blobs[i] for i in order]
        ranged = [(keys[i], 1, 9) for i in order[:100]]
        assert list(blob_store.get_many(ranged)) == [blobs[i][1:9] for i in order[:100]]

    def test_get_many_raises_for_a_missing_key_when_its_turn_comes(self, blob_store: BlobStore) -> None:
        a, b = payload(10, seed=12), payload(20, seed=13)
        ka, kb = self.put_content(blob_store, a), self.put_content(blob_store, b)
        results = blob_store.get_many([ka, kb, content_key(b"missing"), ka])
        assert next(results) == a
        assert next(results) == b
        with pytest.raises(BlobNotFound):
            next(results)

    def test_get_many_can_be_abandoned(self, blob_store: BlobStore) -> None:
        keys = [self.put_content(blob_store, payload(100, seed=500 + i)) for i in range(50)]
        results = blob_store.get_many(keys)
        assert next(results) == blob_store.get(keys[0])
        close = getattr(results, "close", None)
        if close is not None:
            close()  # stops fetching; must neither hang nor raise
        assert blob_store.get(keys[1]) == payload(100, seed=501)

    # -- keys ------------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad_key", list(INVALID_KEYS.values()), ids=list(INVALID_KEYS))
    def test_invalid_keys_are_refused_before_touching_the_store(self, blob_store: BlobStore, bad_key: str) -> None:
        calls: list[Callable[[], Any]] = [
            lambda: blob_store.put(bad_key, b"data"),
            lambda: blob_store.get(bad_key),
            lambda: blob_store.get(bad_key, 0, 1),
            lambda: blob_store.size(bad_key),
            lambda: blob_store.exists(bad_key),
            lambda: blob_store.delete(bad_key),
            lambda: list(blob_store.get_many([bad_key])),
            lambda: list(blob_store.get_many([(bad_key, 0, 1)])),
        ]
        for call in calls:
            with pytest.raises(InvalidBlobKey):
                call()
        assert self.keys(blob_store) == []

    # -- concurrency -----------------------------------------------------------------------------

    def test_concurrent_puts(self, blob_store: BlobStore) -> None:
        per_thread = 20
        shared = payload(300_000, seed=14)
        shared_key = content_key(shared)

        def writer(t: int) -> dict[str, bytes]:
            mine = {}
            for i in range(per_thread):
                data = payload(500 + i, seed=10_000 * (t + 1) + i)
                mine[self.put_content(blob_store, data, prefix=f"t{t}/")] = data
                if i % 5 == 0:
                    blob_store.put(shared_key, shared)  # every thread races on the same content key
            return mine

        written: dict[str, bytes] = {}
        for mine in _run_threads(self.threads, writer):
            written.update(mine)
        assert self.keys(blob_store) == sorted([*written, shared_key])
        assert blob_store.get(shared_key) == shared
        assert list(blob_store.get_many(list(written))) == list(written.values())

    def test_a_reader_never_sees_a_partial_blob(self, blob_store: BlobStore) -> None:
        blobs = [payload(self.partial_read_bytes, seed=600 + i) for i in range(3)]
        # content addresses (written once, then rewritten: a no-op) and plain names (really rewritten)
        targets = [(content_key(b), b) for b in blobs] + [(f"partial/{i}", b) for i, b in enumerate(blobs)]
        done = threading.Event()
        whole = 0

        def writer() -> None:
            try:
                for _ in range(self.partial_rewrites):
                    for key, data in targets:
                        blob_store.put(key, data)  # same bytes every time: any other read is a torn write
            finally:
                done.set()

        def read_all() -> None:
            nonlocal whole
            for key, data in targets:
                try:
                    size = blob_store.size(key)
                    got = blob_store.get(key)
                except BlobNotFound:
                    continue
                assert size == len(data), f"size({key!r}) saw {size} of {len(data)} bytes"
                assert len(got) == len(data), f"get({key!r}) saw {len(got)} of {len(data)} bytes"
                assert got == data, f"get({key!r}) saw other bytes than were written"
                whole += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while not done.is_set():
                read_all()
        finally:
            thread.join()
        read_all()
        assert whole >= len(targets)
