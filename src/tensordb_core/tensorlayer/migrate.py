"""``tensordb migrate tensorlayer``: a MongoDB database TensorLayer 1.x/2.x wrote, into any warehouse.

What is read: the collections TensorLayer wrote (``Params``, ``TrainLog``,
``ValidLog``, ``TestLog``, ``march``, ``Job``, ``JOBS``, ``Model``,
``Dataset``, ``Task``) and the GridFS buckets their documents point into
(``paramsfs``, ``ModelArchitecture``, ``modelfs``, ``datasetFilesystem``).
Each document lands in the study named by its ``studyID``/``project_name``,
stored exactly as :class:`~tensordb_core.tensorlayer.TensorDB` and
:class:`~tensordb_core.tensorlayer.TensorHub` store it, so those classes,
the main API and the CLI read it.

Guarantees
----------
* **No code runs.** Pickled parameters and datasets go through
  :func:`~tensordb_core.tensorlayer.pickles.load_arrays` only; a document
  whose pickle names anything else is refused, named in the report, and the
  rest goes on.
* **Idempotent and resumable.** Every migrated document carries
  ``tl_source: "<collection>/<source _id>"``; one already at the destination
  is skipped, so a rerun finishes an interrupted migration and a second run
  writes nothing.  Blobs are written before their documents (the warehouse's
  own write path), so a crash leaves at most an orphan blob for ``tensordb gc``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    InvalidDocument,
    InvalidURI,
    MissingDependency,
    TensorDBError,
)
from tensordb_core.store.scope import check_json_value, check_study
from tensordb_core.store.uri import redact
from tensordb_core.tensorlayer.common import KIND, split_fields, take_step, weights_of
from tensordb_core.tensorlayer.pickles import load_arrays
from tensordb_core.tensorlayer.tensordb import write_log
from tensordb_core.tensorlayer.tensorhub import TASK_STATES, dataset_arrays
from tensordb_core.warehouse import jobs, logs, models, params
from tensordb_core.warehouse.handle import TensorDB as Warehouse
from tensordb_core.warehouse.handle import connect

#: Source collections in migration order: architectures and parameters before the 1.x jobs that name them.
COLLECTIONS = ("march", "Params", "Job", "JOBS", "TrainLog", "ValidLog", "TestLog", "Model", "Dataset", "Task")
LOG_KINDS = {"TrainLog": "train", "ValidLog": "valid", "TestLog": "test"}
#: Where a migrated document goes, per source collection (for the report and the idempotence check).
TARGET = {"march": models.COLLECTION, "Job": models.COLLECTION, "Params": params.COLLECTION,
          "Model": params.COLLECTION, "Dataset": params.COLLECTION, "JOBS": jobs.COLLECTION,
          "Task": jobs.COLLECTION, **{c: logs.COLLECTION for c in LOG_KINDS}}
#: Studyless documents (TensorLayer always wrote one, but a hand-edited database may not) land here.
FALLBACK_STUDY = "tensorlayer"
SOURCE = "tl_source"
FILE = "tl_file"


@dataclass
class MigrationReport:
    """Per source collection: documents migrated, skipped (already there) and refused (with the reason)."""

    migrated: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def summary(self) -> str:
        names = [c for c in COLLECTIONS if c in self.migrated or c in self.skipped]
        lines = [f"{c}: {self.migrated.get(c, 0)} migrated, {self.skipped.get(c, 0)} skipped (already there)"
                 for c in names]
        lines.append(f"studies: {', '.join(sorted(self.studies)) or '-'}; refused: {len(self.refused)}; "
                     f"{self.seconds:.1f}s")
        lines += [f"refused {where}: {why.removeprefix(where + ': ')}" for where, why in self.refused]
        return "\n".join(lines)


def migrate_tensorlayer(src_uri: str, dst_uri: str, *, study: str | None = None, dst_blobs: str | None = None,
                        progress: Callable[[str, int, int], None] | None = None) -> MigrationReport:
    """Migrate the TensorLayer database at ``src_uri`` (``mongodb://host/db``) into the warehouse at ``dst_uri``.

    ``study`` limits it to one ``studyID``/``project_name``.  ``progress`` is
    called ``(collection, done, total)`` after every document.
    """
    started = time.monotonic()
    source = _open_source(src_uri)
    report = MigrationReport()
    try:
        with connect(dst_uri, study or FALLBACK_STUDY, blobs=dst_blobs) as root:
            handles: dict[str, Warehouse] = {}
            where = {} if study is None else {"$or": [{"studyID": study}, {"project_name": study}]}
            totals = {c: _count(source, c, where) for c in COLLECTIONS}
            total, done = sum(totals.values()), 0
            try:
                for name in COLLECTIONS:
                    for doc in _documents(source, name, where):
                        label = f"{name}/{doc.get('_id')}"
                        try:
                            db = _handle(root, handles, doc)
                            if _present(db, name, label):
                                report.skipped[name] = report.skipped.get(name, 0) + 1
                            else:
                                MIGRATORS[name](source, db, name, doc, label)
                                report.migrated[name] = report.migrated.get(name, 0) + 1
                            report.studies.add(db.study or "")
                        except BackendError:
                            raise
                        except TensorDBError as exc:  # this document cannot be stored: report it, go on
                            report.refused.append((label, str(exc)))
                        done += 1
                        if progress is not None:
                            progress(name, done, total)
            finally:  # an interrupted run keeps what it wrote, so the rerun skips it
                for db in handles.values():
                    db.flush()
    finally:
        source.client.close()
    report.seconds = time.monotonic() - started
    return report


# -- the source --------------------------------------------------------------------------------------
def _open_source(uri: str) -> Any:
    """The source database, from a ``mongodb://`` URI that names it; driver errors become typed errors."""
    try:
        import gridfs  # noqa: F401 - checked here so a missing extra is reported before any work
        import pymongo
        from pymongo.errors import ConfigurationError, PyMongoError
    except ModuleNotFoundError as exc:
        raise MissingDependency("migrating from TensorLayer reads MongoDB: pip install 'tensordb[tensorlayer]'") \
            from exc
    if not isinstance(uri, str) or not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise InvalidURI("the TensorLayer source must be a MongoDB URI (scheme mongodb or mongodb+srv) "
                         "whose path names the database TensorLayer wrote (its db_name)")
    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        db = client.get_default_database()
    except ConfigurationError as exc:
        raise InvalidURI(f"name the TensorLayer database in the source URI's path (host:port/db_name): "
                         f"{type(exc).__name__}") from exc
    except PyMongoError as exc:
        raise BackendUnavailable(f"cannot open the source at {_host(uri)}: {type(exc).__name__}") from exc
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        raise BackendUnavailable(f"cannot reach the source at {_host(uri)}: {type(exc).__name__}") from exc
    return db


def _host(uri: str) -> str:
    """The host part of a source URI, without credentials (and without '://', which the CLI would re-redact)."""
    return redact(uri).split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]


