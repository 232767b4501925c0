"""Registered models: named, numbered versions of parameter sets, with aliases and lineage.

``register_model("digits", param_id)`` gives version 1, then 2, 3, ... per
name.  The number comes from one atomic ``find_one_and_update`` ``$inc`` on the
model's document, so concurrent registrations never share a version (a
registration that fails after taking its number leaves a gap, never a
duplicate).  Each version copies the parameter set's lineage — the run, job,
architecture and data snapshot that produced it — which is what lets
``load_model("digits", alias="production")`` answer "trained on what?".

Aliases (``production``, ``staging``) point at versions; the current mapping
lives on the model document (``aliases``), every change appends a history
record like :mod:`tensordb_core.warehouse.aliases` does for parameter aliases.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from tensordb_core.errors import DocumentNotFound, IntegrityError, InvalidDocument
from tensordb_core.store.scope import StudyScope
from tensordb_core.warehouse import params
from tensordb_core.warehouse.aliases import _who
from tensordb_core.warehouse.arguments import check_optional_name, check_text

MODELS = "registered_models"
VERSIONS = "model_versions"
ALIAS_HISTORY = "model_alias_history"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


def check_name(name: Any, what: str = "model name") -> str:
    """Letters, digits, ``.``, ``_``, ``-`` (no ``@``: ``name@alias`` names an alias)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidDocument(f"invalid {what} {name!r}: 1-128 letters, digits, '.', '_' or '-', starting alphanumeric")
    return name


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", alias):
        raise InvalidDocument(f"invalid alias {alias!r}: 1-64 letters, digits, '_' or '-', starting alphanumeric")
    return alias


def _model_id(scope: StudyScope, name: str) -> str:
    return f"{scope.study}:{name}"


def _ensure_model(scope: StudyScope, name: str, description: str | None) -> None:
    doc_id = _model_id(scope, name)
    if scope.index.count(MODELS, scope.query({"_id": doc_id})):
        return
    try:
        scope.index.insert_many(MODELS, [scope.new_doc(_id=doc_id, name=name, description=description,
                                                       latest_version=0, aliases={}, updated=time.time())])
    except IntegrityError:
        pass  # registered concurrently by another writer: its document serves


def register_model(scope: StudyScope, name: str, param_id: str, *, description: str | None = None,
                   run: str | None = None) -> int:
    """Register parameter set ``param_id`` of this study as the next version of ``name``; returns the version.

    ``run`` is the run active at registration (the parameter set's own run is
    taken from its lineage).
    """
    scope.require_writable()
    check_text(description, "description")
    check_name(name)
    if description is not None and not isinstance(description, str):
        raise InvalidDocument("description must be a string")
    source = next(iter(scope.index.find(params.COLLECTION, scope.query({"_id": param_id}), limit=1)), None)
    if not isinstance(param_id, str) or source is None:
        raise DocumentNotFound(f"no parameter set {param_id!r} in study {scope.study!r} to register as {name!r}")
    _ensure_model(scope, name, description)
    now = time.time()
    bump: dict[str, Any] = {"$inc": {"latest_version": 1}, "$set": {"updated": now}}
    if description is not None:
        bump["$set"]["description"] = description
    model = scope.index.find_one_and_update(MODELS, scope.query({"_id": _model_id(scope, name)}), bump)
    if model is None:
        raise DocumentNotFound(f"model {name!r} vanished while registering; try again")
    version = int(model["latest_version"])
    lineage = dict(source.get("lineage") or {})
    scope.index.insert_many(VERSIONS, [scope.new_doc(
        _id=f"{_model_id(scope, name)}:{version}", name=name, version=version, param_id=param_id,
        description=description, run=lineage.get("run"), job=lineage.get("job") or source.get("job"),
        arch=lineage.get("arch") or source.get("arch"), data=lineage.get("data"), metrics=source.get("metrics") or {},
        step=source.get("step"), registered_in_run=run, registered_by=_who(), registered=now)])
    return version


def get_model_version(scope: StudyScope, name: str, version: int) -> dict[str, Any]:
    """The version document (parameter id, lineage, metrics), or :class:`DocumentNotFound`."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidDocument(f"a model version is an int, not {version!r}")
    for doc in scope.index.find(VERSIONS, scope.query({"name": name, "version": version}), limit=1):
        return doc
    raise DocumentNotFound(f"model {name!r} of study {scope.study!r} has no version {version}")


def list_models(scope: StudyScope) -> list[dict[str, Any]]:
    """Every registered model of the study (name, description, latest_version, aliases), by name."""
    return list(scope.index.find(MODELS, scope.query({}), sort=[("name", 1)]))


def list_versions(scope: StudyScope, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, oldest first."""
    check_name(name)
    return list(scope.index.find(VERSIONS, scope.query({"name": name}), sort=[("version", 1)]))


def _model(scope: StudyScope, name: str) -> dict[str, Any]:
    for doc in scope.index.find(MODELS, scope.query({"_id": _model_id(scope, name)}), limit=1):
        return doc
    raise DocumentNotFound(f"no registered model {name!r} in study {scope.study!r}")


def set_model_alias(scope: StudyScope, name: str, alias: str, version: int, *, who: str | None = None,
                    run: str | None = None) -> int | None:
    """Point ``name@alias`` at ``version``; returns the previous version (None if new).  History is kept."""
    scope.require_writable()
    check_alias(alias)
    check_optional_name(who, "who")
    get_model_version(scope, name, version)
    now, by = time.time(), who or _who()
    for _ in range(5):
        previous = (_model(scope, name).get("aliases") or {}).get(alias)
        swapped = scope.index.find_one_and_update(
            MODELS, scope.query({"_id": _model_id(scope, name), f"aliases.{alias}": previous}),
            {"$set": {f"aliases.{alias}": version, "updated": now}})
        if swapped is None:
            continue  # changed under us: re-read
        scope.index.insert_many(ALIAS_HISTORY, [scope.new_doc(name=name, alias=alias, previous=previous,
                                                              version=version, who=by, at=now, run=run)])
        return previous
    raise IntegrityError(f"alias {name}@{alias} kept changing concurrently; try again")


def model_alias_history(scope: StudyScope, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Every alias change of ``name`` (one alias, or all), oldest first."""
    check_name(name)
    if alias is not None:
        check_alias(alias)
    q: dict[str, Any] = {"name": name} if alias is None else {"name": name, "alias": alias}
    return list(scope.index.find(ALIAS_HISTORY, scope.query(q), sort=[("at", 1), ("_seq", 1)]))


def resolve(scope: StudyScope, name: str, *, alias: str | None = None, version: int | None = None) -> dict[str, Any]:
    """The version document ``name@alias`` or ``name`` version ``version`` names (latest when neither)."""
    if alias is not None and version is not None:
        raise InvalidDocument("give alias= or version=, not both")
    model = _model(scope, name)
    if alias is not None:
        version = (model.get("aliases") or {}).get(check_alias(alias))
        if version is None:
            raise DocumentNotFound(f"model {name!r} has no alias {alias!r} (set it with set_model_alias)")
    return get_model_version(scope, name, int(model["latest_version"]) if version is None else version)


def load_model(scope: StudyScope, name: str, *, alias: str | None = None,
               version: int | None = None) -> dict[str, np.ndarray] | list[np.ndarray]:
    """The parameter arrays of ``name@alias`` / ``name`` version ``version`` (the latest when neither)."""
    return params.load(scope, resolve(scope, name, alias=alias, version=version)["param_id"])
