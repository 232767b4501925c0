"""Translate portable queries and sorts into SQLite JSON1 SQL that *narrows* candidates.

Why "narrows" and not "answers": MongoDB's semantics (implicit traversal of
arrays of subdocuments, null versus missing, type brackets) have no faithful
SQL spelling, and a second implementation of them in SQL would drift from the
reference.  So every condition built here is a *superset* of the documents
the query matches — cheap, index-friendly tests on ``json_extract`` /
``json_type`` / ``json_each`` — and :func:`tensordb_core.query.filters.matches`
decides on each candidate.  Wherever a condition could wrongly exclude a match
(negations, null, a path through an array) it widens to ``1`` (true).

Paths are inlined as SQL string literals (never values): SQLite uses an
expression index only when the query spells the indexed expression exactly.
Values are always bound parameters.

Table layout (the public embedded format): ``seq INTEGER PRIMARY KEY
AUTOINCREMENT`` (the document's ``_seq``), ``id TEXT UNIQUE`` (its ``_id``) and
``doc TEXT``: the JSON of the remaining fields.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

TRUE, FALSE = "1", "0"
_UNSPELLABLE = re.compile(r'["\\\x00-\x1f\x7f]')
#: Past this many values an ``$in`` of strings or exact integers is one bound JSON array read with
#: ``json_each`` (SQLite binds at most 32,766 values); a longer list of other values is left to the
#: reference evaluator.
MANY_VALUES = 64
#: Named parameters (``:p0``...): terms folded away by ``_and``/``_or`` may leave
#: unused entries behind, which SQLite ignores, where positional ones would shift.
SQLParams = dict[str, Any]

_NUMBER_TYPES = "('integer','real')"
_BOOL_TYPES = "('true','false')"
#: MongoDB's sort brackets over ``json_type`` (missing -> NULL -> 0, like null).
_BRACKET_CASE = (
    "CASE json_type(doc, {p}) WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 "
    "WHEN 'object' THEN 3 WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END"
)


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier (names are validated to hold no quotes)."""
    return '"' + name.replace('"', '""') + '"'


def json_path(parts: list[str]) -> str | None:
    """``["a", "b"]`` -> ``'$."a"."b"'`` as a SQL literal, or None when a part cannot be spelled.

    SQLite's JSON path has no escapes: a quote, a backslash or a control
    character in a name cannot be spelled (control characters are stored as
    ``\\uXXXX`` escapes the path would not match), so such a key is left to the
    reference evaluator.
    """
    if any(_UNSPELLABLE.search(p) for p in parts):
        return None
    return sql_text("$" + "".join(f'."{p}"' for p in parts))


def _widen(x: float, up: bool) -> float:
    """A bound a hair looser than ``x``, so float parsing differences never drop a match."""
    slack = abs(float(x)) * 1e-12 + 1e-300
    return float(x) + slack if up else float(x) - slack