def _count(source: Any, name: str, where: Mapping[str, Any]) -> int:
    from pymongo.errors import PyMongoError

    try:
        return source[name].count_documents(dict(where))
    except PyMongoError as exc:
        raise BackendError(f"cannot count {name} in the source: {type(exc).__name__}: {exc}") from exc


def _documents(source: Any, name: str, where: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The source documents in insertion (``_id``) order, so 'oldest first' stays true at the destination."""
    from pymongo.errors import PyMongoError

    try:
        yield from source[name].find(dict(where), sort=[("_id", 1)], batch_size=100)
    except PyMongoError as exc:
        raise BackendError(f"cannot read {name} from the source: {type(exc).__name__}: {exc}") from exc


def _file(source: Any, bucket: str, file_id: Any, label: str) -> bytes:
    import gridfs

    try:
        return gridfs.GridFS(source, collection=bucket).get(file_id).read()
    except gridfs.errors.NoFile as exc:
        raise InvalidDocument(f"its file {file_id} is missing from the GridFS bucket {bucket!r}") from exc


# -- the destination -----------------------------------------------------------------------------------
def _handle(root: Warehouse, handles: dict[str, Warehouse], doc: Mapping[str, Any]) -> Warehouse:
    study = doc.get("studyID") or doc.get("project_name") or FALLBACK_STUDY
    if study not in handles:
        handles[study] = root if study == root.study else root.use_study(check_study(str(study)))
    return handles[study]


def _present(db: Warehouse, name: str, label: str) -> bool:
    if name in LOG_KINDS:
        db.flush()
    return db.index.count(TARGET[name], db.scope.query({SOURCE: label})) > 0


def _fields(doc: Mapping[str, Any], label: str, drop: tuple[str, ...]) -> dict[str, Any]:
    """The document's own fields as storable tags: BSON ids as strings, everything else as it is."""
    out = {SOURCE: label}
    for key, value in doc.items():
        if key not in drop and key not in ("_id", "studyID", "project_name"):
            out[key] = _plain(value, f"{label}.{key}")
    return out


def _plain(value: Any, where: str) -> Any:
    from bson import Decimal128, ObjectId

    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return float(value.to_decimal())
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, bytes):
        raise InvalidDocument(f"{where} holds raw bytes, which a tag cannot store")
    return value


