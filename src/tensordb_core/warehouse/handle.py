"""The public handle: one study of one warehouse (an index store + a blob store).

``connect()`` picks the stores from a URI (or ``TENSORDB_URI`` /
``TENSORDB_BLOBS``) through the plugin registry; :class:`TensorDB` exposes the
seed's API — data, architectures, parameters, jobs, logs, and experiment tracking (runs, artifacts, registered
models) — scoped to one study.
Each concern lives in its own module; this class only wires them together and
records lineage (which run, job, architecture and data snapshot produced a
parameter set).
"""

from __future__ import annotations

import inspect
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self
from urllib.parse import quote

from tensordb_core.errors import InvalidArgument, NotFound
from tensordb_core.store.protocols import BlobStore, IndexStore, new_id
from tensordb_core.store.registry import default_blobs, import_factory, index_exists, open_blobs, open_index
from tensordb_core.store.retrying import RetryPolicy
from tensordb_core.store.retrying import wrap as wrap_retrying
from tensordb_core.store.scope import StudyScope, check_study
from tensordb_core.store.uri import StoreURI, parse_uri
from tensordb_core.stream.batches import data_stream
from tensordb_core.warehouse import (
    aliases,
    artifacts,
    data,
    datasets,
    export,
    jobs,
    lifecycle,
    logs,
    models,
    params,
    registry,
    runs,
)

ENV_URI = "TENSORDB_URI"
ENV_BLOBS = "TENSORDB_BLOBS"
ENV_STUDY = "TENSORDB_STUDY"
DEFAULT_STUDY = "default"
#: Collections and the indexes the warehouse's own queries use.
INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    data.COLLECTION: [[("_study", 1), ("_seq", 1)], [("_study", 1), ("label", 1)]],
    params.COLLECTION: [[("_study", 1), ("_seq", 1)]],
    models.COLLECTION: [[("_study", 1), ("_seq", 1)]],
    jobs.COLLECTION: [[("_study", 1), ("status", 1), ("priority", -1), ("_seq", 1)], [("_study", 1), ("lease_until", 1)]],
    logs.COLLECTION: [[("_study", 1), ("kind", 1), ("step", 1)]],
    aliases.HISTORY: [[("_study", 1), ("name", 1), ("at", 1)]],
    runs.COLLECTION: [[("_study", 1), ("_seq", 1)], [("_study", 1), ("status", 1), ("expires", 1)]],
    artifacts.COLLECTION: [[("_study", 1), ("run", 1), ("name", 1)]],
    registry.VERSIONS: [[("_study", 1), ("name", 1), ("version", 1)]],
    registry.ALIAS_HISTORY: [[("_study", 1), ("name", 1), ("at", 1)]],
    datasets.MEMBERS: [[("_dataset", 1), ("_seq", 1)]],
    datasets.DATASETS: [[("_study", 1), ("name", 1)]],
    lifecycle.AUDIT: [[("_study", 1), ("at", 1)]],
}


def connect(uri: str | os.PathLike[str] | StoreURI | None = None, study: str | None = None, *,
            blobs: str | StoreURI | None = None, index_options: Mapping[str, Any] | None = None,
            blob_options: Mapping[str, Any] | None = None,
            retry: RetryPolicy | Mapping[str, Any] | bool | None = None, create: bool = True) -> TensorDB:
    """Open a warehouse.  ``uri`` defaults to ``$TENSORDB_URI`` then ``./warehouse``;
    ``blobs`` to ``$TENSORDB_BLOBS`` then the index's own default (GridFS for Mongo,
    the directory's ``blobs/`` for the embedded store).  ``retry`` (a dict of
    :class:`~tensordb_core.store.retrying.RetryPolicy` settings, or False for none) bounds
    the retries of safe operations on transient backend failures.

    ``create=False`` opens only a warehouse that is there: where none is (an embedded
    directory without its index file, or an index whose collections hold no document)
    it raises :class:`~tensordb_core.errors.NotFound` and creates nothing, so a typo in
    a path is an error rather than a new, empty warehouse."""
    policy = RetryPolicy.from_option(retry)
    index_uri = _index_uri(uri)
    if not create and not index_exists(index_uri):
        raise _no_warehouse(index_uri)
    index = open_index(index_uri, **dict(index_options or {}))
    if not create and not any(index.count(collection) for collection in INDEXES):
        index.close()
        raise _no_warehouse(index_uri)
    try:
        blob_store = open_blobs(_blob_uri(index_uri, blobs), **dict(blob_options or {}))
    except BaseException:
        index.close()
        raise
    index, blob_store = wrap_retrying(index, blob_store, policy)
    if study is None:
        study = os.environ.get(ENV_STUDY) or DEFAULT_STUDY
    return TensorDB.from_stores(index, blob_store, study)


