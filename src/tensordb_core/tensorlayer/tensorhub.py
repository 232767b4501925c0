"""TensorLayer 2.x's ``TensorHub`` (``tensorlayer/db.py``, 1.10-2.2): models, datasets, logs and tasks of a project.

The project (``project_name``) is the warehouse study.  Models and datasets
are parameter sets in ``params`` tagged ``tl_kind: model|dataset`` (so
``tensordb check``/``gc``/``copy`` treat their arrays like any other), logs
are warehouse logs, tasks are jobs tagged ``tl_kind: task``.  Running a task
executes its stored script, so :meth:`TensorHub.run_top_task` demands
``trusted=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tensordb_core.errors import InvalidDocument, UnsafeOperation
from tensordb_core.tensorlayer import common
from tensordb_core.tensorlayer.tensordb import OLDEST_FIRST, delete_logs, write_log
from tensordb_core.warehouse import jobs, models, params

#: TensorHub's task states and the warehouse job states they are.
TASK_STATES = {"pending": "queued", "running": "running", "finished": "done"}
#: How long a running task holds its claim before another worker may take it (the original had no lease).
TASK_LEASE_S = 24 * 3600.0


class TensorHub(common.WarehouseBacked):
    """TensorLayer 2.x's ``TensorHub`` on the warehouse; ``uri=`` picks any backend, else MongoDB at ``ip:port``."""

    def __init__(self, ip: str = "localhost", port: int = 27017, dbname: str = "dbname", username: str | None = "None",
                 password: str | None = "password", project_name: str | None = None, *, uri: str | None = None,
                 **connect_kwargs: Any) -> None:
        self.ip, self.port, self.dbname = ip, port, dbname
        self.username = None if username in (None, "None") else username
        self.project_name = project_name if project_name is not None else common.default_project_name()
        self.db = common.open_warehouse(uri, self.project_name, ip=ip, port=port, db_name=dbname,
                                        user_name=self.username, password=password, **connect_kwargs)
        self.scope = self.db.scope

    def __str__(self) -> str:
        return (f"[Database] Info:\n  warehouse      : {self.db!r}\n  username       : {self.username}\n"
                f"  password       : *******\n  project_name   : {self.project_name}\n")

    # -- models ------------------------------------------------------------------------------------
    def save_model(self, network: Any = None, model_name: str = "model", **kwargs: Any) -> bool:
        """Save a network's weights (``all_weights``/``weights``, a list or a dict of arrays) and its ``config``."""
        tags, metrics = common.split_fields({**kwargs, "model_name": model_name, "time": common.utcnow()})
        config = getattr(network, "config", None)
        if config is not None:
            tags["architecture"] = config
        tags[common.KIND] = "model"
        step = common.take_step(tags)
        self.db.save_parameters(common.weights_of(network), metrics, tags, step=step)
        return True

    def find_top_model(self, sort: Any = None, model_name: str = "model", **kwargs: Any) -> common.StoredModel | bool:
        """The first matching model (oldest unless ``sort``) as a :class:`StoredModel`, or ``False``.

        1.10's ``find_top_model(sess, ...)`` also works: a session (or
        ``sess=``) is accepted and not needed.
        """
        kwargs.pop("sess", None)
        if sort is not None and not isinstance(sort, (list, tuple)):
            sort = None  # 1.10 passed the TensorFlow session first
        found = self._models(sort, model_name, kwargs, limit=1)
        return found[0] if found else False

    def find_models(self, sort: Any = None, model_name: str = "model", **kwargs: Any) -> list[common.StoredModel]:
        """Every matching model (oldest first unless ``sort``); an addition to the original API."""
        return self._models(sort, model_name, kwargs, limit=0)

    def _models(self, sort: Any, model_name: str, kwargs: Mapping[str, Any], limit: int) -> list[common.StoredModel]:
        query = {"$and": [{common.KIND: "model", "model_name": model_name}, common.legacy_query(kwargs)]}
        docs = self.db.find_parameter_docs(query, sort=sort or OLDEST_FIRST, limit=limit)
        return [common.StoredModel(self.db.load_parameters(doc), common.public(doc, "project_name", self.project_name))
                for doc in docs]

    def delete_model(self, **kwargs: Any) -> None:
        """Delete the matching models of this project (all of them with no arguments)."""
        common.delete(self.scope, params.COLLECTION, {"$and": [{common.KIND: "model"}, common.legacy_query(kwargs)]})

    # -- datasets ----------------------------------------------------------------------------------
    def save_dataset(self, dataset: Any = None, dataset_name: str | None = None, **kwargs: Any) -> bool:
        """Save a dataset: an array, or a list/tuple/dict of arrays (``[X_train, y_train, X_test, y_test]``)."""
        _need_name(dataset_name, "dataset_name")
        arrays, shape = dataset_arrays(dataset)
        tags, metrics = common.split_fields({**kwargs, "dataset_name": dataset_name, "time": common.utcnow()})
        tags.update({common.KIND: "dataset", "tl_shape": shape})
        step = common.take_step(tags)
        self.db.save_parameters(arrays, metrics, tags, step=step)
        return True

    def find_top_dataset(self, dataset_name: str | None = None, sort: Any = None, **kwargs: Any) -> Any:
        """The first matching dataset (oldest unless ``sort``), in the container it was saved in, or ``False``."""
        found = self._datasets(dataset_name, sort, kwargs, limit=1)
        return found[0] if found else False

    def find_datasets(self, dataset_name: str | None = None, **kwargs: Any) -> list[Any]:
        """Every matching dataset, oldest first (``[]`` when none)."""
        return self._datasets(dataset_name, None, kwargs, limit=0)

    def _datasets(self, name: str | None, sort: Any, kwargs: Mapping[str, Any], limit: int) -> list[Any]:
        _need_name(name, "dataset_name")
        query = {"$and": [{common.KIND: "dataset", "dataset_name": name}, common.legacy_query(kwargs)]}
        out = []
        for doc in self.db.find_parameter_docs(query, sort=sort or OLDEST_FIRST, limit=limit):
            arrays, shape = self.db.load_parameters(doc), doc.get("tl_shape")
            out.append(arrays[0] if shape == "array" else tuple(arrays) if shape == "tuple" else arrays)
        return out

    def delete_datasets(self, **kwargs: Any) -> None:
        """Delete the matching datasets of this project."""
        common.delete(self.scope, params.COLLECTION, {"$and": [{common.KIND: "dataset"}, common.legacy_query(kwargs)]})

    # -- logs --------------------------------------------------------------------------------------
    def save_training_log(self, **kwargs: Any) -> None:
        """Save a training record (``accuracy=.33, loss=.98``); ``time`` is added."""
        write_log(self.db, "train", {**kwargs, "time": common.utcnow()})

    def save_validation_log(self, **kwargs: Any) -> None:
        """Save a validation record; ``time`` is added."""
        write_log(self.db, "valid", {**kwargs, "time": common.utcnow()})

    def save_testing_log(self, **kwargs: Any) -> None:
        """Save a test record; ``time`` is added."""
        write_log(self.db, "test", {**kwargs, "time": common.utcnow()})

    def delete_training_log(self, **kwargs: Any) -> None:
        """Delete matching training records (all with no arguments)."""
        delete_logs(self.db, "train", kwargs)

    def delete_validation_log(self, **kwargs: Any) -> None:
        """Delete matching validation records."""
        delete_logs(self.db, "valid", kwargs)

    def delete_testing_log(self, **kwargs: Any) -> None:
        """Delete matching test records."""
        delete_logs(self.db, "test", kwargs)

    # -- tasks -------------------------------------------------------------------------------------
    def create_task(self, task_name: str | None = None, script: str | None = None,
                    hyper_parameters: Mapping[str, Any] | None = None, saved_result_keys: list[str] | None = None,
                    **kwargs: Any) -> None:
        """Queue a task: the script file's text, the hyper parameters it reads and the result keys to keep."""
        _need_name(task_name, "task_name")
        _need_name(script, "script")
        try:
            with open(str(script), "rb") as fh:
                code = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidDocument(f"cannot read the task script {script!r} as UTF-8 text: {exc}") from exc
        tags, _ = common.split_fields({**kwargs, "task_name": task_name, "time": common.utcnow(),
                                "hyper_parameters": dict(hyper_parameters or {}),
                                "saved_result_keys": list(saved_result_keys or [])})
        tags[common.KIND] = "task"
        self.db.push_job({"script": code, "script_name": script}, tags)

    def run_top_task(self, task_name: str | None = None, sort: Any = None, *, trusted: bool = False,
                     **kwargs: Any) -> bool:
        """Claim the first pending task, execute its script with its hyper parameters, keep its results.

        The script is arbitrary Python from the database: this runs only with
        ``trusted=True``.  Returns ``False`` when no task is pending.  The
        script runs in a fresh namespace holding the hyper parameters (the
        original used this module's globals); a script that raises marks the
        task failed (``dead``) and the error propagates.
        """
        _need_name(task_name, "task_name")
        if trusted is not True:
            raise UnsafeOperation("run_top_task executes the task's stored Python script: call "
                                  "run_top_task(..., trusted=True) only on a database whose tasks you wrote or reviewed")
        query = self._task_query(task_name, {**kwargs, "status": "pending"})
        if sort:
            first = self.db.index.find(jobs.COLLECTION, self.scope.query(query), sort=sort, limit=1,
                                       projection={"_id": 1})
            ids = [d["_id"] for d in first]
            if not ids:
                return False
            query = {"$and": [query, {"_id": ids[0]}]}
        job = self.db.pop_job(query, lease_s=TASK_LEASE_S)
        if job is None:
            return False
        namespace: dict[str, Any] = {"__name__": "__tensorlayer_task__", **job.doc.get("hyper_parameters", {})}
        try:
            models.exec_architecture(job.spec["script"], trusted=True, namespace=namespace)
        except BaseException as exc:
            job.fail(f"{type(exc).__name__}: {exc}", retry=False)
            raise
        keys = job.doc.get("saved_result_keys") or []
        job.complete({k: _jsonable(namespace.get(k)) for k in keys})
        return True

    def delete_tasks(self, **kwargs: Any) -> None:
        """Delete the matching tasks of this project."""
        common.delete(self.scope, jobs.COLLECTION, self._task_query(None, kwargs))

    def check_unfinished_task(self, task_name: str | None = None, **kwargs: Any) -> bool:
        """Whether a matching task is still pending or running."""
        _need_name(task_name, "task_name")
        query = {"$and": [self._task_query(task_name, kwargs), {"status": {"$in": ["queued", "running"]}}]}
        return self.db.index.count(jobs.COLLECTION, self.scope.query(query)) > 0

    def _task_query(self, task_name: str | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        q = common.legacy_query(kwargs)
        if isinstance(q.get("status"), str):
            q["status"] = TASK_STATES.get(q["status"], q["status"])
        parts: list[dict[str, Any]] = [{common.KIND: "task"}] + ([{"task_name": task_name}] if task_name else []) + [q]
        return {"$and": parts}

    # -- lifecycle ---------------------------------------------------------------------------------


def dataset_arrays(dataset: Any) -> tuple[list[np.ndarray] | dict[str, np.ndarray], str]:
    """A dataset as storable arrays, and its container (``array``/``list``/``tuple``/``dict``) to give it back in."""
    shape = "array" if isinstance(dataset, np.ndarray) else type(dataset).__name__
    if shape not in ("array", "list", "tuple", "dict"):
        raise InvalidDocument(f"a dataset is an array or a list/tuple/dict of arrays, not {shape}")
    return common.weights_of([dataset] if shape == "array" else dataset), shape


def _need_name(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidDocument(f"{what} should be a string, not {type(value).__name__}")


def _jsonable(value: Any) -> Any:
    """A task result as a stored value: arrays and tensors as (nested) lists."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    arr = common.as_array(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()

