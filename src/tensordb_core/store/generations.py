"""The data generation: a counter every in-place change of samples moves, so kept references know they are stale.

Why: imports only append (a reader catches up by reading ``_seq`` past its
bound), but a relabel, a delete or a compaction changes documents a reader
already holds.  A stream's index memo (stream/memo.py) keeps sample
references between streams of one process, a persistent DataLoader worker
for a whole run; without a signal it would keep training on deleted samples,
on old labels, and on chunks gc has since removed.  The warehouse moves the
counter after each such change (warehouse/lifecycle.py,
warehouse/compaction.py); a memo's table is reused only while the counter
reads what it read when the table was built.

One counter per index (document ``{_id: "data", n}`` in :data:`GENERATIONS`),
not per study: a change in any study makes every memo re-read, which costs a
re-read and is never wrong.
"""

from __future__ import annotations

from tensordb_core.errors import IntegrityError
from tensordb_core.store.protocols import IndexStore

GENERATIONS = "data_generations"
_ID = "data"


def data_generation(index: IndexStore) -> int:
    """The index's data generation now (0 before the first in-place change)."""
    doc = next(iter(index.find(GENERATIONS, {"_id": _ID}, limit=1)), None)
    return int(doc["n"]) if doc is not None else 0


def bump_data_generation(index: IndexStore) -> int:
    """Move the generation on (atomically, across processes); returns the new value."""
    if not index.count(GENERATIONS, {"_id": _ID}):
        try:
            index.insert_many(GENERATIONS, [{"_id": _ID, "n": 0}])
        except IntegrityError:
            pass  # made concurrently by another writer: its document serves
    doc = index.find_one_and_update(GENERATIONS, {"_id": _ID}, {"$inc": {"n": 1}})
    return int(doc["n"]) if doc is not None else 0


__all__ = ["GENERATIONS", "bump_data_generation", "data_generation"]
