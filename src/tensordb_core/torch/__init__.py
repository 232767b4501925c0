"""PyTorch adapter: a ``torch.utils.data.IterableDataset`` over a TensorDB query (extra ``[torch]``).

::

    from tensordb_core.torch import TensorDBDataLoader, TensorDBIterableDataset
    ds = TensorDBIterableDataset("./warehouse", {"split": "train"}, study="cifar", batch_size=64, seed=1)
    loader = TensorDBDataLoader(ds, num_workers=4, persistent_workers=True)
    for epoch in range(10):
        ds.set_epoch(epoch)          # like DistributedSampler: a new order each epoch
        for X, y in loader: ...

``TensorDBDataLoader`` is torch's ``DataLoader`` (batches from the dataset,
so no ``batch_size``) whose workers hand over several batches at once
(torch/groups.py says why: torch's worker loop moves one item per round
trip); the dataset also works in a plain ``DataLoader(ds, batch_size=None)``.

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
ring (:class:`~tensordb_core.torch.ring.Ring`).  Why: torch gives every tensor a worker sends a new
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

from tensordb_core.errors import MissingDependency

try:
    import torch  # noqa: F401 - the guard: every module of this package needs it
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingDependency("tensordb_core.torch needs PyTorch: pip install 'tensordb[torch]'") from exc

from tensordb_core.torch.dataset import (
    WORKER_SLOTS,
    TensorDBIterableDataset,
    collate_records,
    distributed_shard,
    loader_shard,
)
from tensordb_core.torch.loader import TensorDBDataLoader

__all__ = ["WORKER_SLOTS", "TensorDBDataLoader", "TensorDBIterableDataset", "collate_records", "distributed_shard",
           "loader_shard"]
