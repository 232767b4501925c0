"""Exact SQL for the few query shapes a stream's tags use, so SQLite alone decides which documents match.

Why a second translation beside :mod:`.sql_filter`: that one only *narrows*
(every document it keeps is re-checked by the Python evaluator), so a read
must parse every candidate document into a dict.  The stream's reference read
(:meth:`SQLiteIndexStore.read_columns`) wants a handful of values per sample
straight from SQL, without the documents; it can skip the evaluator only where
SQL's answer is MongoDB's answer.  This module spells exactly that answer for
a deliberately small language and refuses (returns None) everything else.
``count`` uses it too: a tag count is then one ``COUNT(*)``, no document parsed.
The language:

* ``$and`` of clauses (a query's top-level keys are an ``$and`` too);
* ``_seq`` compared with an int (``$eq``, ``$gt``, ``$gte``, ``$lt``, ``$lte``), ``_id`` equal to a str;
* a top-level field (no dots) equal to a str or an int of at most 2**53 (bare or ``$eq``), in a short ``$in``
  list of those, or in a numeric range (``$gt``/``$gte``/``$lt``/``$lte`` with a finite int or float).

MongoDB's rules for those, and their SQL: the field's own value matches when it
is of the compared kind (a str equals only a str; numbers compare by value,
int and double alike; a range matches numbers only, never bools, strings or
null), or, when the field holds an array, when one of its elements does (one
level: an array inside the array is never a match).  Each clause of a range
(``$gte`` and ``$lte``) may be met by a different element, as in MongoDB.  The
differential suite (tests/test_sql_exact.py) checks every clause shape
against the reference evaluator over documents of mixed types.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from tensordb_core.embedded import sql_filter as sf
from tensordb_core.errors import InvalidQuery
from tensordb_core.format import jsontext
from tensordb_core.query.filters import validate_query

_NUMBER = "('integer','real')"
_SIGNS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
#: Longer ``$in`` lists go to the narrowing translation (they are not the stream's tag filters).
MAX_IN = 64


class _Refused(Exception):
    """The query steps outside the exact language."""


def exact_where(query: Mapping[str, Any], t: sf.Translator, *, indexed: bool = False) -> str | None:
    """A WHERE condition true exactly for the documents ``query`` (validated) matches, or None.

    ``indexed``: spell a tag's own value as ``create_index`` indexes it, for
    a read that needs no document (a count, ``_seq`` alone), which an index
    on the tags then answers.  Why not always: a read that parses every
    document anyway went from a ``seq`` range scan to the index and a sort,
    30% slower (the stream's references of 22k samples by 128-seq blocks).
    """
    try:
        return _all(query, t, indexed)
    except _Refused:
        return None


def _all(query: Mapping[str, Any], t: sf.Translator, indexed: bool) -> str:
    if not isinstance(query, Mapping):
        raise _Refused
    terms = []
    for key, cond in query.items():
        if key == "$and":
            if not isinstance(cond, list) or not cond:
                raise _Refused
            terms += [_all(c, t, indexed) for c in cond]
        elif key.startswith("$"):
            raise _Refused
        elif key in ("_seq", "_id"):
            terms.append(_column(key, cond, t))
        else:
            terms.append(_field(key, cond, t, indexed))
    return "(" + " AND ".join(terms) + ")" if terms else sf.TRUE


def _operators(cond: Any) -> list[tuple[str, Any]]:
    if isinstance(cond, Mapping) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
        return list(cond.items())
    return [("$eq", cond)]


def _exact_int(value: Any) -> bool:
    return type(value) is int and abs(value) <= 2**53


def _column(name: str, cond: Any, t: sf.Translator) -> str:
    terms = []
    for op, arg in _operators(cond):
        if name == "_seq" and (op == "$eq" or op in _SIGNS) and type(arg) is int:
            terms.append(f"seq {_SIGNS.get(op, '=')} {t.bind(arg)}")
        elif name == "_id" and op == "$eq" and isinstance(arg, str):
            terms.append(f"id = {t.bind(arg)}")
        else:
            raise _Refused
    return " AND ".join(terms)


def _field(name: str, cond: Any, t: sf.Translator, indexed: bool) -> str:
    path = sf.json_path([name])
    if "." in name or not name or path is None:
        raise _Refused
    terms = []
    for op, arg in _operators(cond):
        if op == "$eq":
            terms.append(_any_of(path, [arg], t, indexed))
        elif op == "$in" and isinstance(arg, list) and 0 < len(arg) <= MAX_IN:
            terms.append(_any_of(path, arg, t, indexed))
        elif op in _SIGNS and type(arg) in (int, float) and math.isfinite(arg) and (
                type(arg) is float or _exact_int(arg)):
            sign, p = _SIGNS[op], t.bind(arg)
            terms.append(_value_or_element(path, _NUMBER, f"{{v}} {sign} {p}", None, t))
        else:
            raise _Refused
    return "(" + " AND ".join(terms) + ")"


def _any_of(path: str, values: list[Any], t: sf.Translator, indexed: bool) -> str:
    """Equal to one of ``values`` (str or exact int each), directly or as an element."""
    terms = []
    for value in values:
        if isinstance(value, str):
            kinds = "('text')"
        elif _exact_int(value):
            kinds = _NUMBER
        else:
            raise _Refused
        p = t.bind(value)
        own = None
        if isinstance(value, str) and (indexed or HAS_ARROW) and not value.startswith(("[", "{")):
            # ``->>`` and ``json_extract`` give a JSON string as its text, a number or boolean as a number,
            # null as NULL, and an array or object as its JSON text, which starts with [ or {: so for such a
            # value, equal text means a JSON string, and one parse of the document replaces two (json_type,
            # json_extract).  ``indexed``: spelled as create_index indexes it, so a tag index answers the
            # clause (the array branch from the json_type index: SQLite's MULTI-INDEX OR); counting a
            # 1M-sample study's blocks by ``_seq`` took 2.06 s with ``->>``, which no index matches, and 0.30 s
            own = f"(json_extract(doc, {path}) = {p})" if indexed else f"(doc ->> {path} = {p})"
        terms.append(_value_or_element(path, kinds, f"{{v}} = {p}", own, t))
    return "(" + " OR ".join(terms) + ")"


def _value_or_element(path: str, kinds: str, test: str, own: str | None, t: sf.Translator) -> str:
    """``test`` (on ``{v}``) holds for the value at ``path`` of type ``kinds``, or for one such element of it;
    ``own``: the same test of the value itself, spelled more cheaply by the caller.  No element branch where
    the translator knows no document holds an array at ``path`` (``Translator.no_arrays``, asked in the
    snapshot the statement reads): a bare comparison is left, which a covering index answers alone."""
    own = own or f"(json_type(doc, {path}) IN {kinds} AND {test.format(v=f'json_extract(doc, {path})')})"
    if t.no_arrays(path):
        return own
    element = (f"(json_type(doc, {path}) = 'array' AND EXISTS (SELECT 1 FROM json_each(doc, {path}) AS e "
               f"WHERE e.type IN {kinds} AND {test.format(v='e.value')}))")
    return f"({own} OR {element})"


# -- columns ---------------------------------------------------------------------------------------

#: ``doc -> path`` (the value's JSON text, JSON-typed) arrived in SQLite 3.38.
HAS_ARROW = sqlite3.sqlite_version_info >= (3, 38)


def select_columns(table: str, query: Mapping[str, Any], paths: list[str]) -> tuple[str, sf.SQLParams] | None:
    """One statement whose one row holds JSON arrays of ``query``'s matches with ``:after < _seq <= :until``
    (named parameters the caller binds): their ``_seq``, their ``_id``, and one array per match of its values
    at ``paths`` (``json_extract`` of them all); None outside the exact language (or before SQLite 3.38,
    whose ``->>`` the language uses).

    Why arrays built by SQLite: the whole read is then one step of the
    statement, during which the GIL is free, and Python parses three JSON
    texts (:func:`to_columns`), not a dict per document.  Why one
    ``json_extract`` of every path: SQLite 3.40 parses the document again for
    each call, so eleven ``doc -> path`` columns cost 8.2 µs a document and
    one multi-path extract 3.8 µs (22k sample documents, median of six).
    A multi-path ``json_extract`` answers a JSON array of JSON values (a bool
    stays a bool, a str is quoted, a missing path is null); with one path it
    would answer the bare SQL value, so a single path is asked twice.
    Why the bounds are left to the caller: a stream reads one query block
    after block, and the statement is then built once (:class:`ColumnStatements`).
    """
    if not all(isinstance(p, str) for p in paths):
        raise InvalidQuery(f"read_columns takes str paths, got {paths!r}")
    spelled = [sf.json_path(p.split(".")) if p else None for p in paths]
    t = sf.Translator()
    cond = exact_where(query, t)
    if cond is None or None in spelled or not HAS_ARROW:
        return None
    extract = ", ".join(spelled if len(spelled) != 1 else spelled * 2)
    values = f"json_group_array(json_extract(doc, {extract}))" if spelled else "json_group_array(json_array())"
    matches = f"SELECT seq, id, doc FROM {table} WHERE seq > :after AND seq <= :until AND {cond} ORDER BY seq"
    return f"SELECT json_group_array(seq), json_group_array(id), {values} FROM ({matches})", t.params

#: :func:`select_block_counts`' caller counts each block by a ``COUNT`` of its own (one statement for all) up to
#: this many blocks, or when blocks span at least ``SPAN_COUNTED_ALONE`` ``_seq`` values; else it reads every
#: ``_seq`` as one array.  Why: a count costs a few µs, a match ~0.09 µs from an index, and ~0.28 µs in the array
#: (1M matches: the array 0.28 s whatever the blocks).  The counts were one statement each (~6 µs of Python
#: and SQLite a block, 7,813 blocks of 128 in 0.11-0.15 s); as one statement, SQLite runs the counts with the
#: interpreter lock free (0.09-0.12 s).
BLOCKS_COUNTED_ONE_BY_ONE, SPAN_COUNTED_ALONE = 4096, 32


def select_block_counts(table: str, query: Mapping[str, Any], arrays_absent: Callable[[str], bool] | None = None
                        ) -> tuple[str, str, sf.SQLParams] | None:
    """Two statements: a JSON array of the ``COUNT`` of ``query``'s matches in each block of ``:span`` ``_seq``
    values from ``:origin`` to ``:until``, and the ``_seq`` of the matches with ``:low <= _seq <= :high`` as one
    JSON array; None outside the exact language.

    Why: a shard counts the matches of each block of its epoch's layout
    (stream/blocks.py) before reading a reference.  Spelled for a tag index
    (``indexed``), without the array branches ``arrays_absent`` rules out (see
    :class:`~tensordb_core.embedded.sql_filter.Translator`), the ``_study``
    index alone answers (:data:`BLOCKS_COUNTED_ONE_BY_ONE`); one ``GROUP BY``
    took 0.35 s for 1M matches (a temporary B-tree), 0.46 s with the array
    branches (SQLite's MULTI-INDEX OR seeks each row).
    """
    t = sf.Translator(arrays_absent)
    if (cond := exact_where(validate_query(query), t, indexed=True)) is None:
        return None
    blocks = ("WITH RECURSIVE block(low) AS "
              "(SELECT :origin UNION ALL SELECT low + :span FROM block WHERE low + :span <= :until)")
    count = (f"SELECT COUNT(*) FROM {table} WHERE seq >= block.low AND seq <= min(:until, block.low + :span - 1) "
             f"AND {cond}")
    return (f"{blocks} SELECT json_group_array(({count})) FROM block",
            f"SELECT json_group_array(seq) FROM {table} WHERE seq >= :low AND seq <= :high AND {cond}", t.params)


class ColumnStatements:
    """:func:`select_columns` of each (table, query, paths), built once.

    Why: a stream asks one query block after block (~170 times an epoch of
    20k small samples), and validating and translating it cost 0.1 ms a
    call, as long as SQLite's read of a block.  Keyed by the query's
    ``repr``, which tells apart every value a query may hold (``1``, ``1.0``,
    ``True``, ``"1"``); at most ``most`` kept (a stream uses one).
    """

    def __init__(self, most: int = 64) -> None:
        self._kept: dict[tuple[str, str, tuple[str, ...]], tuple[str, sf.SQLParams] | None] = {}
        self._most = most

    def get(self, table: str, query: Mapping[str, Any], paths: Sequence[str]) -> tuple[str, sf.SQLParams] | None:
        """The statement (None: outside the exact language); an invalid query raises :class:`InvalidQuery`."""
        key = (table, repr(query), tuple(paths))
        found = self._kept.get(key, False)
        if found is False:
            found = select_columns(table, validate_query(query), list(paths))
            if len(self._kept) >= self._most:
                self._kept.clear()
            self._kept[key] = found
        return found


def to_columns(row: tuple[str, ...] | None, paths: list[str]) -> dict[str, list[Any]]:
    """The statement's row as the protocol's columns (None: the table does not exist yet), in ``_seq`` order."""
    names = ["_seq", "_id", *paths]
    if row is None:
        return {name: [] for name in names}
    seqs, ids, values = (jsontext.loads(text) for text in row)
    # A path's column is its place in every match's values, taken by one C loop per path.  Why not
    # ``zip(*values)``: its every step builds a tuple across all matches (160 KB for 20k), and that transpose took
    # 8-33 ms of a 20k-match read holding the GIL against the stream's other threads; this one 5-7 ms.
    width = len(values[0]) if values else len(paths)
    columns = [seqs, ids, *(list(map(itemgetter(i), values)) for i in range(width))]
    columns = columns[:len(names)]  # a single path was extracted twice
    if sorted(seqs) != seqs:  # SQLite keeps the subquery's order; never rely on it blindly (seq is unique)
        order = sorted(range(len(seqs)), key=seqs.__getitem__)
        columns = [[column[i] for i in order] for column in columns]
    return dict(zip(names, columns))


__all__ = ["BLOCKS_COUNTED_ONE_BY_ONE", "HAS_ARROW", "MAX_IN", "SPAN_COUNTED_ALONE", "ColumnStatements", "exact_where",
           "select_block_counts", "select_columns", "to_columns"]
