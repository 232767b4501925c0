"""Loader workers hand batches to the main process through a shared-memory ring (tensordb_core/torch/ring.py).

What must hold: the main process gets the same plain tensors in the same
order as with torch's own hand-off; a batch the training loop keeps is never
overwritten by a later one; every slot comes back once the loop drops its
batches.  Needs the CPU build of torch (CI installs it; see ``.ci/run``).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch  # installed by .ci/run: missing fails, never skips

import tensordb_core.torch as tdb_torch
import tensordb_core.torch.dataset as torch_dataset
import tensordb_core.torch.ring as torch_ring
from tensordb_core.errors import TensorDBError
from tensordb_core.torch import TensorDBIterableDataset

N = 120  # the samples in tests/conftest.py's torch_warehouse


@pytest.fixture
def warehouse(torch_warehouse):
    return torch_warehouse  # tests/conftest.py: N samples, X[i] all i, label i


def _loader(warehouse: str, slots: int, persistent: bool = True):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000,
                                 worker_slots=slots)
    return ds, torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=persistent)


def _in_a_ring(t: torch.Tensor) -> bool:
    """Whether ``t``'s memory lies in a ring this process mapped from a worker."""
    return any(ring.data_ptr() <= t.data_ptr() < ring.data_ptr() + ring.numel()
               for ring, _, _ in torch_ring.MAPPED.values())


@pytest.mark.timeout(120)
def test_worker_batches_arrive_through_the_ring_equal_to_torchs_own_hand_off(warehouse):
    ring_ds, ring = _loader(warehouse, tdb_torch.WORKER_SLOTS)
    plain_ds, plain = _loader(warehouse, 0)
    for epoch in range(2):
        ring_ds.set_epoch(epoch)
        plain_ds.set_epoch(epoch)
        got = [(X.clone(), y.clone(), _in_a_ring(X), _in_a_ring(y), type(X), type(y)) for X, y in ring]
        want = [(X, y) for X, y in plain]
        assert len(got) == len(want) and sum(len(y) for _, y in want) == N
        for (X, y, *_), (wX, wy) in zip(got, want):
            assert torch.equal(X, wX) and torch.equal(y, wy)
        assert all(t is torch.Tensor for *_, tx, ty in got for t in (tx, ty))  # the worker's subclass stays there
        assert sum(x_in and y_in for _, _, x_in, y_in, _, _ in got) >= len(got) - 4  # a few may carry the ring itself
        assert not any(_in_a_ring(X) for X, _ in want)


@pytest.mark.timeout(120)
def test_a_batch_the_loop_keeps_is_never_overwritten(warehouse):
    """Two slots per worker, every batch kept: later batches must take torch's way, not a held slot."""
    ds, loader = _loader(warehouse, 2)
    for epoch in range(2):
        ds.set_epoch(epoch)
        kept = list(loader)
        assert sum(_in_a_ring(X) for X, _ in kept) >= 2
        for X, y in kept:
            assert torch.equal(X[:, 0, 0], y.to(torch.float32)) and torch.equal(X[:, 1, 2], y.to(torch.float32))
        assert sorted(v for _, y in kept for v in y.tolist()) == list(range(N))
        del kept


@pytest.mark.timeout(120)
def test_every_slot_comes_back_when_the_loop_drops_its_batches(warehouse):
    slots = 3
    ds, loader = _loader(warehouse, slots)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for X, y in loader:
            assert torch.equal(X[:, 0, 0], y.to(torch.float32))
    del X, y
    gc.collect()
    workers = {str(w.pid) for w in loader._iterator._workers}
    mine = [mem[:8 * (1 + 2 * slots)].view(np.int64) for token, (_, mem, _) in torch_ring.MAPPED.items()
            if token.split("-")[0] in workers]
    assert len(mine) == 2  # one ring per worker
    for c in mine:
        assert c[0] == 1 and c[1:1 + slots].sum() > 0  # mapped, and used
        assert c[1:1 + slots].tolist() == c[1 + slots:].tolist()  # sent == returned, slot by slot


class _Placed(TensorDBIterableDataset):
    """Says with each batch whether the worker's stream decoded it in a ring slot (no copy at hand-off)."""

    def _lend(self, X, y):
        placed = self._ring is not None and self._ring.slot_of(X) is not None
        return (*super()._lend(X, y), placed)


