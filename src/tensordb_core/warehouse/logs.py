"""Train/validation/test step metrics: many small documents, written in batches.

Why batched: a loop that logs every step must not pay a database round trip
per step.  Records are buffered and flushed when the buffer holds
``flush_every`` records, when ``flush_interval_s`` has passed since the last
flush, on :meth:`LogWriter.flush`/``close``, and at interpreter exit.  Each
record is its own document (study, kind, step, metrics, timestamp), so a long
run never approaches a document-size limit.  A ``datetime`` passed among the
metrics (TensorLayer's DBLogger adds one) is kept as a tag of the record.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tensordb_core.errors import InvalidQuery
from tensordb_core.store.scope import StudyScope, check_tags
from tensordb_core.warehouse.params import clean_metrics

COLLECTION = "logs"
KINDS = ("train", "valid", "test")
RESERVED = frozenset({"kind", "step", "metrics", "timestamp", "run"})

_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for writer in list(_writers):
        with contextlib.suppress(Exception):  # best effort at exit: the store may already be gone
            writer.flush()


class LogWriter:
    """Buffers log records of one study and writes them in batches."""

    def __init__(self, scope: StudyScope, *, flush_every: int = 256, flush_interval_s: float = 2.0) -> None:
        self._scope = scope
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._steps: dict[tuple[str, str | None], int] = {}
        self.flush_every, self.flush_interval_s = flush_every, flush_interval_s
        _writers.add(self)

    def log(self, kind: str, metrics: Mapping[str, Any], step: int | None = None, run: str | None = None,
            tags: Mapping[str, Any] | None = None) -> None:
        if kind not in KINDS:
            raise InvalidQuery(f"log kind must be one of {KINDS}, not {kind!r}")
        if isinstance(metrics, Mapping) and any(isinstance(v, datetime) for v in metrics.values()):
            # A datetime is not a metric: it is kept as a tag, in its stored form (scope.encode_datetime).
            tags = {**{k: v for k, v in metrics.items() if isinstance(v, datetime)}, **dict(tags or {})}
            metrics = {k: v for k, v in metrics.items() if not isinstance(v, datetime)}
        cleaned = clean_metrics(metrics)
        if step is None:
            step = self._steps.get((kind, run), -1) + 1
        self._steps[(kind, run)] = int(step)
        doc = self._scope.new_doc(kind=kind, step=int(step), metrics=cleaned, timestamp=time.time(),
                                  run=run, **check_tags(tags, RESERVED))
        with self._lock:
            self._buffer.append(doc)
            due = len(self._buffer) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_interval_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record now."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        if batch:
            try:
                self._scope.index.insert_many(COLLECTION, batch)
            except BaseException:
                with self._lock:  # keep the records for the next attempt: nothing is lost
                    self._buffer[:0] = batch
                raise


def find_logs(scope: StudyScope, kind: str | None = None, query: Mapping[str, Any] | None = None,
              *, sort: Any = None, limit: int = 0) -> list[dict[str, Any]]:
    """Log documents of this study (one kind, or all), in step order unless ``sort`` says otherwise."""
    if kind is not None and kind not in KINDS:
        raise InvalidQuery(f"log kind must be one of {KINDS}, not {kind!r}")
    parts: list[dict[str, Any]] = [{"kind": kind}] if kind else []
    if query:
        parts.append(dict(query))
    q = {"$and": parts} if len(parts) > 1 else (parts[0] if parts else {})
    return list(scope.index.find(COLLECTION, scope.query(q), sort=sort or [("step", 1)], limit=limit))
