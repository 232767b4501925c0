"""Portable update operators: ``$set $unset $inc $push $max $min`` with dotted paths.

Why so few: these are what the collections need (job state, leases and
heartbeats, metrics, tags) and what every index store can apply the same way,
atomically per document.  The rules are MongoDB's:

* ``$set`` creates missing subdocuments along a dotted path and pads arrays with
  ``None`` when a numeric part is beyond the end; a path through a scalar or
  null, or a non-numeric part on an array, cannot be applied;
* ``$unset`` removes a field (an array element becomes ``None``); unsetting
  what is absent is a no-op;
* ``$inc`` adds to a number (int + int stays int, overflow beyond int64 is
  refused) or sets a missing field; ``$push`` appends (``{"$each": [...]}``
  appends several) or creates the array;
* ``$max``/``$min`` replace the field when the new value is greater/less in
  MongoDB's order over all types, or set a missing field;
* fields are applied in lexicographic path order (MongoDB 5.0+), so new fields
  land in the same order on every backend.

Refused with :class:`~tensordb_core.errors.InvalidQuery`: replacement-style
updates (no operator), other operators, touching ``_id``/``_seq``, two
operators on the same or overlapping paths (``a`` and ``a.b``), and values that
are not JSON-like.  A document an update cannot apply to (``$inc`` on a
string, ``$set`` through a scalar) is also ``InvalidQuery``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from tensordb_core.errors import InvalidQuery
from tensordb_core.query.values import (
    INT64_MAX,
    INT64_MIN,
    MISSING,
    array_index,
    check_value,
    compare,
    copy_value,
    split_path,
)

UPDATE_OPERATORS = ("$set", "$unset", "$inc", "$push", "$max", "$min")
RESERVED = frozenset({"_id", "_seq"})

Update = dict[str, dict[str, Any]]


def validate_update(update: Any) -> Update:
    """Check an update document and return a normalized copy."""
    if not isinstance(update, Mapping) or not update:
        raise InvalidQuery("update: expected a non-empty dict of operators like {'$set': {'state': 'done'}}")
    out: Update = {}
    seen: list[str] = []
    for op, fields in update.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise InvalidQuery(
                f"update: {op!r} is not an operator; replacement-style updates are refused, "
                f"use {{'$set': {{...}}}} (operators: {' '.join(UPDATE_OPERATORS)})"
            )
        if op not in UPDATE_OPERATORS:
            raise InvalidQuery(f"update: unknown operator {op!r}; the portable ones are {' '.join(UPDATE_OPERATORS)}")
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidQuery(f"update: {op} takes a non-empty dict of {{path: value}}")
        checked: dict[str, Any] = {}
        for path, value in fields.items():
            where = f"update.{op}.{path}"
            parts = split_path(path, where)
            if parts[0] in RESERVED:
                raise InvalidQuery(f"{where}: {parts[0]} is assigned by the store and cannot be updated")
            checked[path] = _check_operand(op, value, where)
            seen.append(path)
        out[op] = checked
    ordered = sorted(seen)
    for a, b in itertools.pairwise(ordered):
        if a == b or b.startswith(a + "."):
            raise InvalidQuery(f"update: paths {a!r} and {b!r} conflict; update each field once")
    return out


def _check_operand(op: str, value: Any, where: str) -> Any:
    if op == "$unset":
        return ""
    if op == "$inc":
        if type(value) is bool or not isinstance(value, (int, float)):
            raise InvalidQuery(f"{where}: $inc takes a number, got {value!r}")
        return check_value(value, where, InvalidQuery)
    if op == "$push" and isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
        if set(value) != {"$each"} or not isinstance(value["$each"], (list, tuple)):
            raise InvalidQuery(f"{where}: $push supports only {{'$each': [...]}} among its modifiers")
        return {"$each": check_value(list(value["$each"]), where, InvalidQuery)}
    return check_value(value, where, InvalidQuery)


def _path_order(path: str) -> tuple:
    return tuple((0, int(p), "") if array_index(p) is not None else (1, 0, p) for p in path.split("."))


def apply_update(doc: Mapping[str, Any], update: Any) -> dict[str, Any]:
    """A new document: ``doc`` with ``update`` applied (``doc`` itself is not modified)."""
    return compile_update(update)(doc)


def compile_update(update: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Validate once and return a function applying the update to a copy of one document."""
    spec = validate_update(update)
    steps = sorted(
        ((path, op, arg) for op, fields in spec.items() for path, arg in fields.items()),
        key=lambda step: _path_order(step[0]),
    )

    def apply(doc: Mapping[str, Any]) -> dict[str, Any]:
        out = copy_value(dict(doc))
        for path, op, arg in steps:
            _apply(out, op, path, arg)
        return out

    return apply


