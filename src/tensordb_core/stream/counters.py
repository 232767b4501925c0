"""Thread-safe sums a stream's stages add to (seconds waited, bytes read, requests), read as one snapshot.

Why a module of its own: the engine's threads, the one-shot readers beside it
(:func:`tensordb_core.stream.batches.read_batch`) and the decoders all add to
them, and ``Stream.stats`` reads them while they run.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Counters:
    """Thread-safe sums the stages add to; read as a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: defaultdict[str, float] = defaultdict(float)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._values[name] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)


__all__ = ["Counters"]
