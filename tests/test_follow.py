"""Following a collection: late commits of earlier-allocated _seq ranges are never skipped."""

from __future__ import annotations

import pytest

import tensordb_core as tdb
from tensordb_core.store.protocols import DEFAULT_TAIL_GRACE_S, IndexCapabilities
from tensordb_core.stream.follow import Follower, tail_grace


class LateCommitIndex:
    """A scripted index where _seq ranges are allocated first and committed later (as on MongoDB).

    Not a backend: a deterministic stage for the follower's logic.
    """

    capabilities = IndexCapabilities(tail_grace_s=5.0)

    def __init__(self) -> None:
        self.counter = 0
        self.committed: list[dict] = []

    def allocate(self, n: int) -> list[int]:
        first = self.counter + 1
        self.counter += n
        return list(range(first, first + n))

    def commit(self, seqs: list[int]) -> None:
        self.committed += [{"_id": f"d{s}", "_seq": s} for s in seqs]

    def last_seq(self, collection: str) -> int:
        return self.counter

    def tail(self, collection, query=None, *, after=0, limit=0):
        docs = sorted((d for d in self.committed if d["_seq"] > after), key=lambda d: d["_seq"])
        return iter(docs[:limit] if limit else docs)


def test_late_commit_is_delivered_once_and_position_only_moves_past_settled_ranges():
    index, now = LateCommitIndex(), [0.0]
    follower = Follower(index, "data", clock=lambda: now[0])
    a = index.allocate(3)          # writer A allocates first...
    b = index.allocate(2)
    index.commit(b)                # ...but writer B commits first
    got = [d["_seq"] for d in follower.poll()]
    assert got == b and follower.position == 0   # nothing settled yet
    now[0] = 1.0
    index.commit(a)
    got = [d["_seq"] for d in follower.poll()]
    assert got == a                              # a naive tail(after=max seen) would have skipped these
    assert [d["_seq"] for d in follower.poll()] == []  # no repeats
    now[0] = 10.0
    follower.poll()
    c = index.allocate(1)
    index.commit(c)
    assert [d["_seq"] for d in follower.poll()] == c
    assert follower.position >= 5 and follower.state()["delivered"] == [s for s in c if s > follower.position]


def test_resumed_follower_does_not_repeat_deliveries():
    index, now = LateCommitIndex(), [0.0]
    index.commit(index.allocate(4))
    first = Follower(index, "data", clock=lambda: now[0])
    assert len(first.poll()) == 4
    state = first.state()
    again = Follower(index, "data", after=state["after"], delivered=set(state["delivered"]), clock=lambda: now[0])
    assert again.poll() == []
    index.commit(index.allocate(1))
    assert [d["_seq"] for d in again.poll()] == [5]


@pytest.mark.parametrize("scheme", ["memory", "dir"])
def test_embedded_stores_need_no_grace(scheme, tmp_path):
    uri = "memory://follow-test" if scheme == "memory" else str(tmp_path / "w")
    with tdb.connect(uri, study="s") as db:
        assert tail_grace(db.index) == 0.0          # looked up through the retrying wrapper
        follower = Follower(db.index, "data", db.scope.query({"split": "train"}))
        assert follower.poll() == []
        import numpy as np

        db.import_data(np.zeros((3, 2)), [0, 1, 2], tags={"split": "train"})
        db.import_data(np.zeros((2, 2)), [0, 1], tags={"split": "test"})
        assert [d["label"] for d in follower.poll()] == [0, 1, 2]
        assert follower.poll() == []


def test_the_grace_is_the_declared_capability_also_through_the_retrying_wrapper():
    from tensordb_core.store.retrying import RetryingIndexStore

    assert IndexCapabilities().tail_grace_s == DEFAULT_TAIL_GRACE_S  # what a store gets by not saying otherwise
    assert tail_grace(LateCommitIndex()) == 5.0  # type: ignore[arg-type]
    memory = tdb.open_index("memory://")
    assert tail_grace(memory) == 0.0
    assert tail_grace(RetryingIndexStore(memory)) == 0.0


def test_watermark_settles_only_after_the_grace_and_never_goes_back():
    from tensordb_core.stream.follow import Watermark

    index, now = LateCommitIndex(), [0.0]
    mark = Watermark(index, "data", floor=0, clock=lambda: now[0])
    index.allocate(3)
    assert mark.settled() == 0            # allocated just now: maybe not committed yet
    now[0] = 4.9
    index.allocate(2)
    assert mark.settled() == 0
    now[0] = 5.0
    assert mark.settled() == 3            # what was allocated 5 s ago has had the grace to commit
    now[0] = 10.0
    assert mark.settled() == 5
    assert Watermark(index, "data", grace_s=0).settled() == 5


