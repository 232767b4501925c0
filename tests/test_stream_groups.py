"""``group=``: ranks agree through the warehouse on every epoch's population (epoch_bounds.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidDocument
from tensordb_core.store.protocols import IndexCapabilities
from tensordb_core.stream.groups import COLLECTION, EpochBounds
from tensordb_core.stream.order import piece_bounds
from test_stream import SMALL, N, drain, make_data


def test_ranks_started_apart_agree_without_passing_a_bound(db):
    make_data(db)
    rank0 = drain(db.data_generator(batch_size=8, seed=2, shard=(0, 2), group="run-1", **SMALL)).tolist()
    make_data(db, n=50, start=N)  # an importer runs between the ranks' starts
    rank1 = drain(db.data_generator(batch_size=8, seed=2, shard=(1, 2), group="run-1", **SMALL)).tolist()
    assert sorted(rank0 + rank1) == list(range(N))  # rank 0's bound, recorded in the warehouse
    fresh = drain(db.data_generator(batch_size=8, seed=2, shard=(1, 2), group="run-2", **SMALL)).tolist()
    assert max(fresh) >= N  # another group takes its own bound


def _epochs(stream, rank: int, epochs: int) -> list[list[int]]:
    """The labels of each of the first ``epochs`` epochs this rank streams (batches never span epochs)."""
    out: list[list[int]] = []
    with stream:
        for _ in range(epochs):
            labels: list[int] = []
            want = None
            while want is None or len(labels) < want:
                _, y = next(stream)
                labels += y.tolist()
                lo, hi = piece_bounds(stream.snapshot["count"], 2, rank)
                want = hi - lo
            assert len(labels) == want
            out.append(labels)
    return out


def test_follow_epochs_get_one_population_per_epoch_across_ranks(db):
    make_data(db)
    first = db.data_generator(batch_size=10, seed=5, shard=(0, 2), follow=True, epochs=2, group="g", **SMALL)
    rank0 = _epochs(first, 0, 2)
    make_data(db, n=40, start=N)  # after rank 0's epochs, before rank 1's
    rank1 = _epochs(db.data_generator(batch_size=10, seed=5, shard=(1, 2), follow=True, epochs=2, group="g",
                                      **SMALL), 1, 2)
    for e in range(2):
        both = rank0[e] + rank1[e]
        assert len(both) == len(set(both)), f"epoch {e}: a sample on both ranks"
        assert sorted(both) == list(range(max(both) + 1)), f"epoch {e}: a gap between the ranks"
    assert sorted(rank0[0] + rank1[0]) == list(range(N))
    records = list(db.index.find(COLLECTION, {"_study": "s1", "group": "g"}))
    assert sorted(r["epoch"] for r in records) == [0, 1]


def test_a_store_with_a_commit_grace_waits_for_the_bound_to_settle(db):
    make_data(db, n=20)
    db.index.capabilities = IndexCapabilities(tail_grace_s=0.3)  # as MongoDB declares (30 s by default): ranges may commit late
    began = time.monotonic()
    bound = EpochBounds(db.scope, "slow").bound(0)
    assert time.monotonic() - began >= 0.3
    assert bound == max(d["_seq"] for d in db.find_data({}))
    make_data(db, n=5, start=20)
    assert EpochBounds(db.scope, "slow").bound(0) == bound  # recorded: a later rank reads the same


def test_group_names_are_checked_and_groups_are_per_study(db):
    for bad in ("", "a:b", 3, "x" * 201, "nul\x00"):
        with pytest.raises(InvalidDocument, match="group"):
            db.data_generator(batch_size=4, group=bad)
    make_data(db, n=30)
    other = db.use_study("other")
    other.import_data(np.zeros((5, 3, 4), np.float32), np.arange(5))
    mine, theirs = EpochBounds(db.scope, "same").bound(0), EpochBounds(other.scope, "same").bound(0)
    assert mine == max(d["_seq"] for d in db.find_data({}))  # the study's own newest, not the other's
    assert theirs == max(d["_seq"] for d in other.find_data({})) > mine
    assert {d["_id"] for d in db.index.find(COLLECTION, {})} == {"s1:same:0", "other:same:0"}


def test_the_read_only_cross_study_view_cannot_record_a_group(db):
    make_data(db, n=10)
    with pytest.raises(tdb.TensorDBError):
        drain(db.all_studies().data_generator(batch_size=4, group="g"))