class Translator:
    """Builds SQL conditions; collects their named parameters and what an index could serve.

    ``arrays_absent(path)`` (from the store) answers whether no document holds an
    array at a JSON path; when it does, the array branches for that path are
    left out, so a bare ``json_extract`` comparison remains for an index.
    ``exprs`` are the ``json_extract`` expressions tested, ``eq_exprs`` those
    tested by an equality every match must pass (outside any OR), and
    ``id_lookup`` says an ``_id`` equality narrows the whole query.
    """

    def __init__(self, arrays_absent: Callable[[str], bool] | None = None) -> None:
        self.params: SQLParams = {}
        self.exprs: set[str] = set()
        self.eq_exprs: set[str] = set()
        self.id_lookup = False
        self._arrays_absent = arrays_absent
        self._absent: dict[str, bool] = {}
        self._or_depth = 0
        self._eq_context = False

    def no_arrays(self, path: str) -> bool:
        if self._arrays_absent is None:
            return False
        if path not in self._absent:
            self._absent[path] = self._arrays_absent(path)
        return self._absent[path]

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    # filters --------------------------------------------------------------------------------
    def filter(self, query: Mapping[str, Any]) -> str:
        terms = [self._clause(k, v) for k, v in query.items()]
        return _and(terms)

    def _clause(self, key: str, cond: Any) -> str:
        if key == "$and":
            return _and([self.filter(c) for c in cond])
        if key == "$or":
            self._or_depth += 1
            try:
                return _or([self.filter(c) for c in cond])
            finally:
                self._or_depth -= 1
        if key == "$nor":
            return TRUE
        parts = key.split(".")
        if isinstance(cond, dict) and cond and next(iter(cond)).startswith("$"):
            return _and([self._operator(parts, op, arg) for op, arg in cond.items()])
        return self._operator(parts, "$eq", cond)

    def _operator(self, parts: list[str], op: str, arg: Any) -> str:
        if parts == ["_id"] or parts == ["_seq"]:
            return self._column(parts[0], op, arg)
        path = json_path(parts)
        if path is None:
            return TRUE
        self._eq_context = not self._or_depth and (op in ("$eq", "$all") or (op == "$in" and len(arg) == 1))
        if op == "$eq":
            cond = self._eq(path, arg)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            cond = self._range(path, op, arg)
        elif op == "$in":
            cond = self._in(path, arg) if arg else FALSE
        elif op == "$all":  # every match holds the first values too: a superset within SQLite's binds
            cond = _and([self._eq(path, v) for v in arg[:MANY_VALUES]]) if arg else FALSE
        elif op == "$exists":
            cond = f"json_type(doc, {path}) IS NOT NULL" if arg else TRUE
        elif op == "$size":
            cond = f"(json_type(doc, {path}) = 'array' AND json_array_length(doc, {path}) = {self.bind(arg)})"
        elif op == "$elemMatch":
            cond = f"json_type(doc, {path}) = 'array'"
        else:  # $ne, $nin, $not: negations narrow nothing
            return TRUE
        if cond in (TRUE, FALSE):  # FALSE only for an empty $in/$all: nothing matches, arrays or not
            return cond
        return _or([cond, *self._through_arrays(parts)])

    def _through_arrays(self, parts: list[str]) -> list[str]:
        """A path crossing an array may match by MongoDB's traversal: let those through."""
        out = []
        for k in range(1, len(parts)):
            prefix = json_path(parts[:k])
            if prefix is not None and not self.no_arrays(prefix):
                out.append(f"json_type(doc, {prefix}) = 'array'")
        return out

    def _leaf_or_element(self, path: str, leaf: str, types: str, element: str) -> str:
        """``leaf`` on the value itself, or ``element`` (on ``e.value``) for some element of ``types``.

        The leaf test is a bare comparison of ``json_extract(doc, path)`` so an
        expression index on it applies; SQLite orders every number below every
        text, which keeps numeric and text ranges apart without ``json_type``.
        """
        expr = f"json_extract(doc, {path})"
        self.exprs.add(expr)
        if self.no_arrays(path):
            if self._eq_context:
                self.eq_exprs.add(expr)
            return leaf
        each = (
            f"(json_type(doc, {path}) = 'array' AND EXISTS (SELECT 1 FROM json_each(doc, {path}) AS e "
            f"WHERE e.type IN {types} AND {element}))"
        )
        return f"({leaf} OR {each})"

    def _eq(self, path: str, value: Any) -> str:
        x = f"json_extract(doc, {path})"
        if value is None:
            return TRUE
        if value is True or value is False:
            kind = "'true'" if value else "'false'"
            leaf = f"({x} = {int(value)} AND json_type(doc, {path}) = {kind})"
            return self._leaf_or_element(path, leaf, f"({kind})", "1")
        if type(value) is int and abs(value) <= 2**53:  # exact: every float equal to it parses exactly
            p = self.bind(value)
            return self._leaf_or_element(path, f"{x} = {p}", _NUMBER_TYPES, f"e.value = {p}")
        if isinstance(value, (int, float)):
            lo, hi = self.bind(_widen(value, False)), self.bind(_widen(value, True))
            return self._leaf_or_element(
                path, f"{x} BETWEEN {lo} AND {hi}", _NUMBER_TYPES, f"e.value BETWEEN {lo} AND {hi}"
            )
        if isinstance(value, str):
            p = self.bind(value)
            return self._leaf_or_element(path, f"{x} = {p}", "('text')", f"e.value = {p}")
        if isinstance(value, list):
            return f"json_type(doc, {path}) = 'array'"
        return f"json_type(doc, {path}) IN ('object','array')"

    def _in(self, path: str, values: list[Any]) -> str:
        """Any of ``values``: per-value equalities, or for long lists one ``json_each`` per value kind."""
        if len(values) <= MANY_VALUES:
            return _or([self._eq(path, v) for v in values])
        texts = [v for v in values if isinstance(v, str)]
        ints = [v for v in values if type(v) is int and abs(v) <= 2**53]
        if len(texts) + len(ints) < len(values):  # floats, bools, null, arrays, objects: let the evaluator decide
            return TRUE
        x = f"json_extract(doc, {path})"
        terms = []
        for group, types in ((texts, "('text')"), (ints, _NUMBER_TYPES)):
            if group:
                listed = f"(SELECT value FROM json_each({self.bind(json.dumps(group))}))"
                terms.append(self._leaf_or_element(path, f"{x} IN {listed}", types, f"e.value IN {listed}"))
        return _or(terms)

    def _range(self, path: str, op: str, value: Any) -> str:
        x = f"json_extract(doc, {path})"
        if value is None:
            return TRUE
        lower = op in ("$gt", "$gte")
        sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        if value is True or value is False:
            p = self.bind(int(value))
            leaf = f"(json_type(doc, {path}) IN {_BOOL_TYPES} AND {x} {sign} {p})"
            return self._leaf_or_element(path, leaf, _BOOL_TYPES, f"e.value {sign} {p}")
        if isinstance(value, (int, float)):
            p = self.bind(_widen(value, up=not lower))
            if lower:  # numbers sort below every text: '' caps the range at the last number
                leaf, element = f"({x} >= {p} AND {x} < '')", f"e.value >= {p}"
            else:
                leaf, element = f"{x} <= {p}", f"e.value <= {p}"
            return self._leaf_or_element(path, leaf, _NUMBER_TYPES, element)
        p = self.bind(value)
        leaf = f"{x} {sign} {p}" if lower else f"({x} {sign} {p} AND {x} >= '')"
        return self._leaf_or_element(path, leaf, "('text')", f"e.value {sign} {p}")

    def _column(self, name: str, op: str, arg: Any) -> str:
        """``_id`` and ``_seq`` live in columns: exact for the common cases, wide otherwise."""
        column = "id" if name == "_id" else "seq"
        ok = (lambda v: isinstance(v, str)) if name == "_id" else (lambda v: type(v) in (int, float))
        sign = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}.get(op)
        if sign and ok(arg):
            self.id_lookup |= name == "_id" and op == "$eq" and not self._or_depth
            return f"{column} {sign} {self.bind(arg)}"
        if op == "$in" and all(ok(v) for v in arg):
            self.id_lookup |= name == "_id" and not self._or_depth
            if not arg:
                return FALSE
            if len(arg) > MANY_VALUES:  # one bound JSON array: SQLite binds at most 32,766 values
                return f"{column} IN (SELECT value FROM json_each({self.bind(json.dumps(list(arg)))}))"
            return f"{column} IN ({','.join(self.bind(v) for v in arg)})"
        return TRUE


