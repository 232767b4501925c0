"""``TensorDBIterableDataset``: a query's batches as torch tensors, sharded over DDP ranks and loader workers.

See :mod:`tensordb_core.torch` for how it is used and why its loader
workers hand batches over through a shared-memory ring (``ring.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch  # the package's __init__ says what to install when it is missing
from torch.utils.data import IterableDataset, get_worker_info

from tensordb_core.errors import TensorDBError
from tensordb_core.query.filters import validate_query
from tensordb_core.store.generations import data_generation
from tensordb_core.stream.batches import DEFAULT_WINDOW_BYTES, data_stream
from tensordb_core.stream.disk_cache import DEFAULT_DISK_CACHE_BYTES, DiskChunkCache, disk_cache_for
from tensordb_core.stream.memo import IndexMemo
from tensordb_core.stream.order import StreamState
from tensordb_core.stream.records import collate
from tensordb_core.torch.groups import batch_bytes, batches_per_handoff, handoff_groups
from tensordb_core.torch.ring import MIN_SLOTS, Ring, aligned, slots_that_fit
from tensordb_core.warehouse import datasets
from tensordb_core.warehouse.handle import connect, preload

#: Shared-memory batch slots per loader worker: the stream decodes up to its ``prefetch`` (8) batches
#: ahead into slots, torch keeps ``prefetch_factor`` (2) in flight per worker and the loop holds one
#: or two more; the rest is headroom before a busy ring sends a batch torch's usual (slower) way.
#: With 8, half the batches of 12 KiB samples were decoded outside the ring and copied in.
WORKER_SLOTS = 16


def distributed_shard() -> tuple[int, int]:
    """``(rank, world_size)`` of torch.distributed when initialised, else ``(0, 1)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def loader_shard() -> tuple[int, int]:
    """This process's shard: the DDP rank refined by the DataLoader worker, as ``(rank, world)``."""
    rank, world = distributed_shard()
    info = get_worker_info()
    if info is None:
        return rank, world
    return rank * info.num_workers + info.id, world * info.num_workers


