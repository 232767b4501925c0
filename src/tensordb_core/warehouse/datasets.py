"""Named dataset versions: "the data this model saw", pinned so relabels, imports and deletions never change it.

Layout (docs/FORMAT.md, "Dataset versions"): one small document per version
in :data:`DATASETS` (``_id`` ``<study>:<name>``: name, query, who, when,
description, count, state) and one document per pinned sample in
:data:`~tensordb_core.store.scope.MEMBERS`: a copy of the sample's document
as it was (tags, labels, chunk references) with ``_dataset`` (the version id)
and ``_sample`` (the sample's id).  Why copies and not a list of ids: a
version of a million samples is a million small documents, never a
million-element one, and reading it needs no join: the stream and the cursor
read the members through :meth:`StudyScope.pinned` with the planner, fetcher
and decoder they use for live data, in the order the samples were pinned
(members are inserted in the data's ``_seq`` order, so a seed shuffles a
version as it shuffled the data).  Deleting a sample leaves its member (and,
through gc's references, its chunk) in place until every version pinning it
is dropped.

A save is committed by its version document's ``state`` turning ``ready``
after the last member is written: a save that died half-way reads as
``saving`` and is refused by readers (drop it and save again).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import IntegrityError, InvalidArgument, NotFound
from tensordb_core.store.protocols import new_id
from tensordb_core.store.scope import DATA, MEMBERS, StudyScope
from tensordb_core.stream.groups import newest_seq
from tensordb_core.warehouse import names
from tensordb_core.warehouse.arguments import check_text
from tensordb_core.warehouse.lifecycle import record, who

#: One document per dataset version of a study.
DATASETS = names.DATASETS
#: Members written per ``insert_many`` while pinning.
PIN_BATCH = 5000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


class DatasetExists(IntegrityError):
    """``save_dataset`` under a name the study already uses (drop it first, or pick another name)."""


class DatasetNotFound(NotFound):
    """No (complete) dataset version of that name in the study."""


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:60] + f"... ({len(str(name))} characters)"
        raise InvalidArgument(f"dataset name {shown}: 1-128 letters, digits, '.', '_' or '-', starting alphanumeric")
    return name


def save_dataset(scope: StudyScope, name: str, query: Mapping[str, Any] | None = None, *,
                 description: str | None = None) -> dict[str, Any]:
    """Pin the samples matching ``query`` now (ids, tags, labels, chunk references) as version ``name``.

    Returns the version's info (:func:`dataset_info`).  Samples imported while
    the save runs are not pinned: the population is the study's data up to
    its newest ``_seq`` when the save starts.
    """
    study = scope.require_writable()
    check_name(name)
    q = scope.query(query)
    check_text(description, "description")
    version = new_id()
    doc = scope.new_doc(_id=f"{study}:{name}", name=name, version=version, query=json.dumps(query or {}, default=str),
                        description=description, who=who(), created=time.time(), state="saving", count=0)
    try:
        scope.index.insert_many(DATASETS, [doc])
    except IntegrityError as exc:
        raise DatasetExists(f"dataset {name!r} exists in study {study!r}: drop it first "
                            "(db.drop_dataset / tensordb datasets drop) or choose another name") from exc
    try:
        count = _pin(scope, version, {"$and": [q, {"_seq": {"$lte": newest_seq(scope)}}]})
        scope.index.update_many(DATASETS, {"_id": doc["_id"], "version": version},
                                {"$set": {"state": "ready", "count": count}})
    except BaseException:
        _remove(scope, doc["_id"], version)
        raise
    return dataset_info(scope, name)


def _pin(scope: StudyScope, version: str, query: Mapping[str, Any]) -> int:
    """Copy every matching sample document into the members collection, in ``_seq`` order; return how many."""
    count, page = 0, []
    for sample in scope.index.find(DATA, query, batch_size=PIN_BATCH):
        member = {k: v for k, v in sample.items() if k != "_seq"}
        member.update(_id=f"{version}:{sample['_id']}", _sample=sample["_id"], _dataset=version)
        page.append(member)
        if len(page) >= PIN_BATCH:
            count += len(scope.index.insert_many(MEMBERS, page))
            page = []
    if page:
        count += len(scope.index.insert_many(MEMBERS, page))
    return count


def _remove(scope: StudyScope, doc_id: str, version: str) -> int:
    """Delete a version: its document first (readers stop finding it), then its members."""
    scope.index.delete_many(DATASETS, {"_id": doc_id, "version": version})
    return scope.index.delete_many(MEMBERS, {"_dataset": version})


def _doc(scope: StudyScope, name: str) -> dict[str, Any]:
    check_name(name)
    found = next(iter(scope.index.find(DATASETS, scope.query({"name": name}), limit=1)), None)
    if found is None:
        raise DatasetNotFound(f"no dataset {name!r} in study {scope.study!r}: see db.list_datasets() "
                              "or `tensordb datasets list`")
    return found


def _info(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": doc["name"], "count": doc.get("count", 0), "query": json.loads(doc.get("query") or "{}"),
            "created": doc.get("created"), "who": doc.get("who"), "description": doc.get("description"),
            "state": doc.get("state"), "version": doc.get("version")}


def dataset_info(scope: StudyScope, name: str) -> dict[str, Any]:
    """Name, count, query, created (epoch seconds), who, description, state (``ready``/``saving``), version id."""
    return _info(_doc(scope, name))


def list_datasets(scope: StudyScope) -> list[dict[str, Any]]:
    """Every dataset version of the study (:func:`dataset_info` of each), oldest first."""
    return [_info(d) for d in scope.index.find(DATASETS, scope.query(), sort=[("created", 1)])]


def drop_dataset(scope: StudyScope, name: str) -> int:
    """Drop a version; returns how many pinned samples it held.  Samples deleted since become gc's to collect."""
    scope.require_writable()
    doc = _doc(scope, name)
    count = _remove(scope, doc["_id"], doc["version"])
    record(scope, "drop_dataset", DATASETS, {"name": name}, count)
    return count


