"""Weighted sampling: draws with replacement by a field or a callable, deterministic, resumable, sharded."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tensordb_core.errors import TensorDBError


@pytest.fixture
def skewed(db):
    """90 samples of label 0, 10 of label 1; a weight field that balances them."""
    labels = [0] * 90 + [1] * 10
    db.import_records(({"label": y, "w": 1 / 90 if y == 0 else 1 / 10, "v": np.full(8, i, np.int32)}
                       for i, y in enumerate(labels)), chunk_bytes=200)
    return db


def _labels(stream) -> list[int]:
    with stream as s:
        return [int(v) for b in s for v in b["label"]]


def test_a_weight_field_balances_classes_and_a_seed_repeats_the_draws(skewed):
    drawn = _labels(skewed.data_generator({}, batch_size=10, seed=4, epochs=20, weights="w"))
    assert len(drawn) == 2000
    share = Counter(drawn)[1] / len(drawn)
    assert 0.4 < share < 0.6  # unweighted it would be 0.1
    again = _labels(skewed.data_generator({}, batch_size=10, seed=4, epochs=20, weights="w"))
    assert again == drawn
    other = _labels(skewed.data_generator({}, batch_size=10, seed=5, epochs=20, weights="w"))
    assert other != drawn


def test_a_callable_over_documents_gives_the_same_draws_as_the_field(skewed):
    by_field = _labels(skewed.data_generator({}, batch_size=10, seed=1, epochs=2, weights="w"))
    by_call = _labels(skewed.data_generator({}, batch_size=10, seed=1, epochs=2,
                                            weights=lambda d: 1 / 90 if d["label"] == 0 else 1 / 10))
    assert by_call == by_field


def test_weighted_draws_resume_from_state_dict_and_split_into_shards(skewed):
    kw = {"batch_size": 7, "seed": 2, "epochs": 1, "weights": "w", "fields": ["v"]}
    with skewed.data_generator({}, **kw) as s:
        full = [int(x) for b in s for x in b["v"][:, 0]]
    with skewed.data_generator({}, **kw) as s:
        head = [int(x) for _ in range(4) for x in next(s)["v"][:, 0]]
        state = s.state_dict()
    with skewed.data_generator({}, state=state, **kw) as s:
        tail = [int(x) for b in s for x in b["v"][:, 0]]
    assert head + tail == full and len(full) == 100
    shards = []
    for rank in range(3):
        with skewed.data_generator({}, shard=(rank, 3), **kw) as s:
            shards += [int(x) for b in s for x in b["v"][:, 0]]
    assert sorted(shards) == sorted(full)


def test_xy_data_draws_by_a_callable_over_its_label(db):
    db.import_data(np.arange(40, dtype=np.float32).reshape(20, 2), [0] * 18 + [1] * 2)
    with db.data_generator({}, batch_size=20, seed=0, epochs=10, weights=lambda d: 9.0 if d["label"] else 1.0) as s:
        ys = np.concatenate([y for _, y in s])
    assert 0.35 < ys.mean() < 0.65


def test_a_missing_or_negative_weight_is_an_error_naming_the_sample(db):
    ids = db.import_records([{"w": 1.0}, {"w": -1.0}])
    with pytest.raises(TensorDBError, match=f"sample {ids[1]}: its field 'w' is -1.0"), \
            db.data_generator({}, batch_size=2, weights="w") as s:
        next(s)
    with pytest.raises(TensorDBError, match="weights must be"):
        db.data_generator({}, weights=3)