def _index_uri(uri: str | os.PathLike[str] | StoreURI | None) -> StoreURI:
    """The index a :func:`connect` ``uri`` names: itself, else ``$TENSORDB_URI``, else ``./warehouse``."""
    return parse_uri(uri if uri is not None else os.environ.get(ENV_URI, "./warehouse"))


def _blob_uri(index_uri: StoreURI, blobs: str | StoreURI | None) -> StoreURI:
    """The blob store a :func:`connect` ``blobs`` names: itself, else ``$TENSORDB_BLOBS``, else the index's own."""
    named = blobs if blobs is not None else os.environ.get(ENV_BLOBS) or None
    return parse_uri(named) if named is not None else default_blobs(index_uri)


def preload(uri: str | os.PathLike[str] | StoreURI | None = None, *, blobs: str | StoreURI | None = None) -> None:
    """Import the modules that open the warehouse :func:`connect` would open with ``uri`` and ``blobs``,
    opening nothing (no file, connection or thread).

    Why: a process that forks workers which each connect (a torch
    ``DataLoader``'s, or a user's own pool) calls this first, so every worker
    inherits the store modules and their client libraries instead of
    importing them before its first batch (:func:`~tensordb_core.store.registry.import_factory`).
    A malformed URI and a missing library raise here as :func:`connect`
    would; a scheme no plugin declares a factory for is left to
    :func:`connect`, which says whether any plugin serves it.
    """
    index_uri = _index_uri(uri)
    if not import_factory("index", index_uri):
        return
    import_factory("blobs", _blob_uri(index_uri, blobs))


def _no_warehouse(uri: StoreURI) -> NotFound:
    return NotFound(f"no warehouse at {uri.redacted()}: run `tensordb demo` or import data first")


