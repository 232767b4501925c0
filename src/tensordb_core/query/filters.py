"""The portable query language: a MongoDB filter subset every index store answers identically.

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor $not $all
$size $elemMatch``, dotted paths, plus sort/limit/skip/projection
(:mod:`tensordb_core.query.projection`) and updates (:mod:`tensordb_core.query.updates`),
all importable from here.

Why a reference evaluator: the embedded SQLite store only *narrows* candidates
in SQL and lets :func:`matches` decide, the memory store uses it directly, and
the conformance suite checks every backend (MongoDB included) against it; so
:func:`matches` follows MongoDB's semantics (8.0, the ``null_query_semantics``
rules) rather than anything convenient:

* implicit array traversal: ``{"tags": "a"}`` matches ``tags: ["a", "b"]``;
  ``{"a.b": 1}`` looks into every subdocument of an array ``a``; scalars inside
  such an array contribute nothing (so ``{"a.b": None}`` does not match
  ``a: [1, 2]``), a subdocument lacking ``b`` contributes "missing";
* ``{"a": None}`` (and ``$in: [None]``, ``$gte/$lte: None``) matches null or
  missing; ``$ne``/``$nin``/``$not`` are exact negations, so they match missing;
* type-bracketed comparisons: ``$gt: 5`` only matches numbers, strings compare
  by code point, a bool is never a number (``True`` does not equal ``1``);
* equality of subdocuments is exact and field-order sensitive; of arrays, exact;
* ``$size`` and ``$elemMatch`` apply to an array at the path, not to its elements.

Deliberate refusals (:class:`~tensordb_core.errors.InvalidQuery`, raised before
any backend sees the query): server-side code (``$where``, ``$function``,
``$expr``, ``$accumulator``), any operator outside the subset (``$regex``,
``$type``, ``$mod``...), range operators (``$gt``...) with an array or object
operand (MongoDB's whole-array ordering there surprises everyone; compare
fields instead), ``$elemMatch`` inside ``$all``, values that are not JSON
(NaN, infinities, bytes, sets, integers beyond 64 bits), non-``str`` keys and
nesting deeper than :data:`MAX_QUERY_DEPTH`.

* a numeric path part (``"a.0"``) both indexes an array and, inside its
  subdocuments, names a field; the element it indexes is compared whole.

Outside the portable contract (deterministic here, may differ on a backend):
sorting on array-valued fields (see :func:`sort_key`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tensordb_core.errors import InvalidQuery
from tensordb_core.query.values import (
    MISSING,
    NULL,
    NUMBER,
    STRING,
    array_index,
    bracket,
    check_document,
    check_value,
    compare,
    split_path,
    value_key,
    values_equal,
)

#: The deepest a query may nest dicts and lists.
MAX_QUERY_DEPTH = 32
#: Operators that would run code on the server: refused, always.
SERVER_SIDE_CODE = frozenset({"$where", "$function", "$expr", "$accumulator"})
LOGICAL = frozenset({"$and", "$or", "$nor"})
COMPARISON = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
FIELD_OPERATORS = COMPARISON | frozenset({"$in", "$nin", "$exists", "$not", "$all", "$size", "$elemMatch"})
SUPPORTED = "$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor $not $all $size $elemMatch"

Query = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Validation


def validate_query(query: Query | None) -> dict[str, Any]:
    """Check ``query`` against the portable subset and return a normalized copy (``None`` -> ``{}``).

    Raises :class:`~tensordb_core.errors.InvalidQuery` naming the offending key.
    """
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise InvalidQuery(f"a query is a dict, got {type(query).__name__}")
    return _validate_filter(query, 1, "query")


def _depth_check(depth: int, where: str) -> None:
    if depth > MAX_QUERY_DEPTH:
        raise InvalidQuery(f"{where}: query nested deeper than {MAX_QUERY_DEPTH} levels")


def _unknown(op: str, where: str) -> InvalidQuery:
    if op in SERVER_SIDE_CODE:
        return InvalidQuery(
            f"{where}: {op} is server-side code and is refused; "
            f"express the filter with the portable operators ({SUPPORTED})"
        )
    return InvalidQuery(f"{where}: unknown operator {op!r}; the portable subset is {SUPPORTED}")


def _string_keyed(mapping: Mapping[Any, Any], depth: int, where: str) -> Iterator[tuple[str, Any]]:
    """The items of one level of a query, after the depth check; a non-``str`` key is refused."""
    _depth_check(depth, where)
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise InvalidQuery(f"{where}: key {key!r} is not a string")
        yield key, value


def _validate_filter(query: Mapping[Any, Any], depth: int, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _string_keyed(query, depth, where):
        if key.startswith("$"):
            if key in LOGICAL:
                out[key] = _validate_clauses(key, value, depth, f"{where}.{key}")
            elif key in FIELD_OPERATORS:
                raise InvalidQuery(f"{where}: operator {key} must follow a field name: {{field: {{{key}: ...}}}}")
            else:
                raise _unknown(key, where)
        else:
            split_path(key, where)
            out[key] = _validate_condition(value, depth + 1, f"{where}.{key}")
    return out


def _validate_clauses(op: str, value: Any, depth: int, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidQuery(f"{where}: {op} takes a non-empty list of queries")
    clauses = []
    for i, clause in enumerate(value):
        if not isinstance(clause, Mapping):
            raise InvalidQuery(f"{where}[{i}]: {op} takes a list of dicts, got {type(clause).__name__}")
        clauses.append(_validate_filter(clause, depth + 2, f"{where}[{i}]"))
    return clauses


def _is_operator_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value)


def _validate_condition(value: Any, depth: int, where: str) -> Any:
    """A field's condition: a literal (equality) or a dict of operators."""
    _depth_check(depth, where)
    if _is_operator_dict(value):
        return _validate_operators(value, depth, where)
    return _literal(value, depth, where)


