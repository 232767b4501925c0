"""Registered models: numbered versions (atomic under concurrency), aliases with history, lineage, load."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import DocumentNotFound, InvalidDocument


def test_versions_aliases_lineage_and_load(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    arch = db.save_model_architecture('{"builder": "numpy-mlp"}', tags={"name": "mlp"})
    db.find_model_architecture({"name": "mlp"})
    with db.start_run("train", params={"lr": 0.1}) as run:
        p1 = db.save_parameters({"w": np.zeros(3)}, metrics={"acc": 0.5})
        p2 = db.save_parameters({"w": np.ones(3)}, metrics={"acc": 0.9})
    assert db.register_model("digits", p1, description="first") == 1
    assert db.register_model("digits", p2) == 2
    v2 = db.get_model_version("digits", 2)
    assert (v2["param_id"], v2["run"], v2["arch"], v2["metrics"]) == (p2, run.id, arch, {"acc": 0.9})
    assert db.set_model_alias("digits", "production", 1) is None
    assert db.set_model_alias("digits", "production", 2) == 1
    np.testing.assert_array_equal(db.load_model("digits", alias="production")["w"], np.ones(3))
    np.testing.assert_array_equal(db.load_model("digits", version=1)["w"], np.zeros(3))
    np.testing.assert_array_equal(db.load_model("digits")["w"], np.ones(3))
    [model] = db.list_models()
    assert (model["name"], model["latest_version"], model["aliases"], model["description"]) == \
        ("digits", 2, {"production": 2}, "first")
    assert [d["version"] for d in db.list_model_versions("digits")] == [1, 2]
    assert [(h["previous"], h["version"]) for h in db.model_alias_history("digits", "production")] == \
        [(None, 1), (1, 2)]
    for bad in (lambda: db.load_model("digits", alias="staging"), lambda: db.get_model_version("digits", 3),
                lambda: db.load_model("nope"), lambda: db.set_model_alias("digits", "staging", 7)):
        with pytest.raises(DocumentNotFound):
            bad()
    with pytest.raises(InvalidDocument):
        db.load_model("digits", alias="production", version=1)


def test_concurrent_registrations_get_distinct_versions(tracking_uri: str) -> None:
    with tdb.connect(tracking_uri, study="s1") as db:
        pid = db.save_parameters({"w": np.ones(2)})
    got: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            with tdb.connect(tracking_uri, study="s1") as mine:
                for _ in range(5):
                    got.append(mine.register_model("race", pid))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == list(range(1, 21))


def test_bad_registrations_write_nothing(tracking_uri: str) -> None:
    with tdb.connect(tracking_uri, study="a") as a, tdb.connect(tracking_uri, study="b") as b:
        theirs = a.save_parameters({"w": np.ones(2)})
        mine = b.save_parameters({"w": np.ones(2)})
        with pytest.raises(DocumentNotFound):
            b.register_model("stolen", theirs)
        for name in ("", "a@prod", "../x", "a b", None):
            with pytest.raises(InvalidDocument):
                b.register_model(name, mine)
        assert b.list_models() == [] and a.list_models() == []
        b.register_model("ok", mine)
        with pytest.raises(InvalidDocument):
            b.set_model_alias("ok", "bad.alias", 1)
        with pytest.raises(InvalidDocument):
            b.get_model_version("ok", "1")
        assert a.list_models() == [] and b.model_alias_history("ok") == []
        with pytest.raises(DocumentNotFound):
            a.load_model("ok")
