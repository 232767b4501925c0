"""The seed document's examples (docs/tensorlayer.md), run as written apart from Python 3's ``exec(...)``."""

# The seed's code is kept as the seed wrote it: exec of code the test itself stored, unused fids, range(0, n).
# ruff: noqa: S102, RUF059, PIE808

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidDocument
from tensordb_core.store.scope import decode_datetimes, encode_datetime
from tensordb_core.tensorlayer import DBLogger, TensorDB

ARCHITECTURE = '''
import numpy as np

class model:
    """The seed's application Model: fit_generator(generator, logger, batch_size, epoch)."""

    def __init__(self):
        self.Params = [np.zeros((4, 2)), np.zeros(2)]

    def fit_generator(self, g, logger, batch_size, epoch):
        logger.on_train_begin()
        for e in range(epoch):
            logger.on_epoch_begin(e)
            for b, (X, y) in enumerate(g):
                logger.on_batch_begin(b)
                self.Params[0] += X.T[:, :2].mean()
                logger.on_batch_end(b, {"acc": np.float32(0.5 + e / 10), "loss": 1.0 / (e + 1)})
            logger.on_epoch_end(e, {"acc": np.float32(0.5 + e / 10)})
        logger.on_train_end()
'''


@pytest.fixture
def db(tl_uri: str):
    with TensorDB(ip="127.0.0.1", port=27017, db_name="your_db", user_name=None, password=None,
                  studyID="ministMLP", uri=tl_uri) as handle:
        yield handle


def test_log_and_parameters_as_the_seed_writes_them(db: TensorDB) -> None:
    ac = 0.0
    for epoch in range(0, 3):
        ac = 0.5 + epoch / 10
        db.train_log({"accuracy": ac})
    db.save_parameter([np.ones(3)], {"acc": ac})
    params, fid = db.find_one_params({"acc": ac})
    assert np.array_equal(params[0], np.ones(3)) and db.find_one_params({"acc": {"$gte": 0.7}})[1] == fid
    assert [r["accuracy"] for r in db.db.find_logs("train")] == [0.5, 0.6, 0.7]


def test_architecture_and_code_jobs_as_the_seed_writes_them(db: TensorDB, capsys) -> None:
    code = '''
print("hello")
'''
    db.save_model_architecutre(code, {'name': 'print'})
    c, fid = db.find_model_architecutre({'name': 'print'})
    exec(c)
    db.push_job(code, {'type': 'train'})
    # worker
    code = db.pop_job()
    exec(code)
    assert capsys.readouterr().out == "hello\nhello\n"
    assert db.pop_job() is None


def test_the_seed_worker_example(db: TensorDB) -> None:
    X, y = np.random.default_rng(0).random((16, 4)), np.arange(16) % 2
    db.import_data(X, y, {'type': 'train', 'imported': datetime(2024, 1, 1)})
    db.save_model_architecture(ARCHITECTURE, {'name': 'mlp'})
    db.push_job({'name': 'mlp'}, {'type': 'train'}, {'batch_size': 8, 'epoch': 2})

    # the worker, as the seed writes it
    j = db.pop_job()
    g = db.data_generator(j.filter, batch_size=j.batch_size, epochs=1)
    c, fid = db.load_model_architecutre(j.march)
    namespace: dict = {}
    exec(c, namespace)
    m = namespace["model"]()
    m.fit_generator(g, DBLogger(db, m), j.batch_size, j.epoch)

    assert len(db.db.find_logs("train")) == 2 and len(db.db.find_logs("valid")) == 2
    best, doc = db.db.best_parameters("acc")
    assert doc["epoch"] == 1 and best[0].shape == (4, 2)
    assert db.find_data({'imported': {'$lt': datetime(2025, 1, 1)}}) is not None
    assert len(db.find_data({'imported': datetime(2024, 1, 1)})) == 16


def test_the_main_api_accepts_datetimes_where_it_accepts_tags(tl_uri: str) -> None:
    when, aware = datetime(2024, 5, 1, 12, 30), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with tdb.connect(tl_uri, study="dt") as main:
        main.import_data(np.zeros((2, 2)), [0, 1], tags={"taken": when})
        pid = main.save_parameters([np.ones(2)], {"acc": 1.0}, tags={"saved": aware, "nested": {"at": [when]}})
        main.train_log({"loss": 1.0, "at": when}, note=aware)
        main.push_job({"run": 1}, tags={"due": when})
        doc = main.find_parameter_docs({"saved": {"$gte": when}})[0]
        assert doc["_id"] == pid and decode_datetimes(doc["saved"]) == aware
        assert decode_datetimes(doc["nested"]) == {"at": [when]}
        assert len(main.find_data({"taken": when})) == 2
        (log,) = main.find_logs("train", {"at": {"$lt": datetime(2030, 1, 1)}})
        assert log["metrics"] == {"loss": 1.0} and decode_datetimes(log["at"]) == when
        assert main.find_jobs({"due": when})
    assert encode_datetime(when) < encode_datetime(datetime(2024, 5, 1, 12, 30, 0, 1))  # string order is time order
    with pytest.raises(InvalidDocument):
        tdb.connect("memory://dt-bad", study="x").save_parameters([np.ones(1)], tags={"t": object()})
