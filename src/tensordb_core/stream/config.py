"""What shapes a stream: its options, validated once by :func:`tensordb_core.stream.batches.data_stream`.

Why a module of its own: the engine (stream/engine.py) runs a stream, the
batches module (stream/batches.py) validates and exposes one; both read
these frozen options, and neither should hold the other's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.stream.decode import BatchMemory


@dataclass(frozen=True)
class StreamConfig:
    """Everything that shapes a stream (validated by :func:`tensordb_core.stream.batches.data_stream`)."""

    query: dict[str, Any]
    batch_size: int
    shuffle: bool
    seed: int
    epochs: int | None
    follow: bool
    rank: int
    world: int
    transform: Callable[[np.ndarray], Any] | None
    prefetch: int
    on_error: str
    drop_last: bool
    window_bytes: int
    decode_workers: int | None  # None: chosen from the sample size (decode.auto_decode_workers)
    poll_s: float
    verify: bool
    group: str | None = None  # ranks passing the same name agree on each epoch's population (stream/groups.py)
    records: RecordOptions | None = None  # dict batches of records (stream/records.py); None: (X, y) batches
    weights: str | Callable[[Mapping[str, Any]], float] | None = None  # draw with replacement (order.weighted_order)
    read_threads: int | None = None  # threads reading windows (reader.WindowReader); None: WINDOWS_AHEAD
    batch_memory: BatchMemory | None = None  # where (X, y) batches decode (decode.BatchMemory); None: fresh arrays
    cpus: int | None = None  # CPUs the default thread counts are sized for; None: the machine's


@dataclass(frozen=True)
class RecordOptions:
    """How a record stream reads: which fields (None: all), whether media is decoded, which ragged fields to pad."""

    fields: tuple[str, ...] | None = None
    decode: bool = True
    pad: Mapping[str, Any] | None = None


__all__ = ["RecordOptions", "StreamConfig"]
