"""Train/validation/test step metrics: many small documents, written in batches.

Why batched: a loop that logs every step must not pay a database round trip
per step.  Records are buffered and flushed when the buffer holds
``flush_every`` records; by a background thread once the oldest has waited
``flush_interval_s`` (1 s by default), so records show up without a further
``log()`` call and a SIGKILL loses at most about that much; on
:meth:`LogWriter.flush`/``close``; at interpreter exit; and on SIGTERM/SIGINT
(how Kubernetes, SLURM and Ctrl-C stop a trainer: the default SIGTERM action
skips ``atexit``), after which the handler that was installed before runs as
it would have.  Each
record is its own document (study, kind, step, metrics, timestamp), so a long
run never approaches a document-size limit.  A ``datetime`` passed among the
metrics (TensorLayer's DBLogger adds one) is kept as a tag of the record.
"""

from __future__ import annotations

import atexit
import contextlib
import numbers
import os
import signal
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tensordb_core.errors import InvalidArgument, InvalidQuery
from tensordb_core.store.scope import StudyScope, check_tags
from tensordb_core.warehouse.arguments import query_dict
from tensordb_core.warehouse.params import clean_metrics

COLLECTION = "logs"
KINDS = ("train", "valid", "test")
RESERVED = frozenset({"kind", "step", "metrics", "timestamp", "run"})

#: Seconds a record may wait in a buffer before the background thread writes it.
DEFAULT_FLUSH_INTERVAL_S = 1.0
_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()
_started = threading.Lock()
_flusher: threading.Thread | None = None
_previous_handlers: dict[int, Any] = {}


@atexit.register
def _flush_all() -> None:
    for writer in list(_writers):
        with contextlib.suppress(Exception):  # best effort at exit: the store may already be gone
            writer.flush()


def _flush_due_forever() -> None:
    """The background flusher: write each buffer whose oldest record has waited its writer's interval."""
    while True:
        time.sleep(0.1)
        for writer in list(_writers):
            if writer.due():
                with contextlib.suppress(Exception):  # kept in the buffer; the next flush tries again
                    writer.flush()


def _on_signal(signum: int, frame: Any) -> None:
    """Write the buffers, then do what the previous handler (or the default action) would have done."""
    _flush_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die by the signal, as without us (exit status, core, parent's view)


def _start_flushing() -> None:
    """Once per process: the background thread, and SIGTERM/SIGINT handlers where signals can be set."""
    global _flusher
    with _started:
        if _flusher is not None and _flusher.is_alive():
            return
        _flusher = threading.Thread(target=_flush_due_forever, name="tensordb-log-flusher", daemon=True)
        _flusher.start()
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit and the timer still hold
        for signum in (signal.SIGTERM, signal.SIGINT):
            current = signal.getsignal(signum)
            if current is _on_signal or current == signal.SIG_IGN or current is None:
                continue  # ours already, ignored on purpose, or set outside Python: leave it alone
            _previous_handlers[signum] = current
            signal.signal(signum, _on_signal)


class LogWriter:
    """Buffers log records of one study and writes them in batches."""

    def __init__(self, scope: StudyScope, *, flush_every: int = 256,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        self._scope = scope
        self._buffer: list[dict[str, Any]] = []
        # Re-entrant: the SIGTERM/SIGINT handler flushes on the main thread, possibly while it holds the lock.
        self._lock = threading.RLock()
        self._steps: dict[tuple[str, str | None], int] = {}
        self.flush_every, self.flush_interval_s = flush_every, flush_interval_s
        self._oldest: float | None = None  # when the oldest buffered record arrived
        _writers.add(self)
        _start_flushing()

    def due(self) -> bool:
        """Whether the oldest buffered record has waited ``flush_interval_s``."""
        oldest = self._oldest
        return oldest is not None and time.monotonic() - oldest >= self.flush_interval_s

    def log(self, kind: str, metrics: Mapping[str, Any], step: int | None = None, run: str | None = None,
            tags: Mapping[str, Any] | None = None) -> None:
        if kind not in KINDS:
            raise InvalidQuery(f"log kind must be one of {KINDS}, not {kind!r}")
        if isinstance(metrics, Mapping) and any(isinstance(v, datetime) for v in metrics.values()):
            # A datetime is not a metric: it is kept as a tag, in its stored form (scope.encode_datetime).
            tags = {**{k: v for k, v in metrics.items() if isinstance(v, datetime)}, **dict(tags or {})}
            metrics = {k: v for k, v in metrics.items() if not isinstance(v, datetime)}
        cleaned = clean_metrics(metrics)
        if step is not None and (not isinstance(step, numbers.Integral) or isinstance(step, bool)
                                 or not 0 <= step < 2**63):
            raise InvalidArgument(f"step must be an int from 0 to 2**63-1 (or None: the next step), not {step!r}")
        if step is None:
            step = self._steps.get((kind, run), -1) + 1
        self._steps[(kind, run)] = int(step)
        doc = self._scope.new_doc(kind=kind, step=int(step), metrics=cleaned, timestamp=time.time(),
                                  run=run, **check_tags(tags, RESERVED))
        with self._lock:
            self._buffer.append(doc)
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = len(self._buffer) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record now."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            oldest, self._oldest = self._oldest, None
        if batch:
            try:
                self._scope.index.insert_many(COLLECTION, batch)
            except BaseException:
                with self._lock:  # keep the records for the next attempt: nothing is lost
                    self._buffer[:0] = batch
                    self._oldest = oldest if self._oldest is None else min(oldest or self._oldest, self._oldest)
                raise


def find_logs(scope: StudyScope, kind: str | None = None, query: Mapping[str, Any] | None = None,
              *, sort: Any = None, limit: int = 0) -> list[dict[str, Any]]:
    """Log documents of this study (one kind, or all), in step order unless ``sort`` says otherwise."""
    if kind is not None and kind not in KINDS:
        raise InvalidQuery(f"log kind must be one of {KINDS}, not {kind!r}")
    parts: list[dict[str, Any]] = [{"kind": kind}] if kind else []
    if query:
        parts.append(query_dict(query))
    q = {"$and": parts} if len(parts) > 1 else (parts[0] if parts else {})
    return list(scope.index.find(COLLECTION, scope.query(q), sort=sort or [("step", 1)], limit=limit))
