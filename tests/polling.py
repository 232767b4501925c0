"""Wait, in a test, for something another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], bound_s: float = 60.0, poll_s: float = 0.02) -> Any:
    """``check()``'s first truthy value, polled every ``poll_s``; AssertionError once ``bound_s`` has passed.

    The bound only keeps a broken test from hanging: it is not what the test asserts.
    """
    deadline = time.monotonic() + bound_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not reached within {bound_s} s")
        time.sleep(poll_s)
