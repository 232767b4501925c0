"""The public warehouse API on the embedded backends: data, architectures, parameters, logs, aliases."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidDocument, InvalidQuery, UnsafeOperation


def _digits_like(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(n, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, size=n)


def test_import_and_find_by_tags(db):
    X, y = _digits_like(50)
    ids = db.import_data(X[:30], y[:30], tags={"split": "train"})
    db.import_data(X[30:], y[30:], tags={"split": "test"})
    assert len(ids) == 30 and len(set(ids)) == 30
    cur = db.find_data({"split": "train", "label": {"$in": [3, 5]}})
    expected = [i for i in range(30) if y[i] in (3, 5)]
    assert len(cur) == len(expected)
    Xs, ys = cur.arrays()
    np.testing.assert_array_equal(Xs, X[expected])
    np.testing.assert_array_equal(ys, y[expected])
    assert all(doc["split"] == "train" for doc in cur)


def test_chunks_hold_many_samples_and_small_chunks_split(db):
    X, y = _digits_like(40)
    db.import_data(X, y, chunk_bytes=1024)  # each sample is 192 raw bytes -> several chunks
    keys = {doc["_x"]["key"] for doc in db.find_data()}
    assert 1 < len(keys) < 40
    np.testing.assert_array_equal(db.find_data().arrays()[0], X)


def test_per_sample_tags_and_array_labels(db):
    X = np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3)
    masks = (X > 10).astype(np.uint8)
    db.import_data(X, masks, tags=[{"patient": i} for i in range(4)])
    Xs, ys = db.find_data({"patient": {"$gte": 2}}).arrays()
    np.testing.assert_array_equal(Xs, X[2:])
    np.testing.assert_array_equal(ys, masks[2:])


def test_variable_shape_samples_round_trip(db):
    samples = [np.full((i + 1, 2), i, dtype=np.int16) for i in range(5)]
    db.import_data(samples, None, tags={"kind": "ragged"})
    docs = list(db.find_data({"kind": "ragged"}))
    assert [d["_x"]["shape"] for d in docs] == [[i + 1, 2] for i in range(5)]
    # one read path for every shape: the stream reads them one per batch, arrays() refuses to stack them (typed)
    got = list(db.data_generator({"kind": "ragged"}, batch_size=1, shuffle=False))
    for (x, label), want in zip(got, samples, strict=True):
        np.testing.assert_array_equal(x[0], want)
        assert label is None
    with pytest.raises(tdb.TensorDBError, match="different shapes"):
        db.find_data({"kind": "ragged"}).arrays()


def test_bad_input_is_typed_and_writes_nothing(db):
    X, y = _digits_like(3)
    with pytest.raises(InvalidDocument, match="reserved"):
        db.import_data(X, y, tags={"_study": "other"})
    with pytest.raises(InvalidDocument, match="key"):
        db.import_data(X, y, tags={"a.b": 1})
    with pytest.raises(InvalidDocument, match="label"):
        db.import_data(X, y, tags={"label": 1})
    with pytest.raises(tdb.CodecError):
        db.import_data(np.array([{"x": 1}] * 3, dtype=object), y)
    with pytest.raises(InvalidQuery, match=r"\$where"):
        db.find_data({"$where": "sleep(1000)"})
    assert len(db.find_data()) == 0


def test_study_isolation(warehouse_uri):
    with tdb.connect(warehouse_uri, study="a") as a, tdb.connect(warehouse_uri, study="b") as b:
        X, y = _digits_like(5)
        a.import_data(X, y, tags={"split": "train"})
        pid = a.save_parameters({"w": np.ones(3)}, metrics={"acc": 0.5})
        jid = a.push_job({"x": 1}, tags={"type": "train"})
        assert len(b.find_data()) == 0
        assert len(b.find_data({"_study": "a"})) == 0
        assert b.find_parameters({"_id": pid}) == (None, None)
        assert b.pop_job() is None
        with pytest.raises(tdb.DocumentNotFound):
            b.record_metrics(pid, {"acc": 1.0})
        assert a.find_jobs({"_id": jid})[0]["status"] == "queued"
        view = a.all_studies()
        assert len(view.find_data()) == 5
        with pytest.raises(tdb.TensorDBError, match="read-only"):
            view.import_data(X, y)


def test_parameters_best_and_lineage(db):
    X, y = _digits_like(10)
    db.import_data(X, y, tags={"split": "train"})
    list(db.data_generator({"split": "train"}, batch_size=4))
    ids = [db.save_parameters({"w": np.full((2, 2), i, np.float32)}, metrics={"acc": acc}, tags={"epoch": i})
           for i, acc in enumerate([0.5, 0.9, 0.7])]
    params, doc = db.find_parameters()
    assert doc["_id"] == ids[-1] and params["w"][0, 0] == 2  # newest first
    params, doc = db.best_parameters("acc")
    assert doc["_id"] == ids[1] and params["w"][0, 0] == 1
    _, worst = db.best_parameters("acc", mode="min")
    assert worst["_id"] == ids[0]
    assert doc["lineage"]["data"]["query"] == {"split": "train"}
    assert doc["lineage"]["data"]["count"] == 10
    assert doc["lineage"]["data"]["last_seq"] > 0
    db.record_metrics(ids[2], {"test_acc": 0.99})
    _, best_test = db.best_parameters("test_acc")
    assert best_test["_id"] == ids[2]
    assert db.find_parameters({"epoch": 7}) == (None, None)


def test_parameter_lists_and_nan_metrics(db):
    pid = db.save_parameter([np.zeros(2), np.ones((2, 3))], {"loss": float("nan")})
    params, doc = db.find_parameters({"_id": pid})
    assert isinstance(params, list) and params[1].shape == (2, 3)
    assert doc["metrics"]["loss"] == "nan"
    _, best = db.best_parameters("loss", mode="min")
    assert best is None  # a NaN loss is never "best"


def test_architectures_are_data_not_code(db, tmp_path):
    marker = tmp_path / "executed"
    code = f"open({str(marker)!r}, 'w').write('x')"
    aid = db.save_model_architecture(code, tags={"name": "evil"})
    found, doc = db.find_model_architecture({"name": "evil"})
    assert found == code and doc["_id"] == aid and not marker.exists()
    from tensordb_core.warehouse.models import exec_architecture

    with pytest.raises(UnsafeOperation):
        exec_architecture(found)
    assert not marker.exists()
    exec_architecture(found, trusted=True)
    assert marker.exists()


def test_large_architecture_goes_to_a_blob(db):
    code = json.dumps({"builder": "numpy-mlp", "pad": "x" * 300_000})
    db.save_model_architecture(code, tags={"name": "big"})
    found, doc = db.find_model_architecture({"name": "big"})
    assert found == code and "code" not in doc


def test_logs_are_buffered_and_ordered(db):
    writes = []
    original = db.index.insert_many

    def counting(collection, docs):
        writes.append((collection, len(docs)))
        return original(collection, docs)

    db.index.insert_many = counting
    for step in range(100):
        db.train_log({"loss": 1.0 / (step + 1)}, step=step)
    db.valid_log({"acc": 0.8})
    assert sum(1 for c, _ in writes if c == "logs") <= 2  # batched, not one write per step
    train = db.find_logs("train")
    assert [d["step"] for d in train] == list(range(100))
    assert train[3]["metrics"]["loss"] == pytest.approx(0.25)
    assert all(d["timestamp"] <= time.time() for d in train)
    assert db.find_logs("valid")[0]["metrics"] == {"acc": 0.8}
    assert len(db.find_logs("train", {"step": {"$gte": 90}})) == 10
    with pytest.raises(InvalidQuery):
        db.find_logs("nonsense")


def test_logs_are_flushed_on_close(warehouse_uri):
    with tdb.connect(warehouse_uri, study="s") as db:
        db.train_log({"loss": 1.0})
    with tdb.connect(warehouse_uri, study="s") as db:
        assert len(db.find_logs("train")) == 1


def test_aliases_keep_history(db):
    a = db.save_parameters({"w": np.zeros(1)})
    b = db.save_parameters({"w": np.ones(1)})
    assert db.set_alias("production", a, who="alice") is None
    t_between = time.time()
    time.sleep(0.01)
    assert db.set_alias("production", b, who="bob") == a
    assert db.get_alias("production") == b
    assert db.get_alias("production", at=t_between) == a
    history = db.alias_history("production")
    assert [(h["previous"], h["target"], h["who"]) for h in history] == [(None, a, "alice"), (a, b, "bob")]
    assert db.get_alias("missing") is None
    with pytest.raises(tdb.DocumentNotFound):
        db.set_alias("production", "no-such-parameters")
    assert db.get_alias("production") == b


def test_aliases_cannot_point_into_another_study(warehouse_uri):
    with tdb.connect(warehouse_uri, study="a") as a, tdb.connect(warehouse_uri, study="b") as b:
        theirs = a.save_parameters({"w": np.zeros(1)})
        with pytest.raises(tdb.DocumentNotFound):
            b.set_alias("production", theirs)
        assert b.get_alias("production") is None


def test_data_generator_covers_every_sample_once_per_epoch(db):
    """Each sample carries its own id as label and in its pixels, so a duplicate, a loss or a mix-up shows."""
    X, _ = _digits_like(37)
    ids = np.arange(37, dtype=np.int64)
    X = X.copy()
    X.reshape(len(X), -1)[:, 0] = ids
    db.import_data(X, ids)
    batches = list(db.data_generator(batch_size=8, epochs=2, seed=3))
    seen = np.concatenate([yb for _, yb in batches])
    pixels = np.concatenate([xb.reshape(len(xb), -1)[:, 0] for xb, _ in batches])
    np.testing.assert_array_equal(pixels, seen)  # each label came with its own sample
    assert len(seen) == 74
    for epoch in (seen[:37], seen[37:]):
        assert np.bincount(epoch, minlength=37).tolist() == [1] * 37
    assert not np.array_equal(seen[:37], seen[37:])  # shuffled, and differently per epoch


def test_seed_uri_matches_the_seed_constructor():
    assert tdb.seed_uri("10.0.0.5", 27018, "lab", "me", "p@ss") == "mongodb://me:p%40ss@10.0.0.5:27018/lab"
    assert tdb.seed_uri() == "mongodb://127.0.0.1:27017/tensordb"


def test_numpy_mlp_reports_training_accuracy():
    from tensordb_core.loop.numpy_mlp import NumpyMLP

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = NumpyMLP([4, 8, 2], lr=0.5)
    for _ in range(50):
        metrics = model.fit_batch(X, y)
    assert metrics["acc"] > 0.9 and metrics["acc"] == pytest.approx(model.evaluate(X, y)["acc"], abs=0.05)
