"""A handle for study A can neither read nor change study B's documents or blobs through any public method.

The public methods of :class:`TensorDB` are enumerated, and each must have an
entry in :data:`ATTACKS` — a new method without one fails
``test_every_public_method_is_exercised`` — that calls it from study A with
B's ids, documents, names and queries aimed at ``_study`` itself.  B's whole
state (documents of every collection, and the bytes of every blob it
references) is snapshotted before and compared after.

By design, and so not attacks: ``use_study(name)`` opens another study on
purpose, ``all_studies()`` is the explicit read-only cross-study view (its
writes are refused, tested here), and ``from_stores`` builds a handle from
stores.  The attributes ``index``/``blobs`` are the raw stores, below study
scoping.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import DocumentNotFound, TensorDBError
from tensordb_core.warehouse.maintenance import BLOB_FIELDS, keys_at

COLLECTIONS = ("data", "params", "models", "jobs", "logs", "aliases", "alias_history", "runs", "artifacts",
               "registered_models", "model_versions", "model_alias_history", "datasets", "dataset_members", "audit")
BY_DESIGN = {"use_study", "all_studies", "from_stores"}


class World:
    """Study B's ids and documents, and study A's handle to attack them with."""

    def __init__(self, a: tdb.TensorDB, b: tdb.TensorDB, tmp: Path) -> None:
        self.a, self.b, self.tmp = a, b, tmp
        X = np.arange(40, dtype=np.float32).reshape(10, 4)
        self.b_data = b.import_data(X, np.arange(10), {"owner": "B", "split": "train"})
        b.save_model_architecture('{"builder": "numpy-mlp"}', tags={"name": "net", "owner": "B"})
        self.b_param = b.save_parameters({"w": X}, metrics={"acc": 0.99}, tags={"owner": "B"})
        self.b_param_doc = b.find_parameter_docs({"_id": self.b_param})[0]
        b.set_alias("production", self.b_param)
        self.b_job = b.push_job({"train": "B"}, tags={"owner": "B"})
        b.train_log({"loss": 0.1}, step=1, owner="B")
        b.flush()
        with b.start_run("B's run", params={"owner": "B"}, tags={"owner": "B"}) as run:
            run.log_metrics({"acc": 0.99})
            run.log_text("B's notes", "notes.txt")
        self.b_run = run.id
        b.register_model("net", self.b_param)
        b.set_model_alias("net", "production", 1)
        b.save_dataset("b-set", {"owner": "B"})
        a.import_data(X[:3] + 100, np.arange(3), {"owner": "A"})
        self.a_param = a.save_parameters({"w": X[:2]}, metrics={"acc": 0.5})

    def snapshot(self) -> Any:
        """Every document of study B and the bytes of every blob they reference."""
        docs = {c: sorted(repr(sorted(d.items())) for d in self.b.index.find(c, {"_study": "B"})) for c in COLLECTIONS}
        keys = {k for c, paths in BLOB_FIELDS.items() for d in self.b.index.find(c, {"_study": "B"})
                for p in paths for k in keys_at(d, p)}
        return docs, {k: self.b.blobs.get(k) for k in sorted(keys)}


SNEAKY = [{"_study": "B"}, {"$or": [{"_study": "B"}, {"owner": "B"}]}, {"owner": "B"}, {"_study": {"$ne": "A"}},
          {"_study": {"$in": ["A", "B"]}}, {"$nor": [{"_study": "A"}]}]


def sees_nothing_of_b(docs: list[dict[str, Any]]) -> None:
    assert all(d.get("_study") == "A" and d.get("owner") != "B" for d in docs), docs


def _import(w: World) -> None:
    w.a.import_data(np.ones((2, 4), np.float32), tags={"owner": "A"})


def _import_records(w: World) -> None:
    w.a.import_records([{"x": np.ones(2, np.float32), "owner": "A"}], tags={"split": "train"})


def _find_data(w: World) -> None:
    for q in [*SNEAKY, {"_id": {"$in": w.b_data}}]:
        sees_nothing_of_b(list(w.a.find_data(q)))
        assert len(w.a.find_data(q)) == len(list(w.a.find_data(q)))


def _data_generator(w: World) -> None:
    for q in SNEAKY:
        for xb, _ in w.a.data_generator(q, batch_size=4, shuffle=False, epochs=1):
            assert (xb >= 100).all(), "a sample of B was streamed"


def _save_arch(w: World) -> None:
    w.a.save_model_architecture('{"builder": "numpy-mlp"}', tags={"name": "net"})


def _find_arch(w: World) -> None:
    for q in [*SNEAKY, {"name": "net", "owner": "B"}]:
        _, doc = w.a.find_model_architecture(q)
        assert doc is None or doc["_study"] == "A"


def _save_params(w: World) -> None:
    w.a.save_parameters({"w": np.zeros(3)}, metrics={"acc": 0.1})


def _save_parameter(w: World) -> None:
    w.a.save_parameter({"w": np.zeros(3)}, {"acc": 0.2})


def _find_params(w: World) -> None:
    for q in [*SNEAKY, {"_id": w.b_param}]:
        _, doc = w.a.find_parameters(q)
        assert doc is None or doc["_study"] == "A"


def _best(w: World) -> None:
    for q in [None, *SNEAKY]:
        _, doc = w.a.best_parameters("acc", query=q)
        assert doc is None or doc["_id"] != w.b_param


def _record_metrics(w: World) -> None:
    with pytest.raises(DocumentNotFound):
        w.a.record_metrics(w.b_param, {"acc": 0.0})


def _find_param_docs(w: World) -> None:
    for q in [*SNEAKY, {"_id": w.b_param}]:
        sees_nothing_of_b(w.a.find_parameter_docs(q))


def _load(w: World) -> None:
    forged = {**w.b_param_doc, "_study": "A"}
    for doc in (w.b_param_doc, forged, w.b_param, {**w.a.find_parameter_docs({"_id": w.a_param})[0],
                                                    "_blob": w.b_param_doc["_blob"]}):
        try:
            arrays = w.a.load_parameters(doc)
        except TensorDBError:
            continue
        assert arrays["w"].shape == (2, 4), "B's parameters were loaded through A"


def _set_alias(w: World) -> None:
    w.a.set_alias("production", w.a_param)


def _get_alias(w: World) -> None:
    assert w.a.get_alias("production") in (None, w.a_param)


def _alias_history(w: World) -> None:
    sees_nothing_of_b(w.a.alias_history("production"))


def _push(w: World) -> None:
    w.a.push_job({"train": "A"})


def _pop(w: World) -> None:
    for q in [None, *SNEAKY, {"_id": w.b_job}]:
        while (job := w.a.pop_job(q, lease_s=60)) is not None:
            assert job.doc["_study"] == "A"
            job.complete()


def _find_jobs(w: World) -> None:
    for q in [*SNEAKY, {"_id": w.b_job}]:
        sees_nothing_of_b(w.a.find_jobs(q))


def _logs(w: World) -> None:
    w.a.log("train", {"loss": 9.0}, 1, owner="B")
    w.a.train_log({"loss": 9.0}, step=1, owner="B")
    w.a.valid_log({"acc": 0.0}, step=1)
    w.a.test_log({"acc": 0.0})
    w.a.flush()
    sees_nothing_of_b([{**d, "owner": None} for d in w.a.find_logs()])


def _find_logs(w: World) -> None:
    for kind in (None, "train"):
        for q in SNEAKY:
            sees_nothing_of_b(w.a.find_logs(kind, q))


def _lineage(w: World) -> None:
    for q in SNEAKY:
        for _ in w.a.data_generator(q, batch_size=4, shuffle=False, epochs=1):
            pass
        lineage = w.a.current_lineage()
        assert lineage["data"]["count"] == len(w.a.find_data(q)), "the data snapshot counted B's samples"


def _data_snapshot(w: World) -> None:
    before = w.a.data_snapshot()
    w.a.use_study("C").import_data(np.zeros((3, 4), np.float32))  # another study's imports must not show through
    assert w.a.data_snapshot() == before == max(d["_seq"] for d in w.a.find_data({}))
    for xb, _ in w.a.data_generator({}, batch_size=4, shuffle=False, as_of=before):
        assert (xb >= 100).all(), "a sample of B was streamed"


def _index_tags(w: World) -> None:
    with pytest.raises(TensorDBError):
        w.a.index_tags("_study")  # a system field is no tag
    assert w.a.index_tags("owner", "split") == ["owner", "split"]
    assert len(w.a.find_data({"owner": "B"})) == 0 and len(w.a.find_data({"split": "train"})) == 0
    for _ in w.a.data_generator({"owner": "B"}, batch_size=4, shuffle=False):
        raise AssertionError("a sample of B was streamed through an indexed tag")


def _runs(w: World) -> None:
    with w.a.start_run("A", params={"owner": "A"}) as run:
        assert w.a.active_run() is run
        run.log_metrics({"acc": 0.1})
        run.set_tags({"owner": "A"})
        run.log_text("A's notes", "notes.txt")
    w.a.start_run("A2")
    w.a.end_run("failed")
    with pytest.raises(DocumentNotFound):
        w.a.get_run(w.b_run)
    for q in [None, *SNEAKY, {"_id": w.b_run}, {"params.owner": "B"}]:
        assert all(d["_study"] == "A" for d in w.a.search_runs(q))


def _artifacts(w: World) -> None:
    assert w.a.list_artifacts(w.b_run) == []
    with pytest.raises(DocumentNotFound):
        w.a.load_artifact(w.b_run, "notes.txt")


def _registry(w: World) -> None:
    with pytest.raises(DocumentNotFound):
        w.a.register_model("net", w.b_param)
    with pytest.raises(DocumentNotFound):
        w.a.get_model_version("net", 1)
    with pytest.raises(DocumentNotFound):
        w.a.set_model_alias("net", "production", 1)
    with pytest.raises(DocumentNotFound):
        w.a.load_model("net", alias="production")
    assert w.a.list_models() == [] and w.a.list_model_versions("net") == [] and w.a.model_alias_history("net") == []
    assert w.a.register_model("net", w.a_param) == 1, "A's numbering is its own"
    w.a.set_model_alias("net", "production", 1)
    assert w.a.load_model("net", alias="production")["w"].shape == (2, 4)


def _lifecycle(w: World) -> None:
    """Deletes, relabels and dataset versions of A reach none of B's documents, whatever the query says."""
    for i, q in enumerate([*SNEAKY, {"_id": {"$in": w.b_data}}]):
        w.a.save_dataset(f"a{i}", q)
        sees_nothing_of_b(list(w.a.find_data(dataset=f"a{i}")))
        w.a.update_data(q, {"$set": {"owner": "A"}})
        w.a.delete_data(q)
        w.a.delete_logs(None, q)
        w.a.delete_jobs(q)
        w.a.delete_model_architectures(q)
        w.a.delete_parameters(q)
    assert w.a.delete_parameters({"_id": w.b_param}) == 0
    with pytest.raises(TensorDBError):
        w.a.update_data({}, {"$set": {"_study": "B"}})
    assert "b-set" not in {d["name"] for d in w.a.list_datasets()}
    for read in (lambda: w.a.dataset_info("b-set"), lambda: w.a.drop_dataset("b-set"),
                 lambda: w.a.find_data(dataset="b-set"), lambda: w.a.data_generator(dataset="b-set")):
        with pytest.raises(TensorDBError):
            read()