def _combine(terms: list[str], joiner: str, identity: str, absorbing: str) -> str:
    """Join SQL terms, folding the constants: ``identity`` terms drop out, one ``absorbing`` term decides.

    Long chains are nested as a balanced tree: SQLite parses ``a OR b OR c ...``
    into a tree as deep as the chain and refuses one deeper than 1,000, while
    ``(a OR b) OR (c OR d)`` is only log2(n) deep.
    """
    terms = [t for t in terms if t != identity]
    if absorbing in terms:
        return absorbing
    if not terms:
        return identity
    if len(terms) == 1:
        return terms[0]
    if len(terms) > 8:
        half = len(terms) // 2
        terms = [_combine(terms[:half], joiner, identity, absorbing), _combine(terms[half:], joiner, identity, absorbing)]
    return "(" + f" {joiner} ".join(terms) + ")"


def _and(terms: list[str]) -> str:
    return _combine(terms, "AND", TRUE, FALSE)


def _or(terms: list[str]) -> str:
    return _combine(terms, "OR", FALSE, TRUE)


def where(query: Mapping[str, Any], t: Translator) -> str:
    """A WHERE condition: a superset of the matches of a *validated* query (parameters go to ``t``)."""
    return t.filter(query)


# sorting ------------------------------------------------------------------------------------


