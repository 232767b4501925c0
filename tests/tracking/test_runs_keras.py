"""The Keras 3 callback with the real library (torch backend, CPU): batches, epochs, weights, a run."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras

import tensordb_core as tdb
from tensordb_core.integrations.keras import TensorDBCallback, load_weights, weights_of


def _model() -> object:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_logs_batches_and_epochs_and_saves_weights(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = _model()
    callback = TensorDBCallback(db, run_name="keras", params={"hidden": 8})
    model.fit(X, y, batch_size=16, epochs=3, validation_split=0.25, callbacks=[callback], verbose=0)
    run = db.get_run(callback.run.id)
    assert run["status"] == "finished" and db.active_run() is None
    assert run["params"]["epochs"] == 3 and run["params"]["learning_rate"] == pytest.approx(0.1)
    assert run["params"]["optimizer"] == "SGD" and run["params"]["hidden"] == 8
    assert {"loss", "accuracy", "epoch_loss", "valid_loss", "valid_accuracy"} <= set(run["metrics"])
    assert len(db.find_logs("train", {"run": run["_id"], "metrics.loss": {"$exists": True}})) == 3 * 3
    assert len(db.find_logs("valid", {"run": run["_id"]})) == 3
    assert len(callback.saved) == 3
    _, doc = db.best_parameters("val_accuracy")
    assert doc["lineage"]["run"] == run["_id"] and doc["epoch"] in (0, 1, 2)
    fresh = _model()
    load_weights(fresh, db.load_parameters(callback.saved[-1]))
    for mine, theirs in zip(weights_of(model).values(), weights_of(fresh).values()):
        np.testing.assert_array_equal(mine, theirs)
    assert db.register_model("keras-net", callback.saved[-1]) == 1


def test_fit_inside_an_active_run_logs_into_it(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    X = np.ones((8, 4), "float32")
    with db.start_run("outer") as run:
        model = _model()
        model.fit(X, np.zeros(8, "int64"), epochs=1, callbacks=[TensorDBCallback(db, save_every=0)], verbose=0)
        assert db.active_run() is run, "the callback does not end a run it did not start"
    assert db.get_run(run.id)["params"]["epochs"] == 1
    assert db.find_parameter_docs() == []
