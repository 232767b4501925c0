"""``as_of`` / ``data_snapshot``: ranks that start apart while data arrives shard one population."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tensordb_core.errors import InvalidDocument
from tensordb_core.stream.batches import InvalidStreamArgument
from test_stream import SMALL, N, drain, make_data


def test_ranks_started_apart_shard_the_snapshot_not_what_arrived_between(db):
    make_data(db)
    as_of = db.data_snapshot()
    rank0 = drain(db.data_generator(batch_size=8, seed=3, shard=(0, 2), as_of=as_of, **SMALL)).tolist()
    make_data(db, n=50, start=N)  # an importer runs between the ranks' starts
    rank1 = drain(db.data_generator(batch_size=8, seed=3, shard=(1, 2), as_of=as_of, **SMALL)).tolist()
    assert sorted(rank0 + rank1) == list(range(N))  # no gap, no overlap, none of the late samples
    unbounded = drain(db.data_generator(batch_size=8, seed=3, shard=(1, 2), **SMALL)).tolist()
    assert max(unbounded) >= N  # without the bound the late rank shards a different population


def test_every_epoch_without_follow_keeps_the_bound_and_the_state_carries_it(db):
    make_data(db, n=40)
    as_of = db.data_snapshot()
    make_data(db, n=10, start=40)
    stream = db.data_generator(batch_size=10, seed=1, epochs=2, as_of=as_of)
    with stream:
        first = list(itertools.islice(stream, 1))
        state = stream.state_dict()
        rest = list(stream)
    labels = sorted(int(v) for _, y in first + rest for v in y)
    assert labels == sorted(list(range(40)) * 2)
    assert state["epoch_seq"] == as_of
    resumed = drain(db.data_generator(batch_size=10, seed=1, epochs=2, state=state, as_of=as_of)).tolist()
    assert len(resumed) == 80 - 10 and max(resumed) < 40


def test_as_of_below_everything_is_an_empty_stream_and_bad_values_are_typed(db):
    make_data(db, n=20)
    assert drain(db.data_generator(batch_size=4, as_of=0)).tolist() == []
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InvalidStreamArgument, match="as_of"):
            db.data_generator(batch_size=4, as_of=bad)
    with db.data_generator(batch_size=4, as_of=5) as stream:
        state = stream.state_dict()
    with pytest.raises(InvalidStreamArgument, match="contradicts"):
        db.data_generator(batch_size=4, as_of=6, state=state)
    with pytest.raises(InvalidDocument, match="settle_s"):
        db.data_snapshot(settle_s=-1)


def test_snapshot_is_the_last_insertion_and_waits_only_when_asked(db):
    assert db.data_snapshot() == 0
    make_data(db, n=30)
    bound = db.data_snapshot()  # embedded stores commit in _seq order: no grace to wait
    assert bound == max(d["_seq"] for d in db.index.find("data"))
    began = time.monotonic()
    assert db.data_snapshot(settle_s=0.2) == bound
    assert time.monotonic() - began >= 0.2


def test_snapshot_does_not_wait_unless_the_store_or_the_caller_asks(db, monkeypatch):
    """Embedded stores commit in ``_seq`` order: no wait by default or with settle_s=0; a declared grace is waited."""
    from dataclasses import replace

    from tensordb_core.warehouse import data

    make_data(db, n=30)
    bound = db.data_snapshot()
    slept: list[float] = []
    real_sleep, caller = data.time.sleep, threading.current_thread()

    def sleep(seconds: float) -> None:  # time.sleep is global: count only this thread's (log flushers also sleep)
        if threading.current_thread() is caller:
            slept.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(data.time, "sleep", sleep)
    assert db.data_snapshot() == bound and db.data_snapshot(settle_s=0) == bound
    assert slept == []
    index = db.scope.index
    monkeypatch.setattr(index, "capabilities", replace(index.capabilities, tail_grace_s=0.25), raising=False)
    assert db.data_snapshot() == bound
    assert slept == [0.25]
