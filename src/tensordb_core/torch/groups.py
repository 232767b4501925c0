"""Batches handed from a loader worker to the main process several at a time (:class:`BatchGroup`).

Why: torch's worker loop moves one item per round trip (its index queue,
the worker's fetch, the result queue, the main process's bookkeeping), some
0.8k items a second on 2 cores whatever their size; with batches of 64
small samples that loop, not the data, bounded 2 workers at ~0.6x of one
process streaming.  A worker of :class:`~tensordb_core.torch.TensorDBDataLoader`
sends its first batch alone (the first batch does not wait) and then groups
of batches, which the loader's iterator yields one by one; a plain
``DataLoader`` gets single batches, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

#: A group holds about this many bytes of batches ...
HANDOFF_BYTES = 8 << 20
#: ... and at most this many batches (2 workers, 64 x 12 KiB: 8 a group measured 1.3-1.5x of 1 a group).
MAX_BATCHES_PER_HANDOFF = 8


class BatchGroup(list):  # type: ignore[type-arg]
    """Batches a worker hands over at once, in stream order (a list: torch's conversions keep its type)."""


def batches_per_handoff(asked: int, batch_bytes: int) -> int:
    """``asked`` when given (> 0), else as many batches of ``batch_bytes`` as fill :data:`HANDOFF_BYTES`, at most
    :data:`MAX_BATCHES_PER_HANDOFF`: large batches gain nothing from grouping and would hold more shared memory."""
    if asked > 0:
        return asked
    return max(1, min(MAX_BATCHES_PER_HANDOFF, HANDOFF_BYTES // max(1, batch_bytes)))


def batch_bytes(batch: Any) -> int:
    """The bytes of a batch's arrays and tensors (``(X, y)`` or a record dict), for :func:`batches_per_handoff`."""
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (tuple, list)) else (batch,)
    total = 0
    for value in values:
        if isinstance(value, list):
            total += sum(batch_bytes(v) for v in value)
        else:
            total += int(getattr(value, "nbytes", 0) or 0)
    return total


def handoff_groups(batches: Iterator[Any], size: Callable[[Any], int]) -> Iterator[Any]:
    """``batches``' first alone, then :class:`BatchGroup` s of ``size(first)`` (the last may be short).

    Closing this generator closes ``batches`` (the dataset's iteration, which
    closes or carries its stream in its ``finally``).
    """
    try:
        first = next(batches, None)
        if first is None:
            return
        yield first
        per_group = size(first)
        if per_group <= 1:
            yield from batches
            return
        group = BatchGroup()
        for batch in batches:
            group.append(batch)
            if len(group) == per_group:
                yield group
                group = BatchGroup()
        if group:
            yield group
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


__all__ = ["HANDOFF_BYTES", "MAX_BATCHES_PER_HANDOFF", "BatchGroup", "batch_bytes", "batches_per_handoff",
           "handoff_groups"]
