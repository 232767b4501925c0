"""Where an epoch's population ends, agreed by every rank of a stream group through the warehouse.

Why: an epoch streams the samples with ``_seq`` up to a bound taken when it
starts.  Ranks (or loader workers) that start an epoch at different moments
while an importer writes would each take their own bound and shard different
populations: samples repeated on one rank, missing on another.  ``as_of``
fixes the first epoch's bound by hand; with ``follow=True`` every later epoch
takes a new one.  Passing the same ``group`` name to every rank (the job or
run id) lets the warehouse coordinate them: the first rank to start epoch
``e`` records its bound in the ``stream_epochs`` collection under the id
``<study>:<group>:<e>`` (an insert: a duplicate ``_id`` is refused, so exactly
one proposal wins), and every rank reads and uses the recorded one.

On stores that commit ``_seq`` ranges out of allocation order (MongoDB with
several importers) the record also says when the bound is *settled* —
proposal time plus the store's tail grace — and ranks wait until then before
reading the population, so no insert still in flight can land below it
(:mod:`tensordb_core.stream.follow` explains the grace).  Records are a few bytes
per epoch; they are not copied between warehouses and may be deleted once
the run is over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tensordb_core.errors import IntegrityError, InvalidDocument
from tensordb_core.store.scope import StudyScope
from tensordb_core.stream.follow import tail_grace
from tensordb_core.stream.refs import COLLECTION as DATA

#: The collection holding one record per (study, group, epoch).
COLLECTION = "stream_epochs"


class EpochBounds:
    """``bound(epoch)``: the largest ``_seq`` that epoch's population includes.

    Without a group it is the data's ``last_seq`` now (each rank on its own);
    with one, the bound the group's first rank recorded for that epoch.
    """

    def __init__(self, scope: StudyScope, group: str | None, *, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.scope, self.stop, self.clock = scope, stop, clock
        self.group = None if group is None else check_group(group)

    def bound(self, epoch: int) -> int:
        if self.group is None:
            return self.scope.index.last_seq(DATA)
        key = f"{self.scope.study}:{self.group}:{epoch}"
        record = self._read(key)
        if record is None:
            proposal = newest_seq(self.scope)  # the study's own: other studies' imports do not show
            doc = self.scope.new_doc(group=self.group, epoch=int(epoch), bound=int(proposal),
                                     settled_at=self.clock() + tail_grace(self.scope.index))
            doc["_id"] = key
            try:
                self.scope.index.insert_many(COLLECTION, [doc])
                record = doc
            except IntegrityError:  # another rank proposed first (or a retried insert of ours landed)
                record = self._read(key)
                if record is None:
                    raise InvalidDocument(f"the stream group record {key!r} vanished right after it was written")
        self._wait_until(float(record.get("settled_at", 0.0)))
        return int(record["bound"])

    def _read(self, key: str) -> dict | None:
        return next(iter(self.scope.index.find(COLLECTION, self.scope.query({"_id": key}), limit=1)), None)

    def _wait_until(self, when: float) -> None:
        while (left := when - self.clock()) > 0:
            if self.stop is not None:
                if self.stop.wait(min(left, 1.0)):
                    return  # the stream is closing: what it reads no longer matters
            else:
                time.sleep(min(left, 1.0))


def newest_seq(scope: StudyScope) -> int:
    """The ``_seq`` of the study's newest sample (0 when it has none): a population bound no other study moves.

    Also what ``db.data_snapshot()`` returns (:func:`tensordb_core.warehouse.data.data_snapshot`).
    """
    newest = scope.index.find(DATA, scope.query({}), sort=[("_seq", -1)], limit=1, projection={"_seq": 1})
    return next((int(doc["_seq"]) for doc in newest), 0)


def check_group(group: object) -> str:
    """``group`` if it can name a stream group (it becomes part of a document id), else :class:`InvalidDocument`."""
    if not isinstance(group, str) or not group or len(group) > 200 or ":" in group or "\x00" in group:
        raise InvalidDocument(f"group must be a non-empty name without ':' or NUL (at most 200 characters), "
                              f"not {group!r}")
    return group
