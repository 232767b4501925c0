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