def seed_uri(ip: str = "127.0.0.1", port: int = 27017, db_name: str = "tensordb", user_name: str | None = None,
             password: str | None = None) -> str:
    """The MongoDB URI the original TensorDB's ``TensorDB(ip, port, db_name, ...)`` implied."""
    auth = ""
    if user_name:
        auth = quote(user_name, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    return f"mongodb://{auth}{ip}:{int(port)}/{db_name}"


class TensorDB:
    """One study in one warehouse.  Build it with :func:`connect` (or the seed-style constructor)."""

    def __init__(self, ip: str = "127.0.0.1", port: int = 27017, db_name: str = "tensordb",
                 user_name: str | None = None, password: str | None = None, studyID: str | None = None,
                 **connect_kwargs: Any) -> None:
        """Seed-compatible constructor: connects to MongoDB at ``ip:port/db_name``."""
        other = connect(seed_uri(ip, port, db_name, user_name, password), studyID, **connect_kwargs)
        self.__dict__.update(other.__dict__)

    @classmethod
    def from_stores(cls, index: IndexStore, blobs: BlobStore, study: str | None, *, _owns: bool = True) -> TensorDB:
        self = cls.__new__(cls)
        self.index, self.blobs = index, blobs
        self.study = None if study is None else check_study(study)
        self.scope = StudyScope(index, blobs, self.study)
        self.run_id = new_id()
        self.lineage: dict[str, Any] = {"run": self.run_id}
        self._log_writer = logs.LogWriter(self.scope) if study is not None else None
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()  # closed before the stores on close()
        self._data_lineage: tuple[dict[str, Any], weakref.ref[Any]] | None = None
        self._run: runs.Run | None = None
        self._previous_run: str | None = None
        self._owns = _owns
        if _owns:
            for collection, specs in INDEXES.items():
                for keys in specs:
                    index.create_index(collection, keys)
        return self

    # -- studies -----------------------------------------------------------------------------------
    def use_study(self, study: str) -> TensorDB:
        """Another study on the same stores (cheap; shares connections)."""
        return TensorDB.from_stores(self.index, self.blobs, study, _owns=False)

    def all_studies(self) -> TensorDB:
        """The explicit, read-only cross-study view (for comparing studies)."""
        return TensorDB.from_stores(self.index, self.blobs, None, _owns=False)

    def __repr__(self) -> str:
        return f"TensorDB(index={self.index.uri.redacted()!r}, blobs={self.blobs.uri.redacted()!r}, study={self.study!r})"

    # -- data ---------------------------------------------------------------------------------------
    def import_data(self, X: Any, y: Any = None, tags: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                    **kwargs: Any) -> list[str]:
        """Store samples ``X`` (N, ...) with labels ``y`` and tags; returns their ids (all or nothing; ``key=``
        makes a retry return the first call's ids, warehouse/commits.py)."""
        return data.import_data(self.scope, X, y, tags, **known_kwargs(data.import_data, kwargs, "import_data"))

    def import_records(self, records: Iterable[Mapping[str, Any]], tags: Mapping[str, Any] | None = None, *,
                       encode: Mapping[str, str] | None = None,
                       chunk_bytes: int = data.DEFAULT_CHUNK_BYTES, key: str | None = None) -> list[str]:
        """Store records (any iterable of dicts, generators included, streamed in chunks); returns their ids.

        Field values: numpy arrays of any dtype and shape (lz4 or raw, or
        encoded as ``encode={"image": "jpeg:90", "mask": "png"}`` says),
        ``bytes``, ``tdb.Encoded(jpeg_bytes, "jpeg")`` (stored as they are), and
        small JSON values (str, numbers, bool, None, lists, dicts), which live in
        the document and are queried like tags: ``find_data({"label": 3})``.
        ``tags`` are added to every record.  A bad record raises a typed error
        naming it and the field, and none of the call's records is imported
        (imports are all or nothing; ``key`` makes a retry return the first ids).  Read them with
        ``find_data(q).records()`` or ``data_generator(q, ...)`` (dict batches).
        """
        return data.import_records(self.scope, records, tags, encode=encode, chunk_bytes=chunk_bytes, key=key)

    def find_data(self, query: Mapping[str, Any] | None = None, *, sort: Any = None, limit: int = 0,
                  skip: int = 0, dataset: str | None = None) -> data.DataCursor:
        """A lazy cursor over matching samples (``len()``, iterate docs, ``.arrays()``); ``dataset=name`` reads
        that version's pinned samples and labels (warehouse/datasets.py)."""
        scope = self.scope if dataset is None else datasets.open_version(self.scope, dataset)[0]
        return data.DataCursor(scope, query, sort, limit, skip)

    def index_tags(self, *tags: str) -> list[str]:
        """Index data tags you stream or select by (``db.index_tags("split", "source")``): the first batch and
        tag queries then skip the samples that do not match instead of reading them; see :func:`data.index_tags`."""
        return data.index_tags(self.scope, tags)

    def data_generator(self, query: Mapping[str, Any] | None = None, batch_size: int = 32, *,
                       fields: Sequence[str] | None = None, decode: bool = True,
                       pad: Mapping[str, Any] | None = None, **kwargs: Any):
        """Stream ``(X, y)`` batches of matching samples, dict batches for records; see :func:`stream.data_stream`."""
        self.scope.query(query)  # validate here: a bad query is a typed error now, not later on the stream's thread
        q = dict(query or {})
        scope, version = self.scope, kwargs.pop("dataset", None)
        if version is not None:  # a dataset version: its pinned samples, its population (datasets.stream_args)
            scope, kwargs = datasets.stream_args(self.scope, version, kwargs)
        stream = data_stream(scope, q, batch_size=batch_size, fields=fields, decode=decode, pad=pad,
                             **known_kwargs(data_stream, kwargs, "data_generator"))
        self._streams.add(stream)
        self._data_lineage = (q, weakref.ref(stream), version)
        return stream

    def data_snapshot(self, *, settle_s: float | None = None) -> int:
        """A ``_seq`` bound for ``data_generator(as_of=...)``: compute once, pass to every DDP rank."""
        return data.data_snapshot(self.scope, settle_s)

    def export_data(self, path: str | os.PathLike[str], query: Mapping[str, Any] | None = None, *,
                    dataset: str | None = None, format: str = "parquet", **options: Any) -> dict[str, Any]:
        """Write matching samples (or a dataset version) as npz, parquet, webdataset or hf; see warehouse/export."""
        return export.export_data(self, path, query, dataset=dataset, format=format, **options)

    def current_lineage(self) -> dict[str, Any]:
        """What produced the parameters saved now: run, job, architecture and the data snapshot read."""
        out = dict(self.lineage)
        if self._data_lineage is not None:
            query, stream_ref, version = self._data_lineage
            stream = stream_ref()
            snap = stream.snapshot if stream is not None else None
            if snap is None:  # the stream is gone or never started: describe the data as it is now
                snap = {"last_seq": self.index.last_seq(data.COLLECTION),
                        "count": len(self.find_data(query, dataset=version))}
            out["data"] = {"query": query, **snap, **({"dataset": version} if version is not None else {})}
        return out

    # -- architectures ------------------------------------------------------------------------------
    def save_model_architecture(self, code: str, tags: Mapping[str, Any] | None = None) -> str:
        return models.save_model_architecture(self.scope, code, tags)

    def find_model_architecture(self, query: Mapping[str, Any] | None = None, **kwargs: Any):
        """``(code, doc)`` of the newest match; the code is returned as a string, never executed."""
        code, doc = models.find_model_architecture(self.scope, query, **kwargs)
        if doc is not None:
            self.lineage["arch"] = doc["_id"]
        return code, doc

    # -- parameters ---------------------------------------------------------------------------------
    def save_parameters(self, parameters: Any, metrics: Mapping[str, Any] | None = None,
                        tags: Mapping[str, Any] | None = None, *, step: int | None = None) -> str:
        return params.save_parameters(self.scope, parameters, metrics=metrics, tags=tags, step=step,
                                      lineage=self.current_lineage())

    def find_parameters(self, query: Mapping[str, Any] | None = None, *, sort: Any = None):
        return params.find_parameters(self.scope, query, sort=sort)

    def best_parameters(self, metric: str, mode: str = "max", query: Mapping[str, Any] | None = None):
        return params.best_parameters(self.scope, metric, mode, query)

    def record_metrics(self, param_id: str, metrics: Mapping[str, Any]) -> None:
        params.record_metrics(self.scope, param_id, metrics)

    def find_parameter_docs(self, query: Mapping[str, Any] | None = None, *, sort: Any = None,
                            limit: int = 0) -> list[dict[str, Any]]:
        """Parameter documents only (no arrays loaded), newest first by default."""
        return list(self.index.find(params.COLLECTION, self.scope.query(query), sort=sort or params.NEWEST_FIRST,
                                    limit=limit))

    def load_parameters(self, doc: Mapping[str, Any]):
        return params.load(self.scope, doc)

    # -- aliases ------------------------------------------------------------------------------------
    def set_alias(self, name: str, param_id: str, *, who: str | None = None) -> str | None:
        return aliases.set_alias(self.scope, name, param_id, who=who, run=self._run.id if self._run else None)

    def get_alias(self, name: str, *, at: float | None = None) -> str | None:
        return aliases.get_alias(self.scope, name, at=at)

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        return aliases.alias_history(self.scope, name)

    # -- jobs ---------------------------------------------------------------------------------------
    def push_job(self, spec: Any, tags: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        return jobs.push_job(self.scope, spec, tags, run=self._run.id if self._run else None, **kwargs)

    def pop_job(self, query: Mapping[str, Any] | None = None, *, lease_s: float = 60.0,
                worker: str | None = None) -> jobs.Job | None:
        job = jobs.pop_job(self.scope, query, lease_s=lease_s, worker=worker)
        if job is not None:
            self.lineage["job"] = job.id
        return job

    def find_jobs(self, query: Mapping[str, Any] | None = None, *, limit: int = 0) -> list[dict[str, Any]]:
        return list(self.index.find(jobs.COLLECTION, self.scope.query(query), limit=limit))

    # -- logs ---------------------------------------------------------------------------------------
    def log(self, kind: str, metrics: Mapping[str, Any], step: int | None = None, **tags: Any) -> None:
        if self._log_writer is None:
            self.scope.require_writable()
        self._log_writer.log(kind, metrics, step, run=self.lineage.get("run"), tags=tags or None)
        if self._run is not None and self.lineage.get("run") == self._run.id:
            self._run.observe(kind, metrics, step)

    def train_log(self, metrics: Mapping[str, Any], step: int | None = None, **tags: Any) -> None:
        self.log("train", metrics, step, **tags)

    def valid_log(self, metrics: Mapping[str, Any], step: int | None = None, **tags: Any) -> None:
        self.log("valid", metrics, step, **tags)

    def test_log(self, metrics: Mapping[str, Any], step: int | None = None, **tags: Any) -> None:
        self.log("test", metrics, step, **tags)

    def find_logs(self, kind: str | None = None, query: Mapping[str, Any] | None = None, **kwargs: Any):
        self.flush()
        return logs.find_logs(self.scope, kind, query, **kwargs)

    def flush(self) -> None:
        """Write buffered logs now."""
        if self._log_writer is not None:
            self._log_writer.flush()

    # -- runs (warehouse/runs.py) -----------------------------------------------------------------------
    def start_run(self, name: str | None = None, params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None, *, heartbeat_s: float = runs.HEARTBEAT_S,
                  lapse_s: float = runs.LAPSE_S) -> runs.Run:
        """Start a run; until it ends, this handle's logs, parameter sets, jobs and aliases point at it.

        A context manager: the block's end marks it ``finished`` (``failed`` if
        it raises).  One run at a time per handle; a process that dies reads
        ``killed`` once ``lapse_s`` passes without a heartbeat.
        """
        if self._run is not None:
            raise runs.RunNotActive(f"run {self._run.id} is active on this handle: end it first (db.end_run())")
        self.flush()
        run = runs.start_run(self.scope, self._log_for_run, name=name, params=params, tags=tags,
                             job=self.lineage.get("job"), heartbeat_s=heartbeat_s, lapse_s=lapse_s,
                             on_end=self._run_ended)
        self._run, self._previous_run = run, self.lineage.get("run")
        self.lineage["run"] = run.id
        return run

    def active_run(self) -> runs.Run | None:
        """The run this handle is logging into, or None."""
        return self._run

    def end_run(self, status: str = "finished") -> None:
        """End the active run (``finished``, ``failed`` or ``killed``); nothing to do when none is active."""
        if self._run is not None:
            self._run.end(status)

    def _log_for_run(self, kind: str, metrics: Mapping[str, Any], step: int | None, run: str) -> None:
        if self._log_writer is None:
            self.scope.require_writable()
        self._log_writer.log(kind, metrics, step, run=run)

    def _run_ended(self, run: runs.Run) -> None:
        self.flush()  # the run's logs carry its id: write them before the handle's run id is restored
        if self._run is run:
            self._run = None
            self.lineage["run"] = self._previous_run

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run document of this study (status with the heartbeat lapse rule applied)."""
        return runs.get_run(self.scope, run_id)

    def search_runs(self, query: Mapping[str, Any] | None = None, *, sort: Any = None,
                    limit: int = 0) -> list[dict[str, Any]]:
        """Runs matching a query over ``params.*``, ``tags.*``, ``status``, ``metrics.*`` (latest),
        ``metrics_min.*``/``metrics_max.*``; newest first unless ``sort``."""
        return runs.search_runs(self.scope, query, sort=sort, limit=limit)

    # -- artifacts (warehouse/artifacts.py) ------------------------------------------------------------
    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The newest version of each artifact of a run of this study."""
        return artifacts.list_artifacts(self.scope, run_id)

    def load_artifact(self, run_id: str, name: str, *, path: str | os.PathLike[str] | None = None) -> Any:
        """An artifact as logged (str, JSON value or bytes), or streamed to ``path`` (returns the path)."""
        return artifacts.load_artifact(self.scope, run_id, name, path=path)

    # -- registered models (warehouse/registry.py) --------------------------------------------------------
    def register_model(self, name: str, param_id: str, *, description: str | None = None) -> int:
        """Register a parameter set of this study as the next version (1, 2, ...) of model ``name``."""
        return registry.register_model(self.scope, name, param_id, description=description,
                                       run=self._run.id if self._run else None)

    def get_model_version(self, name: str, version: int) -> dict[str, Any]:
        return registry.get_model_version(self.scope, name, version)

    def list_models(self) -> list[dict[str, Any]]:
        return registry.list_models(self.scope)

    def list_model_versions(self, name: str) -> list[dict[str, Any]]:
        return registry.list_versions(self.scope, name)

    def set_model_alias(self, name: str, alias: str, version: int, *, who: str | None = None) -> int | None:
        """Point ``name@alias`` at ``version``; returns the previous version.  History is kept."""
        return registry.set_model_alias(self.scope, name, alias, version, who=who,
                                        run=self._run.id if self._run else None)

    def model_alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        return registry.model_alias_history(self.scope, name, alias)

    def load_model(self, name: str, *, alias: str | None = None, version: int | None = None):
        """The parameters of ``name@alias`` or of ``version`` (the latest version when neither)."""
        return registry.load_model(self.scope, name, alias=alias, version=version)

    # -- data lifecycle (warehouse/lifecycle.py, warehouse/datasets.py) ---------------------------------
    def delete_data(self, query: Mapping[str, Any] | None) -> int:
        """Delete matching samples (dataset versions keep reading theirs); audited.  Returns how many."""
        return lifecycle.delete_data(self.scope, query)

    def update_data(self, query: Mapping[str, Any] | None, update: Mapping[str, Any]) -> int:
        """``$set``/``$unset`` tags and JSON fields, labels included, of matching samples; audited."""
        return lifecycle.update_data(self.scope, query, update)

    def delete_parameters(self, query: Mapping[str, Any] | None) -> int:
        """Delete matching parameter sets (refused while an alias or a model version points at one)."""
        return lifecycle.delete_parameters(self.scope, query)

    def delete_logs(self, kind: str | None, query: Mapping[str, Any] | None = None) -> int:
        """Delete matching log records of ``kind`` (None: every kind); buffered logs are written first."""
        self.flush()
        return lifecycle.delete_logs(self.scope, kind, query)

    def delete_jobs(self, query: Mapping[str, Any] | None) -> int:
        """Delete matching jobs (refused while one runs under a live lease)."""
        return lifecycle.delete_jobs(self.scope, query)

    def delete_model_architectures(self, query: Mapping[str, Any] | None) -> int:
        """Delete matching architectures."""
        return lifecycle.delete_model_architectures(self.scope, query)

    def save_dataset(self, name: str, query: Mapping[str, Any] | None = None, *,
                     description: str | None = None) -> dict[str, Any]:
        """Pin the samples matching ``query`` now, with their tags and labels, as dataset version ``name``."""
        return datasets.save_dataset(self.scope, name, query, description=description)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset version of the study (name, count, query, created, who, description)."""
        return datasets.list_datasets(self.scope)

    def dataset_info(self, name: str) -> dict[str, Any]:
        """One dataset version's count, query, created, who and description."""
        return datasets.dataset_info(self.scope, name)

    def drop_dataset(self, name: str) -> int:
        """Drop a dataset version; returns how many samples it pinned."""
        return datasets.drop_dataset(self.scope, name)

    # -- seed-compatible names ------------------------------------------------------------------------
    def save_parameter(self, parameters: Any, metrics: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        """The seed's name for :meth:`save_parameters`."""
        return self.save_parameters(parameters, metrics, **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """End the active run, stop open streams, flush logs and release the stores (only those this handle opened)."""
        self.end_run()
        for stream in list(self._streams):
            stream.close()
        self.flush()
        if self._owns:
            self.index.close()
            self.blobs.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def known_kwargs(func: Any, kwargs: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """``kwargs`` unchanged when ``func`` takes them all; else a typed error naming the unknown ones and the known."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        known = sorted(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY)
        raise InvalidArgument(f"{what}() got unknown keyword argument(s) {unknown}; it takes {known}")
    return kwargs