def _save_arrays(db: Warehouse, arrays: Any, tags: dict[str, Any]) -> str:
    tags, metrics = split_fields(tags)
    step = take_step(tags)
    return db.save_parameters(arrays, metrics, tags, step=step)


def _text(data: bytes, label: str) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"its code is not UTF-8 text ({exc})") from exc


def _params(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    arrays = weights_of(load_arrays(_file(source, "paramsfs", doc.get("f_id"), label), label))
    _save_arrays(db, arrays, {**_fields(doc, label, ("f_id",)), FILE: str(doc.get("f_id"))})


def _march(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    code = _text(_file(source, "ModelArchitecture", doc.get("fid"), label), label)
    db.save_model_architecture(code, {**_fields(doc, label, ("fid",)), FILE: str(doc.get("fid"))})


def _saved_job(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    code = _text(doc.get("script") or b"", label)
    models.save_model_architecture(db.scope, code, {**_fields(doc, label, ("script",)), KIND: "job"})


def _queued_job(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    def migrated(collection: str, file_id: Any) -> str | None:
        for found in db.index.find(collection, db.scope.query({FILE: str(file_id)}), limit=1, projection={"_id": 1}):
            return found["_id"]
        return None

    spec = {"model": migrated(models.COLLECTION, doc.get("model")),
            "weight": migrated(params.COLLECTION, doc.get("weight")),
            "dargs": _plain(doc.get("dargs"), f"{label}.dargs"), "epoch": _plain(doc.get("epoch"), f"{label}.epoch")}
    # the jobs module checks the spec (check_json_value) as for any pushed job
    jid = db.push_job(spec, _fields(doc, label, ("model", "weight", "dargs", "epoch")))
    status = "done" if doc.get("Finished") else "running" if doc.get("Running") else "queued"
    if status != "queued":
        db.index.update_many(jobs.COLLECTION, db.scope.query({"_id": jid}), {"$set": {"status": status}})


def _log(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    write_log(db, LOG_KINDS[name], _fields(doc, label, ()))


def _model(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    arrays = weights_of(load_arrays(_file(source, "modelfs", doc.get("params_id"), label), label))
    _save_arrays(db, arrays, {**_fields(doc, label, ("params_id",)), KIND: "model"})


def _dataset(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    data = load_arrays(_file(source, "datasetFilesystem", doc.get("dataset_id"), label), label)
    arrays, shape = dataset_arrays(data)
    _save_arrays(db, arrays, {**_fields(doc, label, ("dataset_id",)), KIND: "dataset", "tl_shape": shape})


def _task(source: Any, db: Warehouse, name: str, doc: Mapping[str, Any], label: str) -> None:
    code = _text(doc.get("script") or b"", label)
    tags = {**_fields(doc, label, ("script", "status", "result")), KIND: "task"}
    jid = db.push_job({"script": code, "script_name": None}, tags)
    status = TASK_STATES.get(str(doc.get("status")), "queued")
    update: dict[str, Any] = {"status": status}
    if doc.get("result"):
        update["result"] = check_json_value(_plain(doc["result"], f"{label}.result"), f"{label}.result")
    if status != "queued" or "result" in update:
        db.index.update_many(jobs.COLLECTION, db.scope.query({"_id": jid}), {"$set": update})


MIGRATORS: dict[str, Callable[[Any, Warehouse, str, Mapping[str, Any], str], None]] = {
    "march": _march, "Params": _params, "Job": _saved_job, "JOBS": _queued_job, "Model": _model,
    "Dataset": _dataset, "Task": _task, **{c: _log for c in LOG_KINDS},
}