def sort_terms(spec: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
    """``(SQL expression, direction)`` pairs giving MongoDB's order, or None if SQL cannot spell a key."""
    terms: list[tuple[str, int]] = []
    for field, direction in spec:
        if field == "_seq":
            terms.append(("seq", direction))
            continue
        if field == "_id":
            terms.append(("id", direction))
            continue
        path = json_path(field.split("."))
        if path is None:
            return None
        terms.append((_BRACKET_CASE.format(p=path), direction))
        terms.append((f"json_extract(doc, {path})", direction))
    return terms


def unsortable(spec: list[tuple[str, int]]) -> str:
    """A condition true for rows SQL cannot order the MongoDB way (objects, arrays, paths through arrays)."""
    conds: list[str] = []
    for field, _ in spec:
        if field in ("_id", "_seq"):
            continue
        parts = field.split(".")
        for k in range(1, len(parts)):
            conds.append(f"json_type(doc, {json_path(parts[:k])}) = 'array'")
        conds.append(f"json_type(doc, {json_path(parts)}) IN ('object','array')")
    return _or(conds) if conds else FALSE


def index_exprs(keys: list[tuple[str, int]], unique: bool) -> list[str] | None:
    """Index columns for ``keys``: the same ``json_extract`` spelling the filters use.

    A unique index indexes (bracket, value) with null and missing folded into one
    key, so like MongoDB it allows one document without the field and treats
    ``1`` and ``1.0`` as the same key.  Unlike MongoDB's multikey indexes, an
    array value is one key (its JSON text) and a path through an array counts
    as missing.
    """
    out: list[str] = []
    for field, direction in keys:
        order = "ASC" if direction == 1 else "DESC"
        if field in ("_id", "_seq"):
            out.append(f"{'id' if field == '_id' else 'seq'} {order}")
            continue
        path = json_path(field.split("."))
        if path is None:
            return None
        if unique:
            out.append(_BRACKET_CASE.format(p=path))
            out.append(f"coalesce(json_extract(doc, {path}), 0) {order}")
        else:
            out.append(f"json_extract(doc, {path}) {order}")
    return out


def type_index_paths(keys: list[tuple[str, int]]) -> list[str]:
    """The JSON paths (as SQL literals) whose ``json_type`` the filters test for the given index keys."""
    out: list[str] = []
    for field, _ in keys:
        if field in ("_id", "_seq"):
            continue
        parts = field.split(".")
        for k in range(1, len(parts) + 1):
            path = json_path(parts[:k])
            if path is not None and path not in out:
                out.append(path)
    return out


_EXTRACT = re.compile(r"json_extract\(doc, '[^']*(?:''[^']*)*'\)")


def indexed_exprs(index_sql: list[str]) -> set[str]:
    """The ``json_extract(doc, '<path>')`` expressions the given ``CREATE INDEX`` statements hold."""
    return {m.group(0) for sql in index_sql for m in _EXTRACT.finditer(sql)}


_TYPE_OF = re.compile(r"json_type\(doc, ('[^']*(?:''[^']*)*')\)")


def type_indexed_paths(index_sql: list[str]) -> set[str]:
    """The JSON paths (SQL literals) whose ``json_type`` the given ``CREATE INDEX`` statements index."""
    return {m.group(1) for sql in index_sql if "CASE" not in sql for m in _TYPE_OF.finditer(sql)}


def index_statements(collection: str, spec: list[tuple[str, int]], unique: bool) -> list[tuple[str, str]] | None:
    """``(name, CREATE INDEX IF NOT EXISTS ...)`` of the keys' expression index, then of a ``json_type`` index
    per key path and prefix (so the "array at the path" branches of a filter can use an index too, and SQLite
    answers the whole OR from indexes).  None when a field name SQL cannot spell (the index is only a hint).
    Names are digests of the keys: the same keys name the same index in every process and version.
    """
    exprs = index_exprs(spec, unique)
    if exprs is None:
        return None
    table = ident(collection)
    name = f"ix_{collection}_{hashlib.sha1(json.dumps([spec, unique]).encode()).hexdigest()[:16]}"
    out = [(name, (f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {ident(name)} ON {table} "
                  f"({', '.join(exprs)})"))]
    for path in type_index_paths(spec):
        name = f"tx_{collection}_{hashlib.sha1(path.encode()).hexdigest()[:16]}"
        out.append((name, f"CREATE INDEX IF NOT EXISTS {ident(name)} ON {table} (json_type(doc, {path}))"))
    return out