def _literal(value: Any, depth: int, where: str) -> Any:
    if isinstance(value, Mapping):
        for k in value:
            if isinstance(k, str) and k.startswith("$"):
                raise InvalidQuery(f"{where}: operator {k} inside a literal value")
    return check_value(value, where, InvalidQuery, depth, MAX_QUERY_DEPTH)


def _validate_operators(ops: Mapping[Any, Any], depth: int, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, arg in _string_keyed(ops, depth, where):
        if not op.startswith("$"):
            raise InvalidQuery(f"{where}: field {op!r} mixed with operators; put operators and subdocuments apart")
        here = f"{where}.{op}"
        if op in ("$eq", "$ne"):
            out[op] = _literal(arg, depth + 1, here)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if arg is not None and isinstance(arg, (Mapping, list, tuple)):
                raise InvalidQuery(f"{here}: takes a number, string, bool or null (not {type(arg).__name__})")
            out[op] = _literal(arg, depth + 1, here)
        elif op in ("$in", "$nin", "$all"):
            if not isinstance(arg, (list, tuple)):
                raise InvalidQuery(f"{here}: takes a list, got {type(arg).__name__}")
            items = []
            for i, item in enumerate(arg):
                if _is_operator_dict(item):
                    raise InvalidQuery(f"{here}[{i}]: operators inside {op} are outside the portable subset")
                items.append(_literal(item, depth + 2, f"{here}[{i}]"))
            out[op] = items
        elif op == "$exists":
            if type(arg) is not bool:
                raise InvalidQuery(f"{here}: takes true or false, got {arg!r}")
            out[op] = arg
        elif op == "$size":
            if type(arg) is not int or arg < 0:
                raise InvalidQuery(f"{here}: takes a non-negative int, got {arg!r}")
            out[op] = arg
        elif op == "$not":
            if not isinstance(arg, Mapping) or not arg:
                raise InvalidQuery(f"{here}: takes a non-empty dict of operators, e.g. {{'$not': {{'$gt': 5}}}}")
            for k in arg:
                if not (isinstance(k, str) and k.startswith("$")):
                    raise InvalidQuery(f"{here}: takes operators only, found {k!r}")
            out[op] = _validate_operators(arg, depth + 1, here)
        elif op == "$elemMatch":
            out[op] = _validate_elem_match(arg, depth + 1, here)
        elif op in LOGICAL:
            raise InvalidQuery(f"{here}: {op} belongs at the top of a query, not under a field")
        else:
            raise _unknown(op, where)
    return out


def _elem_match_is_value_form(spec: Mapping[str, Any]) -> bool:
    """``{$elemMatch: {$gt: 1}}`` tests elements as values; ``{$elemMatch: {b: 1}}`` as documents."""
    return bool(spec) and all(k.startswith("$") and k not in LOGICAL for k in spec)


def _validate_elem_match(arg: Any, depth: int, where: str) -> dict[str, Any]:
    if not isinstance(arg, Mapping):
        raise InvalidQuery(f"{where}: takes a dict, got {type(arg).__name__}")
    for k in arg:
        if not isinstance(k, str):
            raise InvalidQuery(f"{where}: key {k!r} is not a string")
    if _elem_match_is_value_form(arg):
        return _validate_operators(arg, depth, where)
    for k in arg:
        if k.startswith("$") and k not in LOGICAL:
            if k in FIELD_OPERATORS:
                raise InvalidQuery(f"{where}: operator {k} mixed with field names")
            raise _unknown(k, where)
    return _validate_filter(arg, depth, where)


# ---------------------------------------------------------------------------------------------
# Evaluation


def matches(doc: Mapping[str, Any], query: Query | None) -> bool:
    """Whether ``doc`` satisfies ``query`` under MongoDB's semantics (validates ``query`` first)."""
    return _match_filter(doc, validate_query(query))


def compile_query(query: Query | None) -> Callable[[Mapping[str, Any]], bool]:
    """Validate once and return a predicate: what a store calls per candidate document."""
    checked = validate_query(query)
    if not checked:
        return lambda doc: True
    clauses = _flat_clauses(checked)
    if clauses is None:
        return lambda doc: _match_filter(doc, checked)
    tests = [_compile_clause(key, cond) for key, cond in clauses]
    if len(tests) == 1:
        return tests[0]
    return lambda doc: all(test(doc) for test in tests)


def _flat_clauses(query: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """The field clauses of a query that is only an AND of them (``$and`` flattened), else None."""
    out: list[tuple[str, Any]] = []
    for key, cond in query.items():
        if key == "$and":
            for sub in cond:
                inner = _flat_clauses(sub)
                if inner is None:
                    return None
                out.extend(inner)
        elif key.startswith("$"):
            return None
        else:
            out.append((key, cond))
    return out


def _compile_clause(key: str, cond: Any) -> Callable[[Mapping[str, Any]], bool]:
    """One field clause as a predicate, with shortcuts for the commonest: a top-level tag equal to a
    string or integer (``{"split": "train"}``, the study filter), and a numeric range on a top-level
    field (``{"_seq": {"$lte": n}}``, the stream's block reads; ``{"label": {"$gte": 3}}``).  A shortcut
    answers only when the stored value has the type it handles (an int, or an int or float that is not
    NaN); anything else (arrays, bools, strings, missing) takes the general evaluator, so the semantics
    are the reference's by construction."""
    general = {key: cond}
    kind = type(cond)
    if "." not in key and kind is dict and cond and all(
            op in _RANGES and type(v) in (int, float) and not math.isnan(v) and abs(v) <= 2**53 for op, v in cond.items()):
        return _ranged(key, [(_RANGES[op], v) for op, v in cond.items()], general)
    if "." in key or kind not in (str, int) or (kind is int and abs(cond) > 2**53):
        return lambda doc: _match_filter(doc, general)

    def equal(doc: Mapping[str, Any]) -> bool:
        value = doc.get(key, MISSING)
        if type(value) is kind:
            return value == cond
        return _match_filter(doc, general)

    return equal


_RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


def _ranged(key: str, checks: list[tuple[Callable[[Any, Any], bool], Any]],
            general: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A numeric range clause on a top-level field: Python's comparison where the stored value is a plain
    number (MongoDB compares int and double by value, as Python does), the evaluator otherwise."""
    def ranged(doc: Mapping[str, Any]) -> bool:
        value = doc.get(key, MISSING)
        if type(value) in (int, float) and not math.isnan(value):  # not a bool (type, not isinstance), not NaN
            return all(check(value, bound) for check, bound in checks)
        return _match_filter(doc, general)

    return ranged


def _match_filter(doc: Any, query: Mapping[str, Any]) -> bool:
    for key, cond in query.items():
        if key == "$and":
            if not all(_match_filter(doc, c) for c in cond):
                return False
        elif key == "$or":
            if not any(_match_filter(doc, c) for c in cond):
                return False
        elif key == "$nor":
            if any(_match_filter(doc, c) for c in cond):
                return False
        else:
            parts = key.split(".")
            if isinstance(cond, dict) and cond and next(iter(cond)).startswith("$"):
                if not all(_match_path(doc, parts, op, arg) for op, arg in cond.items()):
                    return False
            elif not _match_path(doc, parts, "$eq", cond):
                return False
    return True


def resolve(value: Any, parts: Sequence[str], i: int = 0, *, traverse_leaf: bool = False) -> list[Any]:
    """Every value a dotted path reaches in ``value`` (``MISSING`` where it ends at nothing).

    MongoDB 8.0's path walk (``BSONElementIterator``): subdocuments are entered
    field by field; an array met before the path ends is traversed element by
    element (:func:`_resolve_in_array`).  A leaf array is returned whole, and with
    ``traverse_leaf`` (what comparisons use, ``$size``/``$elemMatch`` do not) each of
    its elements first: one level, so ``{"a": 1}`` never matches ``[[1]]``.
    """
    n = len(parts)
    while i < n and isinstance(value, dict):
        if parts[i] not in value:
            return [MISSING]
        value = value[parts[i]]
        i += 1
    if not isinstance(value, (list, tuple)):
        return [value] if i == n else [MISSING]  # a scalar with path left over reaches nothing
    if i == n:
        return [*value, value] if traverse_leaf else [value]
    return _resolve_in_array(value, parts, i, traverse_leaf)


def _resolve_in_array(array: Sequence[Any], parts: Sequence[str], i: int, traverse_leaf: bool) -> list[Any]:
    """What ``parts[i:]`` reaches through the elements of ``array`` (MongoDB's rules, in its order).

    A subdocument element is searched for the rest of the path, a numeric part
    included as a field name (``{"a.0": None}`` matches ``a: [{}]``).  The
    element *at* a numeric part's position is also followed: returned as is when
    the path ends there (an array element is compared whole: ``{"a.0": 1}`` does
    not match ``a: [[1, 2]]``), else looked into if it is a subdocument or an
    array.  Scalars short of the path's end reach nothing, not "missing":
    ``{"a.0.b": None}`` does not match ``a: [3]``.
    """
    position = array_index(parts[i])
    last = i + 1 == len(parts)
    out: list[Any] = []
    for k, element in enumerate(array):
        if isinstance(element, dict):
            out.extend(resolve(element, parts, i, traverse_leaf=traverse_leaf))
        if k != position:
            continue
        if last:
            out.append(element)
        elif isinstance(element, dict):
            out.extend(resolve(element, parts, i + 1, traverse_leaf=traverse_leaf))
        elif isinstance(element, (list, tuple)):
            out.extend(_resolve_in_array(element, parts, i + 1, traverse_leaf))
    return out


def _match_path(doc: Any, parts: list[str], op: str, arg: Any) -> bool:
    """``{path: {op: arg}}`` against a whole document."""
    if op == "$ne":
        return not _match_path(doc, parts, "$eq", arg)
    if op == "$nin":
        return not _match_path(doc, parts, "$in", arg)
    if op == "$not":
        return not all(_match_path(doc, parts, o, a) for o, a in arg.items())
    if op == "$all":
        return bool(arg) and all(_match_path(doc, parts, "$eq", x) for x in arg)
    if op in ("$size", "$elemMatch"):
        return any(_match_value(v, op, arg) for v in resolve(doc, parts) if v is not MISSING)
    items = resolve(doc, parts, traverse_leaf=True)
    if op == "$exists":
        return any(v is not MISSING for v in items) == arg
    return any(_match_value(v, op, arg) for v in items)


def _match_value(value: Any, op: str, arg: Any) -> bool:
    """One value against one operator, no array expansion (MongoDB's ``matchesSingleElement``)."""
    if op == "$eq":
        if arg is None:
            return value is None or value is MISSING
        return value is not MISSING and values_equal(value, arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if arg is None:
            return op in ("$gte", "$lte") and (value is None or value is MISSING)
        if value is MISSING or bracket(value) != bracket(arg):
            return False
        c = compare(value, arg) if bracket(arg) not in (NUMBER, STRING) else (value > arg) - (value < arg)
        return c > 0 if op == "$gt" else c >= 0 if op == "$gte" else c < 0 if op == "$lt" else c <= 0
    if op == "$in":
        return any(_match_value(value, "$eq", x) for x in arg)
    if op == "$ne":
        return not _match_value(value, "$eq", arg)
    if op == "$nin":
        return not _match_value(value, "$in", arg)
    if op == "$not":
        return not all(_match_value(value, o, a) for o, a in arg.items())
    if op == "$all":
        return bool(arg) and all(_match_value(value, "$eq", x) for x in arg)
    if op == "$exists":
        return (value is not MISSING) == arg
    if op == "$size":
        return isinstance(value, (list, tuple)) and len(value) == arg
    if op == "$elemMatch":
        if not isinstance(value, (list, tuple)):
            return False
        if _elem_match_is_value_form(arg):
            return any(all(_match_value(e, o, a) for o, a in arg.items()) for e in value)
        return any(_elem_matches_doc(e, arg) for e in value)
    raise InvalidQuery(f"unknown operator {op!r}")  # pragma: no cover - validation refuses it first


def _elem_matches_doc(element: Any, query: Mapping[str, Any]) -> bool:
    if isinstance(element, dict):
        return _match_filter(element, query)
    if isinstance(element, (list, tuple)):  # MongoDB sees an array as a document {"0": ..., "1": ...}
        return _match_filter({str(i): v for i, v in enumerate(element)}, query)
    return False


# ---------------------------------------------------------------------------------------------
# Collection names

_COLLECTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,119}")


def check_collection(name: Any) -> str:
    """A collection name every backend can hold verbatim: ``[A-Za-z_][A-Za-z0-9_.-]*``, at most 120 chars.

    Also refused: ``..``, a trailing ``.``, and the ``sqlite_``/``system.`` prefixes
    SQLite and MongoDB reserve.  Raises :class:`~tensordb_core.errors.InvalidQuery`.
    """
    if (
        not isinstance(name, str)
        or not _COLLECTION_RE.fullmatch(name)
        or ".." in name
        or name.endswith(".")
        or name.lower().startswith(("sqlite_", "system."))
    ):
        raise InvalidQuery(
            f"collection name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or '_' (at most 120 characters; not sqlite_* or system.*)"
        )
    return name


#: The largest ``limit``/``skip`` (a signed 64-bit count, as in MongoDB and SQLite) and ``batch_size`` (32-bit).
MAX_WINDOW = 2**63 - 1
MAX_BATCH_SIZE = 2**31 - 1


def check_window(limit: Any, skip: Any, batch_size: Any = None) -> None:
    """``find``'s ``limit``/``skip`` (ints in [0, 2**63)) and ``batch_size`` (None or an int in [1, 2**31)).

    The same bounds on every store, so a huge value is one typed error
    everywhere instead of a driver's ``OverflowError`` on some.
    """
    for name, value in (("limit", limit), ("skip", skip)):
        if type(value) is not int or not 0 <= value <= MAX_WINDOW:
            raise InvalidQuery(f"{name} must be an int from 0 to 2**63-1, got {value!r}")
    if batch_size is not None and (type(batch_size) is not int or not 0 < batch_size <= MAX_BATCH_SIZE):
        raise InvalidQuery(f"batch_size must be an int from 1 to 2**31-1, got {batch_size!r}")


# ---------------------------------------------------------------------------------------------
# Sorting


def validate_sort(sort: Any) -> list[tuple[str, int]]:
    """Normalize a sort spec: ``None``, ``[(field, 1 | -1), ...]`` or ``{field: 1 | -1}``."""
    if sort is None:
        return []
    if isinstance(sort, Mapping):
        pairs = list(sort.items())
    elif isinstance(sort, (list, tuple)):
        pairs = []
        for item in sort:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidQuery(f"sort: expected (field, 1 | -1) pairs, got {item!r}")
            pairs.append((item[0], item[1]))
    else:
        raise InvalidQuery(f"sort: expected a list of (field, 1 | -1) pairs or a dict, got {type(sort).__name__}")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for field, direction in pairs:
        split_path(field, "sort")
        if type(direction) is not int or direction not in (1, -1):
            raise InvalidQuery(f"sort: direction for {field!r} must be 1 or -1, got {direction!r}")
        if field in seen:
            raise InvalidQuery(f"sort: field {field!r} appears twice")
        seen.add(field)
        out.append((field, direction))
    return out


class _Descending:
    """Inverts the order of a key so one tuple can mix ascending and descending fields."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return other.key < self.key

    def __gt__(self, other: _Descending) -> bool:
        return other.key > self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


_EMPTY_ARRAY_KEY = (NULL - 1,)


def sort_value_key(doc: Any, field: str, direction: int) -> tuple:
    """The key MongoDB sorts ``doc`` by on ``field``: brackets, then values.

    Missing sorts as null.  An array-valued field (outside the portable
    contract) sorts by its smallest element ascending and its largest
    descending, and an empty array below null, as MongoDB does.
    """
    values: list[Any] = []
    for v in resolve(doc, field.split(".")):
        if v is MISSING:
            values.append(None)
        elif isinstance(v, (list, tuple)):
            if v:
                values.extend(v)
            else:
                values.append(_EMPTY_ARRAY_KEY)
        else:
            values.append(v)
    keys = [v if v is _EMPTY_ARRAY_KEY else value_key(v) for v in values] or [value_key(None)]
    return min(keys) if direction == 1 else max(keys)


def sort_key(doc: Mapping[str, Any], sort: Any) -> tuple:
    """A total-order key for ``doc`` under ``sort`` (MongoDB's type brackets), tie-broken by ``_seq`` ascending."""
    spec = sort if isinstance(sort, list) and all(type(p) is tuple for p in sort) else validate_sort(sort)
    key: list[Any] = []
    for field, direction in spec:
        k = sort_value_key(doc, field, direction)
        key.append(k if direction == 1 else _Descending(k))
    seq = doc.get("_seq", 0)
    key.append(seq if isinstance(seq, int) else 0)
    return tuple(key)


# Re-exports: the whole portable language is importable from this module.
from tensordb_core.query.projection import apply_projection, compile_projection, validate_projection
from tensordb_core.query.updates import apply_update, compile_update, validate_update

__all__ = [
    "MAX_QUERY_DEPTH",
    "MISSING",
    "SERVER_SIDE_CODE",
    "apply_projection",
    "apply_update",
    "check_collection",
    "check_document",
    "compile_projection",
    "compile_query",
    "compile_update",
    "matches",
    "resolve",
    "sort_key",
    "sort_value_key",
    "validate_projection",
    "validate_query",
    "validate_sort",
    "validate_update",
]