# -- a follow stream whose store vanishes or fails ends with a typed error, not a silent poll ---------

def _next_within(stream, seconds: float):
    """``next(stream)`` on a helper thread: its result or exception, or a failure if it is still waiting."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = next(stream)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        stream.close()
        pytest.fail(f"the follow stream was still waiting after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _followed(db, n: int = 10):
    """A follow stream (epochs=1) over ``n`` samples, its epoch consumed, now idle in the tail."""
    import numpy as np

    db.import_data(np.ones((n, 4), np.float32), np.arange(n))
    stream = db.data_generator(batch_size=5, follow=True, epochs=1, shuffle=False, poll_s=0.05)
    labels = [int(v) for _ in range(n // 5) for v in _next_within(stream, 10)[1]]
    assert labels == list(range(n))
    return stream


@pytest.fixture
def quick_watch(monkeypatch):
    from tensordb_core.stream import engine

    monkeypatch.setattr(engine, "WATCH_S", 0.2)


def test_a_follow_stream_on_a_deleted_directory_warehouse_raises_instead_of_polling(tmp_path, quick_watch):
    import shutil

    where = tmp_path / "wh"
    with tdb.connect(str(where), study="s") as db:
        stream = _followed(db)
        shutil.rmtree(where)  # the SQLite file stays readable through its open connection: only the blobs say so
        with pytest.raises(tdb.BackendUnavailable, match="deleted or emptied"):
            _next_within(stream, 10)


def test_a_follow_stream_on_a_dropped_memory_collection_raises_instead_of_polling(quick_watch):
    import uuid

    from tensordb_core.store.retrying import unwrap

    with tdb.connect(f"memory://drop-{uuid.uuid4().hex}", study="s") as db:
        stream = _followed(db)
        unwrap(db.index)._collections.clear()  # the collection dropped: last_seq starts again at 0
        with pytest.raises(tdb.BackendUnavailable, match="dropped"):
            _next_within(stream, 10)


def test_a_follow_stream_on_a_failing_store_raises_within_the_retry_budget(quick_watch):
    import time
    import uuid

    from tensordb_core.errors import TransientError
    from tensordb_core.store.retrying import unwrap

    with tdb.connect(f"memory://fail-{uuid.uuid4().hex}", study="s", retry={"total_s": 1.0}) as db:
        stream = _followed(db)
        inner = unwrap(db.index)

        def down(*args, **kwargs):
            raise TransientError("connection refused")

        inner.last_seq = inner.tail = inner.find = down
        began = time.monotonic()
        with pytest.raises(tdb.BackendUnavailable, match="retry limit"):
            _next_within(stream, 10)
        assert time.monotonic() - began < 5


def test_an_idle_follow_stream_survives_deletions_and_still_delivers_new_samples(quick_watch):
    """Deleting the newest sample with its chunk is not a vanished store: the watch forgets it."""
    import time
    import uuid

    import numpy as np

    with tdb.connect(f"memory://keep-{uuid.uuid4().hex}", study="s") as db:
        stream = _followed(db)
        db.index.delete_many("data", {})
        for key in list(db.blobs.list()):
            db.blobs.delete(key)
        time.sleep(0.6)  # several watch periods, idle
        db.import_data(np.full((5, 4), 7, np.float32), np.arange(100, 105))
        assert _next_within(stream, 10)[1].tolist() == [100, 101, 102, 103, 104]
        stream.close()


def test_a_new_connection_to_a_deleted_directory_warehouse_says_it_is_gone(tmp_path):
    """A stream's threads open their own SQLite connections; one opened after the directory was deleted
    fails in SQLite with "disk I/O error", which must read as the warehouse gone, not a generic backend error."""
    import shutil
    import threading

    import numpy as np

    where = tmp_path / "wh"
    with tdb.connect(str(where), study="s") as db:
        db.import_data(np.ones((4, 2), np.float32), np.arange(4))
        shutil.rmtree(where)
        box: dict = {}

        def fresh_thread_read() -> None:
            try:
                box["value"] = list(db.index.find("data", {}))
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                box["error"] = exc

        thread = threading.Thread(target=fresh_thread_read)
        thread.start()
        thread.join(10)
        error = box.get("error")
        assert isinstance(error, tdb.BackendUnavailable) and "deleted or emptied" in str(error), box