def _export(w: World) -> None:
    """An export of A holds A's samples only, whatever the query says; B's version cannot be named."""
    import pyarrow.parquet as pq

    out = w.tmp / "a-export"
    out.mkdir()
    for i, q in enumerate(SNEAKY):
        try:
            w.a.export_data(out / f"{i}.parquet", q, format="parquet")
        except DocumentNotFound:
            continue  # nothing of A's matched: nothing written
        assert all(owner == "A" for owner in pq.read_table(out / f"{i}.parquet").column("owner").to_pylist())
    with pytest.raises(TensorDBError):
        w.a.export_data(out / "b-set.parquet", dataset="b-set", format="parquet")
    assert not (out / "b-set.parquet").exists()


def _close(w: World) -> None:
    pass  # exercised last by the fixture (and closing a handle cannot reach another study's documents)


ATTACKS: dict[str, Callable[[World], None]] = {
    "import_data": _import, "import_records": _import_records, "find_data": _find_data, "data_generator": _data_generator,
    "save_model_architecture": _save_arch, "find_model_architecture": _find_arch,
    "save_parameters": _save_params, "save_parameter": _save_parameter, "find_parameters": _find_params,
    "best_parameters": _best, "record_metrics": _record_metrics, "find_parameter_docs": _find_param_docs,
    "load_parameters": _load, "set_alias": _set_alias, "get_alias": _get_alias, "alias_history": _alias_history,
    "push_job": _push, "pop_job": _pop, "find_jobs": _find_jobs, "log": _logs, "train_log": _logs,
    "valid_log": _logs, "test_log": _logs, "find_logs": _find_logs, "flush": _logs, "close": _close,
    "current_lineage": _lineage, "data_snapshot": _data_snapshot, "index_tags": _index_tags,
    "start_run": _runs, "end_run": _runs, "active_run": _runs, "get_run": _runs, "search_runs": _runs,
    "list_artifacts": _artifacts, "load_artifact": _artifacts, "register_model": _registry,
    "get_model_version": _registry, "list_models": _registry, "list_model_versions": _registry,
    "set_model_alias": _registry, "model_alias_history": _registry, "load_model": _registry,
    "delete_data": _lifecycle, "update_data": _lifecycle, "delete_parameters": _lifecycle, "delete_logs": _lifecycle,
    "delete_jobs": _lifecycle, "delete_model_architectures": _lifecycle, "save_dataset": _lifecycle,
    "list_datasets": _lifecycle, "dataset_info": _lifecycle, "drop_dataset": _lifecycle, "export_data": _export,
}