@pytest.mark.timeout(120)
def test_workers_decode_batches_straight_into_their_ring(warehouse):
    """Once a worker's ring is made (sized by its first batch), its stream decodes batches in free slots: the
    batches are the ones torch's own hand-off gives, and a batch the loop keeps is not overwritten.

    How many of the first epoch's batches are decoded in the ring depends on how far the stream read ahead
    before the first batch made it (1 to 14 of 16 seen: CI's loaded host decoded nearly all ahead); in the
    second every slot is free from the start, so every batch must be."""
    ds = _Placed(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    plain_ds, plain = _loader(warehouse, 0)
    for epoch in range(2):
        ds.set_epoch(epoch)
        plain_ds.set_epoch(epoch)
        kept = list(loader)  # held until both epochs are checked: no slot of a kept batch may be reused
        want = list(plain)
        assert [y.tolist() for _, y, _ in kept] == [y.tolist() for _, y in want]
        assert all(torch.equal(X, wX) for (X, _, _), (wX, _) in zip(kept, want))
        placed = sum(p for _, _, p in kept)
        assert all(_in_a_ring(X) for X, _, p in kept if p)
        if epoch:
            assert placed == len(kept)
        del kept


def test_a_ring_lends_free_slots_and_keeps_some_for_copies():
    ring = torch_ring.Ring(4, 4096)
    taken = [ring.allocate((8, 2, 3), np.float32) for _ in range(4)]
    assert [t is not None for t in taken] == [True, True, False, False]  # 2 kept for batches decoded elsewhere
    assert [ring.slot_of(t) for t in taken[:2]] == [0, 1] and ring.slot_of(np.empty(3)) is None
    taken[0][:] = 7
    X, y = ring.lend([taken[0], np.arange(8)])
    assert X.data_ptr() == taken[0].ctypes.data and torch.all(X == 7)  # lent where it was decoded: no copy
    assert torch.equal(y, torch.arange(8)) and ring.slot_of(y.numpy()) is None  # labels copied after it
    assert ring.allocate((1000, 2, 3), np.float32) is None  # larger than a slot
    del taken, X, y
    gc.collect()
    assert all(ring.free(s) for s in range(4))


def test_without_workers_batches_are_plain_tensors(warehouse):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=50, shuffle=False)
    X, y = next(iter(ds))
    assert type(X) is torch.Tensor and type(y) is torch.Tensor and not _in_a_ring(X)


def test_batch_memory_is_the_datasets_own(warehouse):
    with pytest.raises(TensorDBError, match="batch_memory"):
        TensorDBIterableDataset(warehouse, study="torch", batch_memory=lambda shape, dtype: None)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8"])
def test_worker_slots_must_be_a_non_negative_int(warehouse, bad):
    with pytest.raises(TensorDBError, match="worker_slots"):
        TensorDBIterableDataset(warehouse, study="torch", worker_slots=bad)


@pytest.mark.parametrize(("cpus", "workers", "given", "expected"), [
    (2, 2, None, 1),   # a CPU per worker: the stream sizes its threads for one
    (2, 4, None, 1),
    (8, 2, None, None),  # CPUs to spare: the stream's own choice
    (2, 2, 3, 3),      # the caller's choice stands
])
def test_a_worker_with_one_cpu_streams_for_one_cpu(warehouse, monkeypatch, cpus, workers, given, expected):
    kwargs = {} if given is None else {"cpus": given}
    ds = TensorDBIterableDataset(warehouse, study="torch", decode_workers=None, read_threads=None, **kwargs)
    monkeypatch.setattr(torch_dataset.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(torch_dataset, "get_worker_info", lambda: type("Info", (), {"num_workers": workers, "id": 0})())
    got = ds._stream_kwargs()
    assert got.get("cpus") == expected
    assert got.get("decode_workers") is None and got.get("read_threads") is None  # the stream chooses from cpus
    monkeypatch.setattr(torch_dataset, "get_worker_info", lambda: None)
    assert ds._stream_kwargs().get("cpus") == given  # the main process: untouched


@pytest.mark.timeout(120)
def test_without_room_in_shared_memory_batches_go_torchs_way(warehouse, monkeypatch):
    """A small /dev/shm (Docker: 64 MiB) must not kill a worker: no ring, the same batches."""
    _, loader = _loader(warehouse, tdb_torch.WORKER_SLOTS)
    monkeypatch.setattr(torch_dataset.os, "statvfs", lambda path: type("St", (), {"f_bavail": 0, "f_frsize": 4096})())
    got = list(loader)  # the workers fork with the patches in place
    assert sorted(v for _, y in got for v in y.tolist()) == list(range(N))
    assert all(torch.equal(X[:, 0, 0], y.to(torch.float32)) for X, y in got)
    assert not any(_in_a_ring(X) for X, _ in got)


@pytest.mark.timeout(180)
def test_spawned_workers_hand_off_through_the_ring(warehouse):
    """macOS and Windows start workers with spawn: the dataset is pickled there and the ring made there."""
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True,
                                         multiprocessing_context="spawn")
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = list(loader)
        assert sorted(v for _, y in got for v in y.tolist()) == list(range(N))
        assert all(torch.equal(X[:, 0, 0], y.to(torch.float32)) for X, y in got)
        assert sum(_in_a_ring(X) for X, _ in got) >= len(got) - 4
        del got  # frees this epoch's slots (kept, they would send the next epoch torch's way)
    del loader  # shuts the persistent workers down now, not at interpreter exit
