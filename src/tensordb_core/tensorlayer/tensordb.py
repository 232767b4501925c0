"""TensorLayer 1.x's ``TensorDB`` (``tensorlayer/db.py``, 1.7-1.9) and its ``DBLogger``, on the warehouse.

Same constructor, method names, argument names and return shapes; "not
found" returns what the original returned (``(False, False)``, ``False``).
Storage is the warehouse's (see :mod:`tensordb_core.tensorlayer.common` for
how an argument dict maps onto a document), so parameters saved here are
found by ``db.best_parameters('acc')`` and logs show in ``tensordb logs``.
The seed document's names (``save_parameter``, ``push_job(code, tags)``,
``pop_job()``, ``import_data``, ``data_generator``, ``db.log``) work too.
Nothing stored is ever executed by this class.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import DocumentNotFound, InvalidDocument
from tensordb_core.store.scope import check_json_value
from tensordb_core.tensorlayer.common import (
    KIND,
    InsertResult,
    WarehouseBacked,
    as_array,
    delete,
    legacy_query,
    open_warehouse,
    public,
    split_fields,
    take_step,
    utcnow,
    weights_of,
)
from tensordb_core.tensorlayer.pickles import dump_arrays
from tensordb_core.warehouse import jobs, logs, models, params

#: Oldest first: what ``find_one`` without a sort returned on MongoDB (natural order).
OLDEST_FIRST = [("_seq", 1)]
_NOT_PARAMS = {KIND: {"$exists": False}}


def write_log(db: Any, kind: str, args: Mapping[str, Any] | None) -> InsertResult:
    """One old-style log record: every field a top-level tag, numbers also metrics, ``step`` the record's step."""
    tags, metrics = split_fields(args)
    step = take_step(tags)
    db.log(kind, metrics, step, **tags)
    return InsertResult()


def delete_logs(db: Any, kind: str, args: Mapping[str, Any] | None) -> int:
    """Delete this study's ``kind`` records matching an old query (buffered records are written first)."""
    db.flush()
    return delete(db.scope, logs.COLLECTION, {"$and": [{"kind": kind}, legacy_query(args)]})