def _apply(doc: dict[str, Any], op: str, path: str, arg: Any) -> None:
    parts = path.split(".")
    found = _parent(doc, parts, path, create=op != "$unset")
    if found is None:
        return
    container, key = found
    current = _get(container, key, path, doc, strict=op != "$unset")
    if op == "$set":
        _put(container, key, copy_value(arg), path, doc)
    elif op == "$unset":
        if current is MISSING:
            return
        if isinstance(container, dict):
            del container[key]
        else:
            container[int(key)] = None
    elif op == "$inc":
        if current is MISSING:
            _put(container, key, arg, path, doc)
            return
        if type(current) is bool or not isinstance(current, (int, float)):
            raise _cannot(doc, f"$inc on {path!r}, which holds {type(current).__name__} {current!r}")
        total = current + arg
        if isinstance(total, int) and not INT64_MIN <= total <= INT64_MAX:
            raise _cannot(doc, f"$inc on {path!r} overflows a 64-bit integer")
        if isinstance(total, float) and not math.isfinite(total):
            raise _cannot(doc, f"$inc on {path!r} overflows to infinity")
        _put(container, key, total, path, doc)
    elif op == "$push":
        items = copy_value(arg["$each"]) if isinstance(arg, dict) and "$each" in arg else [copy_value(arg)]
        if current is MISSING:
            _put(container, key, items, path, doc)
        elif isinstance(current, list):
            current.extend(items)
        else:
            raise _cannot(doc, f"$push on {path!r}, which holds {type(current).__name__} {current!r}, not an array")
    elif current is MISSING or compare(arg, current) == (1 if op == "$max" else -1):  # $max / $min
        _put(container, key, copy_value(arg), path, doc)


def _cannot(doc: Mapping[str, Any], what: str) -> InvalidQuery:
    return InvalidQuery(f"update cannot apply to document {doc.get('_id')!r}: {what}")


def _parent(doc: dict[str, Any], parts: list[str], path: str, *, create: bool) -> tuple[Any, str] | None:
    """The container holding the last part of ``path``, creating subdocuments when ``create``."""
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        child = _get(node, part, path, doc, strict=create)
        if child is MISSING:
            if not create:
                return None
            child = {}
            _put(node, part, child, path, doc)
        elif not isinstance(child, (dict, list)):
            if not create:
                return None
            prefix = ".".join(parts[: i + 1])
            raise _cannot(doc, f"cannot create field {parts[i + 1]!r} in {prefix!r}, which holds {child!r}")
        node = child
    return node, parts[-1]


def _get(node: Any, part: str, path: str, doc: Mapping[str, Any], strict: bool = True) -> Any:
    if isinstance(node, dict):
        return node.get(part, MISSING)
    index = array_index(part)
    if index is None:
        if strict:
            raise _cannot(doc, f"{part!r} in {path!r} is not an array position")
        return MISSING
    return node[index] if index < len(node) else MISSING


def _put(node: Any, part: str, value: Any, path: str, doc: Mapping[str, Any]) -> None:
    if isinstance(node, dict):
        node[part] = value
        return
    index = array_index(part)
    if index is None:
        raise _cannot(doc, f"{part!r} in {path!r} is not an array position")
    if index >= len(node):
        node.extend([None] * (index + 1 - len(node)))
    node[index] = value