class TensorDBIterableDataset(IterableDataset):
    """Batches ``(X, y)`` of a query as torch tensors, sharded over DDP ranks and loader workers.

    ``y`` is a tensor for numeric labels, a numpy array for string labels and
    ``None`` without labels.  Other keyword arguments go to
    :func:`tensordb_core.stream.batches.data_stream` (``transform``, ``cache_bytes``,
    ``on_error``, ``drop_last``, ``prefetch``, ``decode_workers`` ...).
    Call :meth:`set_epoch` before each epoch for a new order and a population
    every worker agrees on (persistent workers see it too: it is kept in
    shared memory); ``as_of`` fixes the population of the
    iterations before the first :meth:`set_epoch`, which takes a new one.
    Resuming mid-epoch is the stream's job (``state=``, without loader
    workers): a loader cannot tell which worker's batches it has consumed.
    ``worker_slots`` batches per loader worker share memory with the main
    process (see the module docs; 0: torch's own hand-off, ~3x slower for
    12 KiB samples on 2 cores).
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        query: Mapping[str, Any] | None = None,
        *,
        study: str | None = None,
        blobs: str | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        transform: Callable[[np.ndarray], Any] | None = None,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        as_of: int | None = None,
        collate: Callable[[Any], Any] | None = None,
        worker_slots: int = WORKER_SLOTS,
        **stream_kwargs: Any,
    ) -> None:
        super().__init__()
        self.uri = os.fspath(uri) if isinstance(uri, os.PathLike) else uri
        self.query = validate_query(query)
        self.study, self.blobs = study, blobs
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.transform, self.window_bytes = transform, window_bytes
        self.dataset = stream_kwargs.pop("dataset", None)  # a dataset version's name (warehouse/datasets.py)
        if "batch_memory" in stream_kwargs:  # loader workers lend their ring's slots through it
            raise TensorDBError("batch_memory is the dataset's own (its workers decode into their shared-memory "
                                "ring); pass worker_slots=0 for torch's hand-off instead")
        self.stream_kwargs = stream_kwargs
        # (epoch, as_of or -1) in shared memory: persistent loader workers read what set_epoch wrote.
        self._shared = torch.tensor([0, -1 if as_of is None else int(as_of)], dtype=torch.int64).share_memory_()
        self.collate = collate or collate_records
        if isinstance(worker_slots, bool) or not isinstance(worker_slots, int) or worker_slots < 0:
            raise TensorDBError(f"worker_slots must be an int >= 0 (0: torch's own hand-off), got {worker_slots!r}")
        self.worker_slots = worker_slots
        self._ring: Ring | None = None
        self._ring_tried = False  # this process sized (and maybe made) its ring
        # set in the workers of a TensorDBDataLoader (torch/loader.py):
        self._groups_asked: int | None = None  # batches a hand-off (0: by their bytes)
        self._persistent_worker = False  # it iterates every epoch: its first iteration may carry its stream on
        self._per_handoff: int | None = None  # what this process decided from its first batch
        self._memo: IndexMemo | None = None
        self._memo_pid = 0
        self._disk: DiskChunkCache | None = None
        self._carried: _Run | None = None  # the stream an iteration left at the next epoch's start
        self._carried_pid = 0
        self._iterated_pid = 0  # the process that iterated last: a second iteration there carries streams
        # The store modules and client libraries, imported here once: a loader's forked workers inherit them
        # rather than each importing them before its first batch (warehouse/handle.py).
        preload(self.uri, blobs=self.blobs)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration streams (set by :meth:`set_epoch`; shared with loader workers)."""
        return int(self._shared[0])

    @property
    def as_of(self) -> int | None:
        """The ``_seq`` bound of the next iteration's population (None: each stream takes its own)."""
        value = int(self._shared[1])
        return None if value < 0 else value

    def _index_memo(self) -> IndexMemo:
        """This process's memo of sample references (a forked worker starts its own)."""
        if self._memo is None or self._memo_pid != os.getpid():
            self._memo, self._memo_pid = IndexMemo(), os.getpid()
            self._disk = self._ring = self._per_handoff = None
            self._ring_tried = False
        return self._memo

    def _stream_kwargs(self) -> dict[str, Any]:
        """The stream arguments, with one disk cache object per process for a ``cache_dir`` path (or, none given,
        ``$TENSORDB_CACHE_DIR``'s: stream/disk_cache.py).

        Why one object: a cache object checks each file against its content
        address the first time it reads it; a new object per epoch would hash
        every cached chunk again every epoch.

        In a loader worker with at most one CPU of its own (``num_workers`` >=
        the CPU count), ``cpus=1`` unless ``cpus`` is given: the stream's own
        choices counted every CPU of the machine, so each of 2 workers on 2
        cores ran 2 decode threads for large samples (147 KiB: 2 workers
        6.4-7.2k -> 8.5-12.4k samples/s with one, 15% less CPU per sample) and
        2 reading threads for small ones (12 KiB: 2 workers 39-45k -> 47-50k
        samples/s with one, 38-41 -> 33-36 µs of CPU per sample, loader and
        workers).  With one CPU the stream reads on one thread and decodes on
        one, or two for small lz4 samples decoded a batch at a time
        (:func:`tensordb_core.stream.decode.auto_decode_workers`).
        """
        kwargs = dict(self.stream_kwargs)
        info = get_worker_info()
        if info is not None and (os.cpu_count() or 1) <= info.num_workers and kwargs.get("cpus") is None:
            kwargs["cpus"] = 1
        where = kwargs.get("cache_dir")
        if where is None or isinstance(where, (str, os.PathLike)):  # a path, or $TENSORDB_CACHE_DIR's
            self._index_memo()
            if self._disk is None:
                self._disk = disk_cache_for(where, kwargs.get("disk_cache_bytes", DEFAULT_DISK_CACHE_BYTES))
            kwargs.pop("disk_cache_bytes", None)
            kwargs["cache_dir"] = self._disk if self._disk is not None else False  # None: the environment names none
        return kwargs

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memo"], state["_memo_pid"], state["_disk"] = None, 0, None  # references are per process: a spawned worker reads its own
        state["_ring"], state["_ring_tried"], state["_per_handoff"] = None, False, None
        state["_carried"], state["_carried_pid"], state["_iterated_pid"] = None, 0, 0
        return state

    def set_epoch(self, epoch: int, as_of: int | None = None) -> None:
        """Which epoch the next iteration streams (its order depends on it), and its population.

        The population is fixed here, in the process that owns the loader, so
        that its workers (each starting its stream a little later) shard the
        same samples even while an importer adds more: ``as_of`` when given
        (DDP: rank 0's ``db.data_snapshot()``, broadcast), else the data's last
        ``_seq`` now.  Without ``set_epoch`` the first iteration's workers each
        take their own bound.  A dataset made with ``group=`` (a stream
        argument) leaves the bound to the group: every worker of every rank
        reads the one recorded in the warehouse for this epoch.
        """
        if as_of is None and self.stream_kwargs.get("group") is None:
            with connect(self.uri, self.study, blobs=self.blobs) as db:
                as_of = db.data_snapshot(settle_s=0)
        self._shared[1] = -1 if as_of is None else int(as_of)
        self._shared[0] = int(epoch)

    def __iter__(self) -> Iterator[Any]:
        """The epoch's batches; in a worker of :class:`~tensordb_core.torch.TensorDBDataLoader`, the first alone
        and then in groups (torch/groups.py), which that loader's iterator yields one by one.  Not in a
        following stream: a group would hold back batches while the stream waits for new data."""
        batches = self._batches()
        if self._groups_asked is None or self.stream_kwargs.get("follow"):  # set in that loader's workers only
            return batches
        return handoff_groups(batches, lambda first: self._batches_per_handoff(batch_bytes(first)))

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        """The epoch's batches one by one, as tensors (in a loader worker, lent from its ring where it can)."""
        rank, world = loader_shard()
        epoch = self.epoch
        again, self._iterated_pid = self._iterated_pid == os.getpid() or self._persistent_worker, os.getpid()
        run = self._take_carried(epoch, self.as_of, rank, world) or self._open(epoch, self.as_of, rank, world,
                                                                              carry=again)
        in_worker = self._lends_slots()
        carried = False
        try:
            batch, run.first = run.first, None
            while True:
                if batch is None:
                    batch = next(run.stream, None)
                    if batch is None:
                        return
                if run.stream.epoch != epoch:  # the next epoch's first batch: keep the stream for that epoch
                    run.epoch, run.first = epoch + 1, batch
                    self._carried, self._carried_pid, carried = run, os.getpid(), True
                    return
                if isinstance(batch, dict):
                    yield self.collate(batch)
                elif in_worker:
                    yield self._lend(*batch)
                else:
                    X, y = batch
                    yield torch.from_numpy(X), _label_tensor(y)
                batch = None
        finally:
            if not carried:
                run.close()

    def _open(self, epoch: int, as_of: int | None, rank: int, world: int, carry: bool) -> _Run:
        """A new stream from ``epoch`` on; with ``carry``, endless where its population is fixed (see
        :meth:`_take_carried`).  Only a process's second iteration and later carry: a loader worker that is not
        persistent iterates once, and a stream run on into an epoch it will never see would read and decode
        up to two windows and a few batches for nothing."""
        state = StreamState(self.query, self.seed, bool(self.shuffle), self.window_bytes, epoch=epoch)
        db = connect(self.uri, self.study, blobs=self.blobs)
        try:
            scope, asked = db.scope, as_of
            if self.dataset is not None:  # its pinned samples and labels; its population, whatever the epoch
                scope, pinned = datasets.stream_args(db.scope, self.dataset, {})
                as_of = pinned["as_of"]
            kwargs = self._stream_kwargs()
            endless = carry and as_of is not None and kwargs.get("group") is None and not kwargs.get("follow")
            generation = data_generation(db.scope.index)  # before the stream reads: a change after shows later
            stream = data_stream(scope, self.query, batch_size=self.batch_size, shuffle=self.shuffle,
                                 seed=self.seed, epochs=None if endless else epoch + 1, shard=(rank, world),
                                 transform=self.transform, window_bytes=self.window_bytes, state=state, as_of=as_of,
                                 index_memo=self._index_memo(), **kwargs,
                                 batch_memory=self._slot_array if self._lends_slots() else None)
        except BaseException:
            db.close()
            raise
        return _Run(db, stream, epoch, asked, rank, world, generation)

    def _take_carried(self, epoch: int, as_of: int | None, rank: int, world: int) -> _Run | None:
        """The stream the previous iteration of this process left at the start of ``epoch``, if it fits.

        Why: a new stream per epoch paid its start (connection, record probe,
        order, first window, an undecoded first window) and its drain (the last
        windows with nothing to overlap) every epoch, in every loader worker:
        about a quarter of a worker's epoch on 10k samples of 12 KiB.  A
        stream whose population is fixed (``as_of``) streams the next epoch
        exactly as a new one would, so the previous iteration keeps it running
        into the next epoch and hands it over here.  It fits when the epoch,
        the population (what :meth:`set_epoch` fixed), the shard and the data
        generation (no relabel, delete or compaction since:
        store/generations.py) are the ones it was made for; else it is closed.
        """
        run, self._carried = self._carried, None
        if run is None:
            return None
        if self._carried_pid != os.getpid():  # inherited by a forked worker: its threads stayed in the parent
            return None
        if (run.epoch, run.as_of, run.rank, run.world) == (epoch, as_of, rank, world):
            try:
                if data_generation(run.db.scope.index) == run.generation:
                    return run
            except TensorDBError:
                pass  # the index is gone or down: a new stream says so, with its own error
        run.close()
        return None

    def _lends_slots(self) -> bool:
        """Whether this process hands batches over through its ring: a loader worker's, unless ``worker_slots=0``."""
        return self.worker_slots > 0 and get_worker_info() is not None

    def _slot_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """A free slot of this worker's ring to decode a batch into (the stream's ``batch_memory``), or None:
        no ring yet (it is sized by the first batch) or too few free slots."""
        ring = self._ring
        return ring.allocate(shape, dtype) if ring is not None else None

    def _batches_per_handoff(self, nbytes: int) -> int:
        """Batches this process hands over at once, decided once from a batch of ``nbytes``: 1 outside a
        :class:`~tensordb_core.torch.TensorDBDataLoader`'s workers."""
        if self._groups_asked is None:
            return 1
        if self._per_handoff is None:
            self._per_handoff = batches_per_handoff(self._groups_asked, nbytes)
        return self._per_handoff

    def _lend(self, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """``(X, y)`` as tensors in a slot of this worker's ring, or made as usual when none is free."""
        numeric = y is not None and y.dtype.kind in "biuf"
        if X.dtype.kind in "biufc" and len(X):
            self._index_memo()  # a forked worker drops the ring it inherited
            if not self._ring_tried:
                self._ring_tried = True
                per_batch = aligned(X.nbytes // len(X) * self.batch_size)
                per_batch += aligned(y.itemsize * self.batch_size) if numeric and y is not None else 0
                # groups in flight: torch's prefetch_factor (2) and the one the loop is yielding from
                slots = slots_that_fit(self.worker_slots + 3 * (self._batches_per_handoff(per_batch) - 1), per_batch)
                self._ring = Ring(slots, per_batch) if slots >= MIN_SLOTS else None
            lent = self._ring.lend([X, y] if numeric else [X]) if self._ring is not None else None
            if lent is not None:
                return lent[0], (lent[1] if numeric else y)
        return torch.from_numpy(X), _label_tensor(y)


@dataclass
class _Run:
    """One iteration's stream with its connection, and what it was made for (see ``_take_carried``)."""

    db: Any
    stream: Any
    epoch: int  # the epoch its next batch belongs to
    as_of: int | None  # the population asked for (before a dataset's pin)
    rank: int
    world: int
    generation: int  # the data generation read before it started
    first: Any = None  # a batch already taken from the stream, yielded first

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.db.close()


def collate_records(batch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                    pad: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A record batch as torch values: the stream's batch dict, or a list of record dicts (a ``collate_fn``).

    A list is first collated like the stream's batches (equal shapes stacked,
    ragged fields a list, or padded with ``<name>_length`` for the fields in
    ``pad``).  Then numeric arrays become tensors, lists of numeric arrays
    lists of tensors, and anything else (strings, bytes, JSON) stays as it is.
    """
    columns = collate(batch, pad) if not isinstance(batch, Mapping) else batch
    return {name: _to_torch(value) for name, value in columns.items()}


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value) if value.dtype.kind in "biufc" else value
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        return [_to_torch(v) for v in value]
    return value


def _label_tensor(y: np.ndarray | None) -> Any:
    if y is None or y.dtype.kind not in "biuf":
        return y
    return torch.from_numpy(y)


__all__ = ["TensorDBIterableDataset", "collate_records", "distributed_shard", "loader_shard"]
