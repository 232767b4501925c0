"""PyTorch adapter: a ``torch.utils.data.IterableDataset`` over a TensorDB query (extra ``[torch]``).

::

    from tensordb_core.torch import TensorDBIterableDataset
    ds = TensorDBIterableDataset("./warehouse", {"split": "train"}, study="cifar", batch_size=64, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4, persistent_workers=True)
    for epoch in range(10):
        ds.set_epoch(epoch)          # like DistributedSampler: a new order each epoch
        for X, y in loader: ...

Persistent workers: :meth:`TensorDBIterableDataset.set_epoch` writes the
epoch and its population into shared memory, which workers read when each
epoch's iteration starts, so workers need not restart to see a new epoch.
Each worker process keeps the sample references it read
(:class:`~tensordb_core.stream.memo.IndexMemo`): a later epoch reads only the
documents inserted since, instead of the whole index again.  And where the
population is fixed (:meth:`~TensorDBIterableDataset.set_epoch`), a
persistent worker's (or the loader process's) stream runs on into the next
epoch, whose iteration takes it over where nothing changed (same epoch,
population, shard and data generation), so an epoch neither starts nor
drains a pipeline.  Samples deleted
(or re-tagged) after a worker read them are seen by a new dataset object.
``cache_dir=`` (a stream argument: remote chunks kept on local disk) gets one
cache object per process, so each cached file is checked once per worker.

Why batches come from the dataset (``batch_size=None`` in the loader): the
stream reads whole chunks and decodes straight into batch arrays; collating
single samples in the loader would undo that.

Record data (``db.import_records``) comes as dicts: :func:`collate_records`
turns each batch dict into tensors (stacked fields as tensors, ragged fields
as lists of tensors, or padded where ``pad={"tokens": 0}`` asks; strings stay
lists); pass ``collate=`` to change that.  ``collate_records`` also serves as a
DataLoader's ``collate_fn`` over single record dicts.

Sharding: each loader worker of each DDP rank streams its own shard
``(rank * num_workers + worker_id, world_size * num_workers)``, so across all
processes every sample of an epoch is read exactly once.  Each worker opens its
own connection from ``uri`` (a connection cannot cross a process boundary).

Hand-off from loader workers: a worker's stream decodes each batch straight
into one of ``worker_slots`` slots of a shared-memory ring (``batch_memory``;
a batch decoded elsewhere, such as the first, is copied into one), and the
main process rebuilds the batch's tensors as views of its own mapping of that
ring (:class:`_Ring`).  Why: torch gives every tensor a worker sends a new
shared-memory segment whose file descriptor the main process fetches over a
socket from the worker's resource-sharer thread; with the worker's stream
threads holding its GIL that cost ~1 ms per tensor on 2 cores (2 workers
moved 22-25k samples/s of 12 KiB where one process streams 71-74k; through
the ring 54-74k, as fast as one process).  A slot is lent again only after
every tensor made from it has been freed in both processes, so a batch the
training loop keeps is never overwritten; when no slot is free (a loop
holding many batches) or shared memory is short, the batch goes torch's
usual way.  Record batches (dicts) always go torch's way.  Only torch's
worker-to-main queue should pickle a worker's batch tensors: a custom
``collate_fn`` that saves them (``torch.save``) writes slot addresses.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import MissingDependency, TensorDBError

try:
    import torch
    from torch.multiprocessing.reductions import reduce_tensor
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingDependency("tensordb_core.torch needs PyTorch: pip install 'tensordb[torch]'") from exc

from tensordb_core.query.filters import validate_query
from tensordb_core.store.generations import data_generation
from tensordb_core.stream.batches import DEFAULT_WINDOW_BYTES, data_stream
from tensordb_core.stream.disk_cache import DEFAULT_DISK_CACHE_BYTES, DiskChunkCache
from tensordb_core.stream.memo import IndexMemo
from tensordb_core.stream.order import StreamState
from tensordb_core.stream.records import collate
from tensordb_core.warehouse import datasets
from tensordb_core.warehouse.handle import connect

#: Shared-memory batch slots per loader worker: the stream decodes up to its ``prefetch`` (8) batches
#: ahead into slots, torch keeps ``prefetch_factor`` (2) in flight per worker and the loop holds one
#: or two more; the rest is headroom before a busy ring sends a batch torch's usual (slower) way.
#: With 8, half the batches of 12 KiB samples were decoded outside the ring and copied in.
WORKER_SLOTS = 16
#: Fewer slots than this (little shared memory free) and batches go torch's way.
MIN_SLOTS = 2
#: Slots a worker's stream leaves free when it decodes a batch into the ring: for the batches it decoded
#: ahead elsewhere (before the ring was made, or while every other slot was held), which are copied in.
SLOTS_KEPT_FOR_COPIES = 2
#: Where Linux keeps POSIX shared memory (torch's segments and the rings).
SHM_DIR = "/dev/shm"
_ALIGN = 64


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
        self._ring: _Ring | None = None
        self._ring_tried = False  # this process sized (and maybe made) its ring
        self._memo: IndexMemo | None = None
        self._memo_pid = 0
        self._disk: DiskChunkCache | None = None
        self._carried: _Run | None = None  # the stream an iteration left at the next epoch's start
        self._carried_pid = 0
        self._iterated_pid = 0  # the process that iterated last: a second iteration there carries streams

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
            self._disk = self._ring = None
            self._ring_tried = False
        return self._memo

    def _stream_kwargs(self) -> dict[str, Any]:
        """The stream arguments, with one disk cache object per process for a ``cache_dir`` path.

        Why one object: a cache object checks each file against its content
        address the first time it reads it; a new object per epoch would hash
        every cached chunk again every epoch.

        In a loader worker with at most one CPU of its own (``num_workers`` >=
        the CPU count), one decode thread and one window-reading thread unless
        ``decode_workers`` / ``read_threads`` are given: the stream's own
        choices count every CPU of the machine, so each of 2 workers on 2
        cores ran 2 decode threads for large samples (147 KiB: 2 workers
        6.4-7.2k -> 8.5-12.4k samples/s, 15% less CPU per sample) and 2
        reading threads for small ones (12 KiB: 2 workers 39-45k -> 47-50k
        samples/s, 38-41 -> 33-36 µs of CPU per sample, loader and workers).
        """
        kwargs = dict(self.stream_kwargs)
        info = get_worker_info()
        if info is not None and (os.cpu_count() or 1) <= info.num_workers:
            for option in ("decode_workers", "read_threads"):
                if kwargs.get(option) is None:
                    kwargs[option] = 1
        where = kwargs.get("cache_dir")
        if isinstance(where, (str, os.PathLike)):
            self._index_memo()
            if self._disk is None:
                self._disk = DiskChunkCache(where, kwargs.pop("disk_cache_bytes", DEFAULT_DISK_CACHE_BYTES))
            kwargs.pop("disk_cache_bytes", None)
            kwargs["cache_dir"] = self._disk
        return kwargs

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memo"], state["_memo_pid"], state["_disk"] = None, 0, None  # references are per process: a spawned worker reads its own
        state["_ring"], state["_ring_tried"] = None, False
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

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        rank, world = loader_shard()
        epoch = self.epoch
        again, self._iterated_pid = self._iterated_pid == os.getpid(), os.getpid()
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

    def _lend(self, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """``(X, y)`` as tensors in a slot of this worker's ring, or made as usual when none is free."""
        numeric = y is not None and y.dtype.kind in "biuf"
        if X.dtype.kind in "biufc" and len(X):
            self._index_memo()  # a forked worker drops the ring it inherited
            if not self._ring_tried:
                self._ring_tried = True
                per_batch = _aligned(X.nbytes // len(X) * self.batch_size)
                per_batch += _aligned(y.itemsize * self.batch_size) if numeric and y is not None else 0
                slots = _slots_that_fit(self.worker_slots, per_batch)
                self._ring = _Ring(slots, per_batch) if slots >= MIN_SLOTS else None
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


def _slots_that_fit(wanted: int, slot_bytes: int) -> int:
    """At most ``wanted`` slots, in at most a quarter of the shared memory free now.

    Why: a ring is touched whole when it is made, and a container's small
    ``/dev/shm`` (64 MiB by default in Docker) that cannot hold it would kill
    the worker with SIGBUS; torch's own hand-off needs room too.
    """
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:  # no such directory (macOS): shared memory is not a small file system there
        return wanted
    return min(wanted, st.f_bavail * st.f_frsize // 4 // max(1, slot_bytes))


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


class _Ring:
    """A loader worker's batch slots: one shared-memory tensor, mapped once by the main process.

    Layout: an int64 header ``[mapped, sent[slots], returned[slots]]``, then
    ``slots`` slots of ``slot_bytes``.  Each counter has one writer process:
    the worker counts the tensors of a slot it sends (``sent``, when they are
    pickled), the main process those it has freed (``returned``), and
    ``mapped`` says the main process holds the ring, so batches stop carrying
    it.  A slot is free when the worker holds no array of it (``local``) and
    every tensor sent from it came back, i.e. was freed: a training loop that
    keeps a batch keeps its slot.
    """

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots, self.slot_bytes = slots, slot_bytes
        self.header = _aligned(8 * (1 + 2 * slots))
        self.token = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.ring = torch.zeros(self.header + slots * slot_bytes, dtype=torch.uint8).share_memory_()
        self.mem = self.ring.numpy()
        self.address = self.mem.ctypes.data
        self.bytes = memoryview(self.mem)
        counters = self.mem[:8 * (1 + 2 * slots)].view(np.int64)
        self.mapped, self.sent = counters[:1], counters[1:1 + slots]
        self.local = [0] * slots
        self.lock = threading.Lock()
        self.turn = 0

    def free(self, slot: int) -> bool:
        returned = self.mem[8 * (1 + self.slots + slot):8 * (2 + self.slots + slot)].view(np.int64)[0]
        return self.local[slot] == 0 and self.sent[slot] == returned

    def _take(self, need: int) -> int | None:
        """Claim the next free slot when at least ``need`` are free (the caller holds the lock), else None."""
        found = (s % self.slots for s in range(self.turn, self.turn + self.slots) if self.free(s % self.slots))
        free = [slot for _, slot in zip(range(need), found)]  # per batch: stop looking once ``need`` are found
        if len(free) < need:
            return None
        self.turn = free[0] + 1
        return free[0]

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """An array of ``shape`` at the start of a free slot, held until it is freed; None when it does not fit
        or fewer than :data:`SLOTS_KEPT_FOR_COPIES` + 1 slots are free.

        Why: a worker decoded each batch into a fresh array and then copied it
        into a slot, holding the GIL: a 12 KiB sample's copy was a tenth of
        the CPU a sample costs across 2 workers and the loader on 2 cores
        (28.8 -> 25.9 µs; 62k -> 69k samples/s, three alternating runs of 11
        later epochs each).  The stream decodes a few batches ahead, so some
        slots stay for :meth:`lend` to copy the batches decoded outside the
        ring into.
        """
        if _aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize) > self.slot_bytes:
            return None
        with self.lock:
            slot = self._take(SLOTS_KEPT_FOR_COPIES + 1)
            if slot is None:
                return None
            self.local[slot] += 1
        view = np.ndarray(shape, dtype, buffer=self.mem, offset=self.header + slot * self.slot_bytes)
        weakref.finalize(view, self._drop, slot)  # with the last array or tensor made from it
        return view

    def slot_of(self, a: np.ndarray) -> int | None:
        """The slot whose start ``a`` is (an array :meth:`allocate` gave), else None."""
        at = a.__array_interface__["data"][0] - self.address - self.header
        inside = 0 <= at < self.slots * self.slot_bytes and at % self.slot_bytes == 0 and a.flags.c_contiguous
        return at // self.slot_bytes if inside else None

    def lend(self, arrays: list[np.ndarray]) -> list[Any] | None:
        """``arrays`` as tensors in a slot: the first where it was decoded into one (:meth:`allocate`), the rest
        copied after it; else copies of all in the next free slot.  None when they do not fit or no slot is free."""
        if sum(_aligned(a.nbytes) for a in arrays) > self.slot_bytes:
            return None
        slot = self.slot_of(arrays[0])
        placed = slot is not None
        with self.lock:
            if slot is None and (slot := self._take(1)) is None:
                return None
            self.local[slot] += len(arrays) - placed
        out, at = [], self.header + slot * self.slot_bytes
        for i, a in enumerate(arrays):
            if i or not placed:
                # memoryview's copy keeps the GIL: numpy's gives it up and the worker's loop then waits
                # behind the stream's threads to get it back (py-spy: most of this line's time)
                self.bytes[at:at + a.nbytes] = memoryview(np.ascontiguousarray(a)).cast("B")
                a = np.ndarray(a.shape, a.dtype, buffer=self.mem, offset=at)
                weakref.finalize(a, self._drop, slot)  # torch frees the array with the tensor's last storage
            tensor = torch.from_numpy(a).as_subclass(_SlotTensor)
            tensor._slot = (self, slot, at, a.dtype.str)
            out.append(tensor)
            at += _aligned(a.nbytes)
        return out

    def _drop(self, slot: int) -> None:
        with self.lock:
            self.local[slot] -= 1

    def count_sent(self, slot: int) -> Any:
        """Count one tensor of ``slot`` as sent; the ring itself while the main process has not mapped it."""
        with self.lock:
            self.sent[slot] += 1
        return self.ring if self.mapped[0] == 0 else None


class _SlotTensor(torch.Tensor):
    """A worker's tensor in a ring slot: pickled (to the main process) as the slot's address, not its bytes.

    Only a loader worker makes these, and only torch's worker-to-main queue
    pickles them; the main process gets plain tensors.  Operations on one
    return plain tensors (``__torch_function__`` disabled).
    """

    __torch_function__ = torch._C._disabled_torch_function_impl
    _slot: tuple[_Ring, int, int, str]

    def __reduce_ex__(self, protocol: Any) -> Any:
        ring, slot, at, dtype = self._slot
        plain = self.as_subclass(torch.Tensor)
        if plain.data_ptr() != ring.ring.data_ptr() + at:  # torch moved its storage: send it torch's way
            return reduce_tensor(plain)
        counter = 8 * (1 + ring.slots + slot)
        return _rebuild_from_ring, (ring.token, counter, at, dtype, tuple(self.shape), ring.count_sent(slot))


#: Rings this (main) process maps, by worker token ``<pid>-<random>``: (ring tensor, its bytes, counter lock).
_MAPPED: dict[str, tuple[Any, np.ndarray, threading.Lock]] = {}


def _rebuild_from_ring(token: str, counter: int, at: int, dtype: str, shape: tuple[int, ...], ring: Any) -> Any:
    """In the main process: the tensor a worker put at ``at`` in its ring, as a view of this process's mapping.

    ``counter`` is the byte offset of the slot's ``returned`` count, raised
    when the view is freed (with every tensor and storage made from it).
    """
    held = _MAPPED.get(token)
    if held is None:
        if ring is None:
            raise TensorDBError(f"a loader worker's batch came without its shared memory (worker {token}); "
                                "recreate the DataLoader, or pass worker_slots=0 to the dataset")
        _forget_dead_workers()
        held = _MAPPED[token] = (ring, ring.numpy(), threading.Lock())
        held[1][:8].view(np.int64)[0] = 1  # mapped: the worker's later batches need not carry the ring
    _, mem, lock = held
    view = np.ndarray(shape, np.dtype(dtype), buffer=mem, offset=at)
    weakref.finalize(view, _give_back, mem, lock, counter)
    return torch.from_numpy(view)


def _give_back(mem: np.ndarray, lock: threading.Lock, counter: int) -> None:
    with lock:  # finalizers run on whichever thread drops the last reference
        mem[counter:counter + 8].view(np.int64)[0] += 1


def _forget_dead_workers() -> None:
    """Drop the rings of workers that have exited (each slot view still alive keeps its mapping)."""
    for token in list(_MAPPED):
        try:
            os.kill(int(token.split("-")[0]), 0)
        except ProcessLookupError:
            del _MAPPED[token]
        except OSError:
            pass


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