class TensorDB(WarehouseBacked):
    """TensorLayer 1.x's ``TensorDB``: parameters, logs, architectures and jobs of one study (``studyID``).

    Without ``uri`` it connects to MongoDB at ``ip:port/db_name`` as the
    original did; ``uri=`` runs it on any warehouse backend.  ``db`` is the
    warehouse handle (the main API) of the same study.
    """

    def __init__(self, ip: str = "localhost", port: int = 27017, db_name: str = "db_name",
                 user_name: str | None = None, password: str | None = "password", studyID: str | None = None,
                 *, uri: str | None = None, **connect_kwargs: Any) -> None:
        self.studyID = str(uuid.uuid1()) if studyID is None else studyID
        self.ip, self.port, self.db_name, self.user_name = ip, port, db_name, user_name
        self.db = open_warehouse(uri, self.studyID, ip=ip, port=port, db_name=db_name, user_name=user_name,
                                 password=password, **connect_kwargs)
        self.scope = self.db.scope
        self.paramsfs = ParamsFS(self)

    def __str__(self) -> str:
        return f"[TensorDB] Info:\n    {self.db!r}"

    # -- parameters -------------------------------------------------------------------------------
    def save_params(self, params: Any = None, args: dict[str, Any] | None = None) -> str:
        """Save a list (or dict) of arrays with ``args`` as its fields; returns its id (the original's ``f_id``).

        Like the original, ``args`` gets ``studyID``, ``f_id`` and ``time`` added.
        """
        if args is None:
            args = {}
        args.update({"studyID": self.studyID, "time": utcnow()})
        tags, metrics = split_fields(args)
        step = take_step(tags)
        f_id = self.db.save_parameters(weights_of([] if params is None else params), metrics, tags, step=step)
        args["f_id"] = f_id
        return f_id

    def find_one_params(self, args: Mapping[str, Any] | None = None, sort: Any = None) -> tuple[Any, Any]:
        """``(params, f_id)`` of the first match (oldest unless ``sort``), or ``(False, False)``."""
        query = {"$and": [_NOT_PARAMS, legacy_query(args)]}
        found, doc = self.db.find_parameters(query, sort=sort or OLDEST_FIRST)
        if doc is None:
            return False, False
        return found, doc["_id"]

    def find_all_params(self, args: Mapping[str, Any] | None = None) -> list[Any]:
        """Every matching parameter set, oldest first (``[]`` when none matches, as the original)."""
        query = {"$and": [_NOT_PARAMS, legacy_query(args)]}
        return [self.db.load_parameters(doc) for doc in self.db.find_parameter_docs(query, sort=OLDEST_FIRST)]

    def del_params(self, args: Mapping[str, Any] | None = None) -> None:
        """Delete the matching parameter sets of this study (all of them with no ``args``).

        The arrays' blobs are shared by content address; ``tensordb gc`` removes those no document references.
        """
        delete(self.scope, params.COLLECTION, {"$and": [_NOT_PARAMS, legacy_query(args)]})

    # -- logs --------------------------------------------------------------------------------------
    def train_log(self, args: Mapping[str, Any] | None = None, **fields: Any) -> InsertResult:
        """Save a training record (``{'loss': .., 'acc': ..}``); its fields stay queryable at the top level."""
        return write_log(self.db, "train", {**(args or {}), **fields})

    def valid_log(self, args: Mapping[str, Any] | None = None, **fields: Any) -> InsertResult:
        """Save a validation record."""
        return write_log(self.db, "valid", {**(args or {}), **fields})

    def test_log(self, args: Mapping[str, Any] | None = None, **fields: Any) -> InsertResult:
        """Save a test record."""
        return write_log(self.db, "test", {**(args or {}), **fields})

    def log(self, args: Mapping[str, Any] | None = None, kind: str = "train", **fields: Any) -> InsertResult:
        """The seed's ``db.log({...})``: a training record unless ``kind`` says valid/test."""
        return write_log(self.db, kind, {**(args or {}), **fields})

    def del_train_log(self, args: Mapping[str, Any] | None = None) -> None:
        """Delete matching training records (all with no ``args``)."""
        delete_logs(self.db, "train", args)

    def del_valid_log(self, args: Mapping[str, Any] | None = None) -> None:
        """Delete matching validation records."""
        delete_logs(self.db, "valid", args)

    def del_test_log(self, args: Mapping[str, Any] | None = None) -> None:
        """Delete matching test records."""
        delete_logs(self.db, "test", args)

    # -- architectures -----------------------------------------------------------------------------
    def save_model_architecture(self, s: str | bytes, args: Mapping[str, Any] | None = None) -> str:
        """Save an architecture (code or config, str or UTF-8 bytes); returns its id (the original returned None)."""
        code = _text(s, "architecture")
        tags, _ = split_fields(args)
        return self.db.save_model_architecture(code, tags)

    def load_model_architecture(self, args: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        """``(code, fid)`` of the first matching architecture, or ``(False, False)``; the code is never executed."""
        query = {"$and": [_NOT_PARAMS, legacy_query(args)]}
        code, doc = self.db.find_model_architecture(query, sort=OLDEST_FIRST)
        if doc is None:
            return False, False
        return code, doc["_id"]

    #: The seed document's names (with its spellings) for the same two methods.
    find_model_architecture = load_model_architecture
    find_model_architecutre = load_model_architecture
    load_model_architecutre = load_model_architecture
    save_model_architecutre = save_model_architecture

    # -- saved jobs (a script and its settings) ---------------------------------------------------------
    def save_job(self, script: str | None = None, args: Mapping[str, Any] | None = None) -> InsertResult:
        """Save a job: ``args`` and, if given, the script file's text; saving the same job twice keeps one."""
        tags, _ = split_fields(args)
        tags[KIND] = "job"
        code = ""
        if script is not None:
            try:
                with open(script, "rb") as fh:
                    code = _text(fh.read(), f"script {script!r}")
            except OSError as exc:
                raise InvalidDocument(f"cannot read the job script {script!r}: {exc.strerror}") from exc
            tags["script_name"] = script
        for doc in self.db.index.find(models.COLLECTION, self.scope.query(tags), limit=10):
            if models.code_of(self.scope, doc) == code:
                return InsertResult(inserted_id=doc["_id"])
        return InsertResult(inserted_id=models.save_model_architecture(self.scope, code, tags))

    def find_one_job(self, args: Mapping[str, Any] | None = None) -> dict[str, Any] | bool:
        """The first matching saved job as a dict (``script`` as bytes), or ``False``.

        Like the original, a job with a script writes it to ``_<script name>``
        in the working directory (so ``import _your_script`` runs it — the
        caller's explicit choice); only the file's base name is used.
        """
        query = {"$and": [{KIND: "job"}, legacy_query(args)]}
        for doc in self.db.index.find(models.COLLECTION, self.scope.query(query), sort=OLDEST_FIRST, limit=1):
            out = public(doc, "studyID", self.studyID)
            out.pop("code", None)
            if "script_name" in doc:
                out["script"] = models.code_of(self.scope, doc).encode()
                with open("_" + os.path.basename(str(doc["script_name"])), "wb") as fh:
                    fh.write(out["script"])
            return out
        return False

    # -- the job queue ---------------------------------------------------------------------------------
    def push_job(self, margs: Any, wargs: Any = None, dargs: Any = None, epoch: Any = None) -> str:
        """Queue a job; returns its id.

        ``push_job(margs, wargs, dargs, epoch)`` is 1.x's form: the first
        architecture matching ``margs``, the first parameter set matching
        ``wargs``, the data query ``dargs`` and the epoch count.  The seed's
        ``push_job(spec, tags)`` (two arguments) queues ``spec`` (code or a
        dict) with ``tags``, as the warehouse's ``push_job`` does; its worker
        form ``push_job(march, filter, {'batch_size': .., 'epoch': ..})``
        queues ``{'march', 'filter', **settings}`` for :meth:`pop_job`.
        """
        if dargs is None and epoch is None:
            return self.db.push_job(_text(margs, "job") if isinstance(margs, bytes) else margs, wargs)
        if epoch is None and isinstance(dargs, Mapping):  # the seed's worker form: architecture, data, settings
            return self.db.push_job({"march": margs, "filter": wargs, **dargs})
        _, mid = self.load_model_architecture(margs)
        _, wid = self.find_one_params(wargs)
        spec = {"model": mid, "weight": wid, "dargs": dargs, "epoch": epoch}
        return self.db.push_job(spec, {"Running": False, "time": utcnow()})

    def peek_job(self) -> tuple[Any, Any, Any, Any, Any] | bool:
        """``(job id, architecture code, weights, dargs, epoch)`` of the first job not running, or ``False``."""
        query = self.scope.query({"Running": False, "status": "queued"})
        for doc in self.db.index.find(jobs.COLLECTION, query, sort=OLDEST_FIRST, limit=1):
            spec = doc["spec"]
            weights = self.db.load_parameters(spec["weight"]) if spec.get("weight") else False
            code: Any = False
            for arch in self.db.index.find(models.COLLECTION, self.scope.query({"_id": spec.get("model")}), limit=1):
                code = models.code_of(self.scope, arch)
            return doc["_id"], code, weights, spec.get("dargs"), spec.get("epoch")
        return False

    def run_job(self, jid: str) -> None:
        """Mark a job running (``Running: True``, ``Since``), as the original did; nothing is executed."""
        self._mark(jid, {"Running": True, "Since": utcnow(), "status": "running"})

    def del_job(self, jid: str) -> None:
        """Mark a job finished (``Running: True``, ``Finished``), as the original did; the record is kept."""
        self._mark(jid, {"Running": True, "Finished": utcnow(), "status": "done", "finished": time.time()})

    def _mark(self, jid: str, fields: dict[str, Any]) -> None:
        stored = {k: v if k in ("status", "finished") else _stored(v) for k, v in fields.items()}
        if self.db.index.update_many(jobs.COLLECTION, self.scope.query({"_id": str(jid)}), {"$set": stored}) != 1:
            raise DocumentNotFound(f"no job {jid!r} in study {self.studyID!r}")

    def pop_job(self, query: Mapping[str, Any] | None = None) -> Any:
        """The seed's ``pop_job()``: take the next queued job off the queue and return its spec, or ``None``.

        A code job comes back as a ``str`` (``exec(code)`` is the caller's
        choice); a dict job as a dict whose keys also read as attributes
        (``job.epoch``).  Either carries ``job_id`` and ``tags``.
        """
        job = self.db.pop_job(legacy_query(query))
        if job is None:
            return None
        job.complete()
        spec = job.spec
        out: Any = PoppedCode(spec) if isinstance(spec, str) else PoppedSpec(spec if isinstance(spec, dict) else
                                                                           {"spec": spec})
        out.job_id, out.tags = job.id, job.tags
        return out

    # -- the seed's data and parameter names -------------------------------------------------------------------
    def save_parameter(self, params: Any, args: dict[str, Any] | None = None) -> str:
        """The seed's ``save_parameter(params, {'acc': ac})``: :meth:`save_params` (fields queryable at top level)."""
        return self.save_params(params, dict(args or {}))

    def import_data(self, X: Any, y: Any = None, args: Any = None, **kwargs: Any) -> list[str]:
        """The seed's ``import_data(X, y, {'type': 'train'})``: the warehouse's import (datetimes allowed in tags)."""
        return self.db.import_data(X, y, args, **kwargs)

    def find_data(self, args: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The warehouse's lazy data cursor (``len()``, iterate, ``.arrays()``)."""
        return self.db.find_data(legacy_query(args), **kwargs)

    def data_generator(self, args: Mapping[str, Any] | None = None, batch_size: int = 32, **kwargs: Any) -> Any:
        """The warehouse's ``(X, y)`` batch stream over matching samples."""
        return self.db.data_generator(legacy_query(args), batch_size, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidDocument(f"the {what} is not UTF-8 text: {exc}") from exc
    raise InvalidDocument(f"the {what} must be a string or UTF-8 bytes, not {type(value).__name__}")


def _stored(value: Any) -> Any:
    return check_json_value(value, "job")


class PoppedCode(str):
    """A popped code job: a ``str`` (so ``exec(code)`` takes it) with ``job_id`` and ``tags``."""

    job_id: str
    tags: dict[str, Any]


class PoppedSpec(dict):
    """A popped dict job: a ``dict`` whose keys read as attributes too (the seed's ``j.epoch``)."""

    job_id: str
    tags: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ParamsFS:
    """``db.paramsfs``: the original's GridFS bucket of pickled parameters, read-only, by parameter id."""

    def __init__(self, owner: TensorDB) -> None:
        self._owner = owner

    def get(self, f_id: str) -> _File:
        """The parameter set ``f_id`` as a file whose ``read()`` gives the pickle the original stored (protocol 2)."""
        return _File(self._owner.db.load_parameters(str(f_id)))

    def exists(self, f_id: str) -> bool:
        return bool(self._owner.db.find_parameter_docs({"_id": str(f_id)}, limit=1))


class _File:
    def __init__(self, value: Any) -> None:
        self._value = value

    def read(self) -> bytes:
        return dump_arrays(self._value)


class DBLogger:
    """TensorLayer 1.x's Keras callback: a training record per batch, a parameter set and a validation record per epoch.

    ``model`` is anything :func:`~tensordb_core.tensorlayer.common.weights_of`
    takes (a Keras model's ``weights`` included); passed as a Keras callback,
    the model Keras sets is used when none was given.  Hooks Keras calls that
    the original lacked are accepted and do nothing.
    """

    def __init__(self, db: TensorDB, model: Any = None) -> None:
        self.db, self.model = db, model
        self.params: dict[str, Any] = {}
        self.epoch, self.batch = 0, 0
        self.et = self.t = time.time()

    def set_model(self, model: Any) -> None:
        if self.model is None:
            self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.db.db.flush()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.et = epoch, time.time()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        record = _scalars(logs)
        record.update({"epoch": epoch, "time": utcnow(), "stepTime": time.time() - self.et})
        fid = self.db.save_params(weights_of(self.model), dict(record))
        record["params"] = fid
        self.db.valid_log(record)

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batch, self.t = batch, time.time()

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        record = _scalars(logs)
        record.update({"step_time": time.time() - self.t, "time": utcnow(), "epoch": self.epoch, "batch": self.batch})
        self.db.train_log(record)

    on_train_batch_begin = on_batch_begin
    on_train_batch_end = on_batch_end

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):  # Keras's test/predict hooks: nothing to record
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def _scalars(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keras's logs with tensors/arrays of one value as Python numbers (the original's ``np.asscalar``)."""
    out: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            arr = as_array(value)
            value = arr.item() if arr.size == 1 else arr.tolist()
        out[str(key)] = value
    return out
