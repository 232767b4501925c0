"""MongoDB-style projections (``{"a": 1}`` keeps, ``{"a": 0}`` drops), part of the portable language.

Why it is portable: the stream and the collections ask for a few fields of
many documents, and every store must return the same shape.  The rules are
MongoDB's (4.4+):

* inclusion (``{"a": 1, "n.x": 1}``) keeps only those paths, plus ``_id``
  unless ``{"_id": 0}``; fields come out in the document's own order; a dotted
  path keeps the sub-field inside every subdocument of an array and drops the
  array's scalars (``{"a.b": 1}`` on ``a: [{"b": 1, "c": 2}, 5]`` gives
  ``a: [{"b": 1}]``); a dotted path through a scalar drops the field;
* exclusion (``{"a": 0}``) removes those paths, inside arrays too;
* mixing inclusion and exclusion (other than ``_id: 0``) and overlapping
  paths (``a`` with ``a.b``) are :class:`~tensordb_core.errors.InvalidQuery`.

``_seq`` is an ordinary field here: an inclusion projection drops it unless
asked for (``{"_seq": 1}``), as MongoDB would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from tensordb_core.errors import InvalidQuery
from tensordb_core.query.values import copy_value, split_path

Projection = dict[str, int]


def validate_projection(projection: Any) -> Projection | None:
    """Normalize a projection to ``{path: 0 | 1}``; ``None`` or ``{}`` means whole documents."""
    if projection is None:
        return None
    if not isinstance(projection, Mapping):
        raise InvalidQuery(f"projection: expected a dict like {{'a': 1}}, got {type(projection).__name__}")
    if not projection:
        return None
    out: Projection = {}
    for path, flag in projection.items():
        split_path(path, "projection")
        if type(flag) not in (int, bool) or flag not in (0, 1):
            raise InvalidQuery(f"projection: {path!r} must be 1 (include) or 0 (exclude), got {flag!r}")
        out[path] = int(flag)
    modes = {flag for path, flag in out.items() if path != "_id"}
    if len(modes) > 1:
        wrong = next(p for p, f in out.items() if p != "_id" and f == 0)
        raise InvalidQuery(
            f"projection: {wrong!r}: 0 mixed with inclusions; exclude only _id in an inclusion projection"
        )
    paths = sorted(out)
    for a, b in itertools.pairwise(paths):
        if b.startswith(a + "."):
            raise InvalidQuery(f"projection: paths {a!r} and {b!r} collide; keep one")
    return out


def _tree(paths: list[str]) -> dict[str, Any]:
    """``["a", "n.x"]`` -> ``{"a": True, "n": {"x": True}}``."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = True
    return tree


def apply_projection(doc: Mapping[str, Any], projection: Any) -> dict[str, Any]:
    """A new document holding what ``projection`` selects from ``doc``."""
    return compile_projection(projection)(doc)


def compile_projection(projection: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Validate once and return a function that projects (and copies) one document."""
    spec = validate_projection(projection)
    if spec is None:
        return lambda doc: copy_value(dict(doc))
    keep_id = spec.get("_id", 1) == 1
    inclusion = [p for p, f in spec.items() if f == 1 and p != "_id"]
    if inclusion or all(f == 1 for f in spec.values()):
        tree = _tree(inclusion)
        if keep_id:
            tree["_id"] = True
        return lambda doc: _include(doc, tree)
    excluded = [p.split(".") for p, f in spec.items() if f == 0]

    def exclude(doc: Mapping[str, Any]) -> dict[str, Any]:
        out = copy_value(dict(doc))
        for parts in excluded:
            _exclude(out, parts)
        return out

    return exclude


def _include(doc: Mapping[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is None:
            continue
        if sub is True:
            out[key] = copy_value(value)
        elif isinstance(value, dict):
            out[key] = _include(value, sub)
        elif isinstance(value, (list, tuple)):
            out[key] = _include_array(value, sub)
    return out


def _include_array(values: Any, tree: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, dict):
            out.append(_include(v, tree))
        elif isinstance(v, (list, tuple)):
            out.append(_include_array(v, tree))
    return out


def _exclude(value: Any, parts: list[str]) -> None:
    if isinstance(value, dict):
        if len(parts) == 1:
            value.pop(parts[0], None)
        elif parts[0] in value:
            _exclude(value[parts[0]], parts[1:])
    elif isinstance(value, list):
        for v in value:
            _exclude(v, parts)
