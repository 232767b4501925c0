"""The one :class:`~tensordb_core.store.protocols.Cursor` a backend needs when its results are a Python iterator."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Self

from tensordb_core.store.protocols import Document


class IteratorCursor:
    """A single-pass cursor over any iterable of documents: a list in memory or a generator reading pages.

    ``close()`` closes a generator (so a page reader releases its statement or
    connection at once) and ends iteration; it is idempotent, and the cursor is
    a context manager that closes itself.
    """

    def __init__(self, docs: Iterable[Document]) -> None:
        self._docs: Iterator[Document] = iter(docs)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Document:
        return next(self._docs)

    def close(self) -> None:
        docs, self._docs = self._docs, iter(())
        _close(docs)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def closing_cursor(results: Any) -> Iterator[Any]:
    """``with closing_cursor(index.find(...)) as cursor:``: close what a query returned once the block ends, where
    it can be closed (a :class:`~tensordb_core.store.protocols.Cursor`, a generator from ``tail``), so a reader
    that stops early releases its statement or server cursor at once."""
    try:
        yield results
    finally:
        _close(results)


def _close(results: Any) -> None:
    close = getattr(results, "close", None)  # cursors and generators have it; list iterators do not
    if close is not None:
        close()
