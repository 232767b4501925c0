"""The hand-offs between stream stages: a stop ends every wait at once (stream/handoff.py)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from tensordb_core.stream.handoff import Handoff, StopSignal, result_or_stop


def _in_thread(fn):
    """Run ``fn`` on a thread; return the thread and a list that receives its result."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def test_items_pass_in_order_and_the_bound_holds():
    h: Handoff[int] = Handoff(2)
    assert h.put(1) and h.put(2)
    assert len(h) == 2
    blocked, result = _in_thread(lambda: h.put(3))  # full: waits for a get
    blocked.join(0.2)
    assert blocked.is_alive() and len(h) == 2
    assert h.get() == 1
    blocked.join(5)
    assert result == [True]
    assert [h.get(), h.get()] == [2, 3]


def test_stop_wakes_a_put_blocked_on_a_full_handoff():
    h: Handoff[str] = Handoff(1)
    h.put("a")
    blocked, result = _in_thread(lambda: h.put("b"))
    blocked.join(0.1)
    assert blocked.is_alive()
    h.stop()
    blocked.join(5)  # woken by stop, not by a timeout of its own: it has none
    assert not blocked.is_alive() and result == [False]


def test_stop_wakes_a_get_blocked_on_an_empty_handoff_and_later_calls_refuse():
    h: Handoff[str] = Handoff(3)
    blocked, result = _in_thread(h.get)
    blocked.join(0.1)
    assert blocked.is_alive()
    h.stop()
    blocked.join(5)
    assert not blocked.is_alive() and result == [None]
    assert h.put("late") is False and h.get() is None and len(h) == 0


def test_a_stopped_handoff_drops_what_it_held():
    h: Handoff[int] = Handoff(3)
    h.put(1)
    h.stop()
    assert h.get() is None and len(h) == 0


def test_a_handoff_holds_at_least_one_item():
    with pytest.raises(ValueError):
        Handoff(0)


def test_a_stop_signal_wakes_each_registered_handoff_once():
    stop = StopSignal()
    calls: list[str] = []
    stop.wake(lambda: calls.append("a"))
    h: Handoff[int] = Handoff(1)
    stop.wake(h.stop)
    blocked, result = _in_thread(h.get)
    stop.set()
    stop.set()  # twice: the wakes ran once
    blocked.join(5)
    assert result == [None] and calls == ["a"] and stop.is_set()
    stop.wake(lambda: calls.append("late"))  # registered after the stop: runs at once
    assert calls == ["a", "late"]


def test_result_or_stop_gives_the_result_the_error_or_none_once_stopped():
    stop = StopSignal()
    done: Future[int] = Future()
    done.set_result(7)
    assert result_or_stop(done, stop) == 7
    failed: Future[int] = Future()
    failed.set_exception(OSError("read failed"))
    with pytest.raises(OSError, match="read failed"):
        result_or_stop(failed, stop)
    pending: Future[int] = Future()
    waiter, result = _in_thread(lambda: result_or_stop(pending, stop))
    waiter.join(0.1)
    assert waiter.is_alive()
    stop.set()
    waiter.join(5)
    assert not waiter.is_alive() and result == [None]
    cancelled: Future[int] = Future()
    cancelled.cancel()  # what a stopping window reader does to the reads it had not started
    assert result_or_stop(cancelled, stop) is None
    later: Future[int] = Future()
    waiter, result = _in_thread(lambda: result_or_stop(later, StopSignal()))
    later.set_result(3)
    waiter.join(5)
    assert result == [3]