@pytest.fixture(params=["memory", "dir"])
def world(request: pytest.FixtureRequest, tmp_path) -> Iterator[World]:
    uri = f"memory://iso-{uuid.uuid4().hex}" if request.param == "memory" else str(tmp_path / "w")
    with tdb.connect(uri, study="B") as b, tdb.connect(uri, study="A") as a:
        yield World(a, b, tmp_path)


def test_every_public_method_is_exercised() -> None:
    public = {name for name, _ in inspect.getmembers(tdb.TensorDB) if not name.startswith("_")}
    missing = sorted(public - set(ATTACKS) - BY_DESIGN)
    assert missing == [], f"add an isolation check to ATTACKS for: {missing}"


@pytest.mark.parametrize("method", sorted(ATTACKS))
def test_study_a_cannot_read_or_change_study_b(world: World, method: str) -> None:
    before = world.snapshot()
    ATTACKS[method](world)
    assert world.snapshot() == before, f"{method} changed study B"


def test_the_cross_study_view_is_read_only(world: World) -> None:
    view = world.a.all_studies()
    assert {d["_study"] for d in view.find_data()} == {"A", "B"}
    before = world.snapshot()
    for write in (lambda: view.import_data(np.ones((1, 2))), lambda: view.push_job({}), lambda: view.pop_job(),
                  lambda: view.save_parameters({"w": np.ones(1)}), lambda: view.record_metrics(world.b_param, {"a": 1}),
                  lambda: view.set_alias("x", world.b_param), lambda: view.train_log({"l": 1.0}),
                  lambda: view.save_model_architecture("{}"), lambda: view.start_run(),
                  lambda: view.register_model("net", world.b_param),
                  lambda: view.set_model_alias("net", "production", 1)):
        with pytest.raises(TensorDBError):
            write()
    assert world.snapshot() == before
