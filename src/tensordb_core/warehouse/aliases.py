"""Named pointers to parameter sets ("production", "candidate") with a full history.

The current value lives in one document per alias; every change also appends
a history record (who, when, from, to), so "what was in production last
Tuesday" is :func:`get_alias` with ``at=``.
"""

from __future__ import annotations

import getpass
import math
import time
from typing import Any

from tensordb_core.errors import DocumentNotFound, IntegrityError, InvalidDocument, InvalidQuery
from tensordb_core.store.scope import StudyScope
from tensordb_core.warehouse.arguments import check_name, check_optional_name
from tensordb_core.warehouse.params import COLLECTION as PARAMS

COLLECTION = "aliases"
HISTORY = "alias_history"


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers)
        return "unknown"


def set_alias(scope: StudyScope, name: str, target: str, *, who: str | None = None,
              run: str | None = None) -> str | None:
    """Point ``name`` at ``target`` (a parameter id); returns the previous target.

    ``run`` (the handle's active run, if any) is recorded on the history record.
    """
    study = scope.require_writable()
    check_name(name, "an alias name")
    check_optional_name(who, "who")
    if not isinstance(target, str):
        raise InvalidDocument("an alias is a non-empty name pointing at a parameter id")
    if scope.index.count(PARAMS, scope.query({"_id": target})) != 1:
        raise DocumentNotFound(f"no parameter set {target!r} in study {study!r} for alias {name!r}")
    now, by = time.time(), who or _who()
    doc_id = f"{study}:{name}"
    for _ in range(5):
        before = next(iter(scope.index.find(COLLECTION, scope.query({"_id": doc_id}), limit=1)), None)
        if before is None:
            try:
                scope.index.insert_many(COLLECTION, [scope.new_doc(_id=doc_id, name=name, target=target, updated=now)])
            except IntegrityError:
                continue  # someone created it concurrently: retry as an update
            previous = None
        else:
            previous = before["target"]
            updated = scope.index.find_one_and_update(
                COLLECTION, scope.query({"_id": doc_id, "target": previous}),
                {"$set": {"target": target, "updated": now}})
            if updated is None:
                continue  # changed under us: re-read
        scope.index.insert_many(HISTORY, [scope.new_doc(name=name, previous=previous, target=target, who=by, at=now,
                                                      run=run)])
        return previous
    raise IntegrityError(f"alias {name!r} kept changing concurrently; try again")


def get_alias(scope: StudyScope, name: str, *, at: float | None = None) -> str | None:
    """The parameter id ``name`` points at now (or at time ``at``, Unix seconds), or None."""
    check_name(name, "an alias name")
    if at is not None and (not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at)):
        raise InvalidQuery(f"at must be a time in Unix seconds (time.time()), not {at!r}")
    if at is None:
        for doc in scope.index.find(COLLECTION, scope.query({"name": name}), limit=1):
            return doc["target"]
        return None
    for doc in scope.index.find(HISTORY, scope.query({"name": name, "at": {"$lte": at}}), sort=[("at", -1)], limit=1):
        return doc["target"]
    return None


def alias_history(scope: StudyScope, name: str) -> list[dict[str, Any]]:
    check_name(name, "an alias name")
    return list(scope.index.find(HISTORY, scope.query({"name": name}), sort=[("at", 1)]))
