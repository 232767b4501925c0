"""Delete and relabel: the lifecycle writes on samples, parameter sets, logs, jobs and architectures.

Why a module of its own: every one of these writes is refused the same way
(a typed error before anything changes), is restricted to one study by the
scope, and leaves the same audit record (who, when, what, the query, how
many) in :data:`AUDIT`, which ``tensordb status`` shows.

Samples a dataset version pins stay readable through the version after
``delete_data``: a version keeps its own copy of each pinned sample's document
(warehouse/datasets.py), and gc counts those references as live.  Payload
arrays are immutable: ``update_data`` changes tags and JSON fields (``label``
included) only.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import InvalidDocument, InvalidQuery, UnsafeOperation
from tensordb_core.store.generations import bump_data_generation
from tensordb_core.store.scope import INTENTS, StudyScope, check_json_value
from tensordb_core.warehouse import aliases, jobs, logs, models, names, params, registry
from tensordb_core.warehouse.data import COLLECTION as DATA

#: One document per delete or relabel: ``{action, collection, query, count, who, at}`` (the query as JSON text).
AUDIT = names.AUDIT
#: The update operators ``update_data`` takes: tags and JSON fields are set or removed, nothing else.
UPDATE_OPERATORS = frozenset({"$set", "$unset"})
#: Top-level fields no update may touch besides every ``_``-prefixed one (system fields).
RESERVED_FIELDS = frozenset({"study", "x", "y"})


_CHUNK_REFS = {"_x": 1, "_y": 1, "_chunk": 1}


def _chunk_keys(doc: Mapping[str, Any]) -> list[str]:
    refs = (doc.get("_x"), doc.get("_y"), doc.get("_chunk"))
    return [ref["key"] for ref in refs if isinstance(ref, Mapping) and isinstance(ref.get("key"), str)]


class ReferencedParameters(UnsafeOperation):
    """A parameter set an alias or a registered model version points at cannot be deleted."""


class RunningJobs(UnsafeOperation):
    """A job a worker holds a live lease on cannot be deleted under it."""


def who() -> str:
    """The user the audit names (the login name; ``"unknown"`` where the system has none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def record(scope: StudyScope, action: str, collection: str, query: Mapping[str, Any] | None, count: int,
           **extra: Any) -> None:
    """Append an audit record; the query is stored as JSON text (its ``$`` operators are not field names)."""
    text = json.dumps(query or {}, sort_keys=True, default=str)
    scope.index.insert_many(AUDIT, [scope.new_doc(action=action, collection=collection, query=text, count=int(count),
                                                  who=who(), at=time.time(), **extra)])


def recent(scope: StudyScope, limit: int = 10) -> list[dict[str, Any]]:
    """The newest audit records of the study, newest first."""
    return list(scope.index.find(AUDIT, scope.query(), sort=[("at", -1)], limit=limit))


def check_update(update: Any) -> dict[str, Any]:
    """``update`` if it only ``$set``s / ``$unset``s user fields, else :class:`InvalidQuery` (nothing written)."""
    if not isinstance(update, Mapping) or not update:
        raise InvalidQuery(f"update must be a non-empty dict like {{'$set': {{'label': 3}}}}, not {update!r}")
    out: dict[str, Any] = {}
    for op, fields in update.items():
        if op not in UPDATE_OPERATORS:
            raise InvalidQuery(f"update operator {op!r} is not allowed here: use $set or $unset "
                               "(sample payloads are immutable; tags and JSON fields are set or removed)")
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidQuery(f"{op} takes a non-empty dict of field -> value, not {fields!r}")
        checked = {}
        for path, value in fields.items():
            parts = path.split(".") if isinstance(path, str) else [""]
            head = parts[0]
            if not all(parts) or head.startswith(("_", "$")) or head in RESERVED_FIELDS:
                raise InvalidQuery(f"{op} on {path!r}: fields starting with '_' (ids, _seq, chunk references), "
                                   f"'$' and {sorted(RESERVED_FIELDS)} are reserved; name a tag or a JSON field")
            try:
                checked[path] = 1 if op == "$unset" else check_json_value(value, path)
            except InvalidDocument as exc:
                raise InvalidQuery(f"{op}: {exc}") from exc
        out[op] = checked
    return out


def update_data(scope: StudyScope, query: Mapping[str, Any] | None, update: Mapping[str, Any]) -> int:
    """``$set``/``$unset`` tags and JSON fields (``label`` too) of the matching samples; returns how many matched.

    A record's binary field keeps its name: setting a JSON value under it is
    refused, as it would shadow the bytes.  Dataset versions keep the labels
    they pinned.
    """
    scope.require_writable()
    checked = check_update(update)
    q = scope.query(query)
    for path in {p.split(".")[0] for fields in checked.values() for p in fields}:
        binary = {"_y": {"$exists": True}} if path == "label" else {f"_fields.{path}": {"$exists": True}}
        if scope.index.count(DATA, {"$and": [q, binary]}):
            raise InvalidQuery(f"{path!r} is a binary field (an array label or a record's payload) of matching "
                               "samples: payloads are immutable")
    count = scope.index.update_many(DATA, q, checked)
    if count:
        bump_data_generation(scope.index)  # index memos holding the old labels re-read (store/generations.py)
    record(scope, "relabel", DATA, query, count, update=json.dumps(checked, sort_keys=True))
    return count


def delete_data(scope: StudyScope, query: Mapping[str, Any] | None) -> int:
    """Delete the matching samples of this study; returns how many.

    Their chunks go at a gc after its grace period (each gets an intent dated
    now, so a stream that planned reads of them finishes), unless a dataset
    version pins them (the version reads its own copies).
    """
    scope.require_writable()
    q = scope.query(query)
    chunks = {key for doc in scope.index.find(DATA, q, projection=_CHUNK_REFS, batch_size=5000)
              for key in _chunk_keys(doc)}
    if chunks:
        now = time.time()
        scope.index.insert_many(INTENTS, [{"key": key, "at": now} for key in sorted(chunks)])
    count = scope.index.delete_many(DATA, q)
    if count:
        bump_data_generation(scope.index)  # index memos holding the deleted samples re-read
    record(scope, "delete", DATA, query, count)
    return count


def delete_parameters(scope: StudyScope, query: Mapping[str, Any] | None) -> int:
    """Delete matching parameter sets; refuses (:class:`ReferencedParameters`, nothing deleted) when an alias
    points at one now or a registered model version names one: a model that loads must stay loadable."""
    scope.require_writable()
    q = scope.query(query)
    doomed = [d["_id"] for d in scope.index.find(params.COLLECTION, q, projection={"_id": 1})]
    if doomed:
        aliased = [d["name"] for d in scope.index.find(aliases.COLLECTION,
                                                        scope.query({"target": {"$in": doomed}}))]
        versions = [f"{d['name']} v{d['version']}" for d in scope.index.find(
            registry.VERSIONS, scope.query({"param_id": {"$in": doomed}}))]
        if aliased or versions:
            raise ReferencedParameters(
                f"refused: {len(doomed)} parameter set(s) match, and some are still in use (aliases: "
                f"{sorted(aliased)[:5]}, registered model versions: {sorted(versions)[:5]}); point the aliases "
                "elsewhere, or narrow the query to sets no model version names")
    count = scope.index.delete_many(params.COLLECTION, scope.query({"_id": {"$in": doomed}})) if doomed else 0
    record(scope, "delete", params.COLLECTION, query, count)
    return count


def delete_logs(scope: StudyScope, kind: str | None, query: Mapping[str, Any] | None) -> int:
    """Delete matching log records of ``kind`` (``train``/``valid``/``test``; None: every kind)."""
    scope.require_writable()
    if kind is not None and kind not in logs.KINDS:
        raise InvalidQuery(f"log kind must be one of {logs.KINDS} (or None for all), not {kind!r}")
    q = scope.query(query)
    if kind is not None:
        q = {"$and": [q, {"kind": kind}]}
    count = scope.index.delete_many(logs.COLLECTION, q)
    record(scope, "delete", logs.COLLECTION, query, count, kind=kind)
    return count


def delete_jobs(scope: StudyScope, query: Mapping[str, Any] | None) -> int:
    """Delete matching jobs; refuses (:class:`RunningJobs`) while a worker holds a live lease on one."""
    scope.require_writable()
    q = scope.query(query)
    running = scope.index.count(jobs.COLLECTION, {"$and": [q, {"status": "running",
                                                                 "lease_until": {"$gte": time.time()}}]})
    if running:
        raise RunningJobs(f"refused: {running} matching job(s) are running under a live lease; wait for them, "
                          "or narrow the query with {'status': {'$ne': 'running'}}")
    count = scope.index.delete_many(jobs.COLLECTION, q)
    record(scope, "delete", jobs.COLLECTION, query, count)
    return count


def delete_model_architectures(scope: StudyScope, query: Mapping[str, Any] | None) -> int:
    """Delete matching architectures.  Parameter sets keep their lineage's architecture id (now dangling)."""
    scope.require_writable()
    count = scope.index.delete_many(models.COLLECTION, scope.query(query))
    record(scope, "delete", models.COLLECTION, query, count)
    return count


__all__ = ["AUDIT", "ReferencedParameters", "RunningJobs", "check_update", "delete_data", "delete_jobs",
           "delete_logs", "delete_model_architectures", "delete_parameters", "recent", "record", "update_data"]
