"""``TensorDBDataLoader``: torch's ``DataLoader`` for a :class:`TensorDBIterableDataset`, handing batches over in groups.

Why a subclass: grouping needs both ends.  Its workers are told (by a
``worker_init_fn`` that then runs the caller's) to send groups of batches
(torch/groups.py), and its iterator yields a group's batches one by one;
the caller's dataset object is left as it was, so the same dataset in a
plain ``DataLoader`` still gets single batches.  Everything else is
torch's: workers, ``persistent_workers``, ``pin_memory``, ``prefetch_factor``
(counted in groups), ``multiprocessing_context``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch.utils.data
from torch.utils.data import get_worker_info

from tensordb_core.errors import TensorDBError
from tensordb_core.torch.dataset import TensorDBIterableDataset
from tensordb_core.torch.groups import BatchGroup


class _WorkerSetup:
    """A loader's ``worker_init_fn``: tells the worker's copy of the dataset what the loader knows, then runs
    the caller's.  ``asked``: batches a hand-off (0: by their bytes).  ``persistent``: the worker iterates
    every epoch, so its first iteration carries its stream into the next epoch (a plain ``DataLoader``'s
    worker cannot tell, and carries from its second: the first epoch after the workers start paid a new
    stream, 92-102k against 130-150k samples/s of the later ones, 2 workers, 12 KiB samples).

    A class, not a closure: spawned workers (macOS, Windows) receive it pickled.
    """

    def __init__(self, asked: int, persistent: bool, then: Callable[[int], None] | None) -> None:
        self.asked, self.persistent, self.then = asked, persistent, then

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        if info is not None:
            info.dataset._groups_asked = self.asked
            info.dataset._persistent_worker = self.persistent
        if self.then is not None:
            self.then(worker_id)


class TensorDBDataLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` over a :class:`TensorDBIterableDataset` whose workers hand over several batches at once.

    ``batches_per_handoff``: how many (default: as many as fill ~8 MiB, at
    most 8; 1: one at a time, like a plain ``DataLoader``).  Batches come from
    the dataset, so ``batch_size`` must be left out (or None); other
    arguments are torch's.  Without workers it is a plain ``DataLoader``.
    """

    def __init__(self, dataset: TensorDBIterableDataset, *, batches_per_handoff: int | None = None,
                 batch_size: int | None = None, worker_init_fn: Callable[[int], None] | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(dataset, TensorDBIterableDataset):
            raise TensorDBError(f"TensorDBDataLoader reads a TensorDBIterableDataset, got {type(dataset).__name__}; "
                                "use torch.utils.data.DataLoader for other datasets")
        if batch_size is not None:
            raise TensorDBError(f"batches come from the dataset (its batch_size={dataset.batch_size}); "
                                f"leave out the loader's batch_size, got {batch_size!r}")
        if batches_per_handoff is not None and (isinstance(batches_per_handoff, bool)
                                                or not isinstance(batches_per_handoff, int) or batches_per_handoff < 1):
            raise TensorDBError(f"batches_per_handoff must be an int >= 1 (None: by the batches' bytes), "
                                f"got {batches_per_handoff!r}")
        asked = batches_per_handoff or 0  # 0: by the batches' bytes (groups.batches_per_handoff)
        if isinstance(worker_init_fn, _WorkerSetup):  # re-made from its own arguments (Lightning does)
            worker_init_fn = worker_init_fn.then
        self.batches_per_handoff = batches_per_handoff
        setup = _WorkerSetup(asked, bool(kwargs.get("persistent_workers")), worker_init_fn)
        super().__init__(dataset, batch_size=None, worker_init_fn=setup, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            if isinstance(item, BatchGroup):
                yield from item
            else:
                yield item


__all__ = ["TensorDBDataLoader"]