def open_version(scope: StudyScope, name: str) -> tuple[StudyScope, dict[str, Any]]:
    """The read-only view of a complete version and its info (:class:`DatasetNotFound` if absent or unfinished)."""
    doc = _doc(scope, name)
    if doc.get("state") != "ready":
        raise DatasetNotFound(f"dataset {name!r} is incomplete (its save was interrupted): drop it and save again")
    last = next((int(d["_seq"]) for d in scope.index.find(  # asked, not stored: a copied index renumbers _seq
        MEMBERS, {"_dataset": doc["version"]}, sort=[("_seq", -1)], limit=1, projection={"_seq": 1})), 0)
    return scope.pinned(doc["version"]), {**_info(doc), "last": last}


def stream_args(scope: StudyScope, name: str, kwargs: Mapping[str, Any]) -> tuple[StudyScope, dict[str, Any]]:
    """The view and stream arguments of ``data_generator(..., dataset=name)``: the population is the version's.

    Follow mode and ``as_of`` are refused: a version never grows, and its
    population is its own (``as_of`` is set to its last member).
    """
    for refused in ("follow", "as_of"):
        if kwargs.get(refused):
            raise InvalidArgument(f"{refused}= cannot be combined with dataset=: a dataset version is fixed")
    view, info = open_version(scope, name)
    return view, {**kwargs, "as_of": info["last"]}


def collect_orphan_members(index: Any) -> int:
    """Delete members whose version has no document (a drop that died between its two deletes); gc calls it.

    A save writes its version document before its first member, so a save in
    progress never looks orphaned.
    """
    known = {d["version"] for d in index.find(DATASETS, {}, projection={"version": 1})}
    orphaned = {m["_dataset"] for m in index.find(MEMBERS, {}, projection={"_dataset": 1}, batch_size=PIN_BATCH)
                if m.get("_dataset") not in known}
    return sum(index.delete_many(MEMBERS, {"_dataset": version}) for version in orphaned)


__all__ = [
    "DATASETS",
    "MEMBERS",
    "DatasetExists",
    "DatasetNotFound",
    "collect_orphan_members",
    "dataset_info",
    "drop_dataset",
    "list_datasets",
    "open_version",
    "save_dataset",
    "stream_args",
]
