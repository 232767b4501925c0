"""The embedded index's columns (:class:`~tensordb_core.store.protocols.ReadsColumns`): reads SQL answers alone.

Why a module of their own: :mod:`.sqlite_index` keeps documents (reads,
writes, indexes, transactions); these reads hand a stream the few values it
needs per sample, or only how many samples each ``_seq`` block holds, with
no document made, in the exact language of :mod:`.sql_exact`.  Mixed into
:class:`~tensordb_core.embedded.sqlite_index.SQLiteIndexStore`, whose pooled
read connections and error mapping they use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from tensordb_core.embedded import sql_exact
from tensordb_core.embedded import sql_filter as sf
from tensordb_core.errors import InvalidQuery
from tensordb_core.format import jsontext
from tensordb_core.query.filters import check_collection


class SQLiteColumnReads:
    """``read_columns`` and ``count_blocks`` over the host store's connections."""

    _column_statements: sql_exact.ColumnStatements

    def _reader(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the host store's pooled read connection

    def _errors(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError  # the host store's mapping of SQLite errors to TensorDBError

    def _exists(self, conn: sqlite3.Connection, collection: str) -> bool:
        raise NotImplementedError

    def _arrays_absent(self, conn: sqlite3.Connection, collection: str) -> Callable[[str], bool]:
        raise NotImplementedError  # the host store's json_type-index answer, in conn's snapshot

    def read_columns(self, collection: str, query: Mapping[str, Any], paths: Sequence[str], *, after: int,
                     until: int) -> dict[str, list[Any]] | None:
        """:class:`~tensordb_core.store.protocols.ReadsColumns`: one statement of one row, in which SQLite parses
        the documents and decides the query with the GIL released (:mod:`.sql_exact`, which keeps each query's
        statement); no dict per document."""
        check_collection(collection)
        if type(after) is not int or type(until) is not int:
            raise InvalidQuery(f"read_columns takes int bounds, got {after!r}, {until!r}")
        if (statement := self._column_statements.get(sf.ident(collection), query, paths)) is None:
            return None
        with self._reader() as conn, self._errors("query"):
            row = conn.execute(statement[0], {**statement[1], "after": after, "until": until}).fetchone() if (
                self._exists(conn, collection)) else None
        return sql_exact.to_columns(row, list(paths))

    def count_blocks(self, collection: str, query: Mapping[str, Any], *, origin: int, span: int,
                     until: int) -> list[int] | None:
        """:class:`~tensordb_core.store.protocols.ReadsColumns`: a ``COUNT`` per block (one statement), or every
        ``_seq`` in one array for many small blocks
        (:func:`~tensordb_core.embedded.sql_exact.select_block_counts`), in one snapshot."""
        check_collection(collection)
        if not all(type(v) is int for v in (origin, span, until)) or span < 1:
            raise InvalidQuery(f"count_blocks takes int bounds and a span >= 1, got {origin!r}, {span!r}, {until!r}")
        counts = [0] * max(0, (until - origin) // span + 1)
        with self._reader() as conn, self._errors("count"):
            if not counts or not self._exists(conn, collection):
                return counts
            statements = sql_exact.select_block_counts(sf.ident(collection), query,
                                                       self._arrays_absent(conn, collection))
            if statements is None:
                return None
            count, seqs, params = statements
            if len(counts) > sql_exact.BLOCKS_COUNTED_ONE_BY_ONE and span < sql_exact.SPAN_COUNTED_ALONE:
                found = np.asarray(jsontext.loads(conn.execute(seqs, {**params, "low": origin, "high": until})
                                                  .fetchone()[0]), dtype=np.int64)
                return np.bincount((found - origin) // span, minlength=len(counts)).tolist()
            counted = jsontext.loads(conn.execute(count, {**params, "origin": origin, "span": span, "until": until})
                                     .fetchone()[0])
        return [int(c) for c in counted]


__all__ = ["SQLiteColumnReads"]
