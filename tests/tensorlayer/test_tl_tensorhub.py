"""TensorLayer 2.x's ``TensorHub`` as its users called it, on the embedded store and on MongoDB."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from tensordb_core.errors import InvalidDocument, UnsafeOperation
from tensordb_core.tensorlayer import TensorHub
from tensordb_core.tensorlayer.common import StoredModel

W = [np.ones((3, 2), dtype=np.float32), np.arange(2, dtype=np.float32)]


class Net:
    """What TensorLayer 2.x's save_model reads from a network: all_weights and config."""

    def __init__(self, scale: float = 1.0) -> None:
        self.all_weights = [w * scale for w in W]
        self.config = {"name": "mlp", "layers": [{"class": "Dense", "n_units": 2}]}


@pytest.fixture
def hub(tl_uri: str):
    with TensorHub(project_name="mnist-proj", uri=tl_uri) as db:
        yield db


def test_models_save_find_sort_delete(hub: TensorHub) -> None:
    assert hub.save_model(Net(), accuracy=0.8, loss=2.3, name="first") is True
    assert hub.save_model(Net(2.0), accuracy=0.9, loss=1.1, name="second") is True
    assert hub.save_model(W, model_name="other", accuracy=0.1) is True  # a plain list is a network too
    net = hub.find_top_model(accuracy=0.8, loss=2.3)
    assert isinstance(net, StoredModel) and net._name == "first" and net._accuracy == 0.8
    assert net.config == Net().config and all(np.array_equal(a, b) for a, b in zip(net.all_weights, W))
    assert isinstance(net._time, datetime)
    assert hub.find_top_model(sort=[("time", -1)])._name == "second"
    assert hub.find_top_model(sort=[("accuracy", 1)])._name == "first"
    assert hub.find_top_model(object(), accuracy=0.9)._name == "second"  # 1.10's find_top_model(sess, ...)
    assert hub.find_top_model(accuracy=0.5) is False
    assert [m._name for m in hub.find_models()] == ["first", "second"]
    assert hub.db.best_parameters("accuracy")[1]["name"] == "second"  # visible through the main API
    hub.delete_model(name="first")
    assert hub.find_top_model(name="first") is False and hub.find_top_model(model_name="other") is not False
    hub.delete_model()
    assert hub.find_models(model_name="other") == []


def test_datasets_come_back_in_their_container(hub: TensorHub) -> None:
    X, y = np.random.default_rng(0).random((5, 4)), np.arange(5)
    assert hub.save_dataset([X, y, X[:2], y[:2]], "mnist", description="a tutorial") is True
    hub.save_dataset((X, y), "mnist", version=2)
    hub.save_dataset({"X": X}, "dict-set")
    hub.save_dataset(X, "plain")
    first = hub.find_top_dataset("mnist")
    assert isinstance(first, list) and len(first) == 4 and np.array_equal(first[0], X)
    assert isinstance(hub.find_top_dataset("mnist", version=2), tuple)
    assert np.array_equal(hub.find_top_dataset("dict-set")["X"], X)
    assert np.array_equal(hub.find_top_dataset("plain"), X)
    assert len(hub.find_datasets("mnist")) == 2 and hub.find_datasets("none") == []
    assert hub.find_top_dataset("none") is False
    hub.delete_datasets(dataset_name="mnist")
    assert hub.find_datasets("mnist") == [] and hub.find_top_dataset("plain") is not False
    with pytest.raises(InvalidDocument):
        hub.save_dataset([X], None)
    with pytest.raises(InvalidDocument):
        hub.save_dataset("not arrays", "bad")


def test_logs_are_warehouse_logs(hub: TensorHub) -> None:
    hub.save_training_log(accuracy=0.33, loss=0.98)
    hub.save_training_log(accuracy=0.44, loss=0.5)
    hub.save_validation_log(accuracy=0.4)
    hub.save_testing_log(accuracy=0.41)
    train = hub.db.find_logs("train")
    assert [r["metrics"]["accuracy"] for r in train] == [0.33, 0.44] and "time" in train[0]
    hub.delete_training_log(accuracy=0.33)
    assert [r["accuracy"] for r in hub.db.find_logs("train")] == [0.44]
    hub.delete_validation_log()
    hub.delete_testing_log()
    hub.delete_training_log()
    assert hub.db.find_logs() == []


def test_tasks_run_only_when_trusted(hub: TensorHub, tmp_path) -> None:
    script = tmp_path / "task.py"
    script.write_text("import numpy as np\nresult_acc = float(lr * 2)\nweights = np.ones(2)\n")
    hub.create_task("mnist", str(script), {"lr": 0.25}, ["result_acc", "weights"], description="simple")
    hub.create_task("mnist", str(script), {"lr": 0.5}, ["result_acc"])
    assert hub.check_unfinished_task("mnist") is True
    with pytest.raises(UnsafeOperation, match="trusted=True"):
        hub.run_top_task("mnist")
    assert hub.check_unfinished_task("mnist") is True  # refusing consumed nothing
    assert hub.run_top_task("mnist", sort=[("time", -1)], trusted=True) is True
    done = hub.db.find_jobs({"status": "done"})
    assert done[0]["result"] == {"result_acc": 1.0} and done[0]["hyper_parameters"] == {"lr": 0.5}
    assert hub.run_top_task("mnist", trusted=True) is True
    assert hub.run_top_task("mnist", trusted=True) is False
    assert hub.check_unfinished_task("mnist") is False
    assert hub.db.find_jobs({"result.weights": [1.0, 1.0]})
    hub.delete_tasks(task_name="mnist")
    assert hub.db.find_jobs() == []


def test_a_failing_task_is_recorded_and_raises(hub: TensorHub, tmp_path) -> None:
    script = tmp_path / "boom.py"
    script.write_text("raise RuntimeError('boom')\n")
    hub.create_task("boom", str(script))
    with pytest.raises(RuntimeError, match="boom"):
        hub.run_top_task("boom", trusted=True)
    (job,) = hub.db.find_jobs({"task_name": "boom"})
    assert job["status"] == "dead" and "boom" in job["errors"][-1]["error"]
    assert hub.check_unfinished_task("boom") is False


def test_typed_errors_for_bad_input(hub: TensorHub, tmp_path) -> None:
    with pytest.raises(InvalidDocument):
        hub.save_model(None)
    with pytest.raises(InvalidDocument):
        hub.create_task(None, "x.py")
    with pytest.raises(InvalidDocument):
        hub.create_task("t", str(tmp_path / "missing.py"))
    with pytest.raises(InvalidDocument):
        hub.check_unfinished_task(None)
    assert "*******" in str(hub) and "mnist-proj" in str(hub)


@pytest.mark.mongo
def test_without_uri_it_connects_to_mongodb_like_the_original(mongo_server, mongo_db_name, raw_db) -> None:
    with TensorHub(ip="127.0.0.1", port=mongo_server.port, dbname=mongo_db_name, project_name="p") as hub:
        hub.save_training_log(accuracy=0.5)
        assert hub.save_model(W, accuracy=0.5) is True
    assert raw_db["logs"].count_documents({"_study": "p", "accuracy": 0.5}) == 1
    assert raw_db["params"].count_documents({"_study": "p", "tl_kind": "model"}) == 1
