"""Bounded hand-offs between a stream's stages whose waits end the moment the stream stops.

Why not ``queue.Queue``: a stage blocked on a full or empty queue can only
notice a stop by waking now and then (``put``/``get`` with a timeout), so
closing a stream waited for that tick: ~50 ms to close a stream after its
first batch (the fetch thread blocked on a full window queue, the assembly
thread on a full batch queue), in every ``with`` block, every ``break`` out
of a loop, every torch worker's epoch.  A shorter tick costs wake-ups (each
takes the GIL from the decoders) all through the stream.  Here :meth:`stop`
wakes every waiter at once and nothing polls.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StopSignal(threading.Event):
    """A stream's stop event that, once set, also wakes what waits without polling.

    Whoever sets it (``close()``, or a stage giving up) ends every wait at
    once: each registered hand-off stops, and :attr:`future` completes for
    waits on a future (:func:`result_or_stop`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.future: Future[None] = Future()
        self._wakes: list[Callable[[], None]] = []

    def wake(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the signal is set (at once if it is set already)."""
        self._wakes.append(fn)
        if self.is_set():
            fn()

    def set(self) -> None:
        super().set()
        try:
            self.future.set_result(None)
        except InvalidStateError:  # set before
            return
        for fn in self._wakes:
            fn()


class Handoff(Generic[T]):
    """A bounded FIFO between two threads; :meth:`stop` ends every wait and every later call."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"a hand-off holds at least one item, not {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)
        self._stopped = False

    def put(self, item: T) -> bool:
        """Append ``item``, waiting while full; False (nothing appended) once stopped."""
        with self._not_full:
            while len(self._items) >= self.maxsize and not self._stopped:
                self._not_full.wait()
            if self._stopped:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self) -> T | None:
        """The oldest item, waiting while empty; None once stopped (what is left is dropped)."""
        with self._not_empty:
            while not self._items and not self._stopped:
                self._not_empty.wait()
            if self._stopped:
                return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def stop(self) -> None:
        """Wake every waiter; from now on :meth:`put` refuses and :meth:`get` returns None."""
        with self._lock:
            self._stopped = True
            self._items.clear()
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def done_or_stop(future: Future[Any], stop: StopSignal) -> None:
    """Wait until ``future`` is done or ``stop`` is set; its result or error is left to whoever takes it."""
    if not future.done():
        wait([future, stop.future], return_when=FIRST_COMPLETED)


def result_or_stop(future: Future[T], stop: StopSignal) -> T | None:
    """``future``'s result (re-raising its error); None once ``stop`` is set (then a cancelled read is no error)."""
    done_or_stop(future, stop)
    if stop.is_set() or not future.done():
        return None
    return future.result()


__all__ = ["Handoff", "StopSignal", "done_or_stop", "result_or_stop"]
