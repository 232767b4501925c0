"""A loader worker's shared-memory ring of batch slots, and the main process's mapping of it.

Why a module of its own: it is the hand-off between a torch ``DataLoader``
worker and the main process (see :mod:`tensordb_core.torch`), one job apart
from what the dataset streams: the worker's stream decodes a batch into a
free slot (or the batch is copied into one), the batch's tensors are
pickled as the slot's address, and the main process rebuilds them as views
of its own mapping of the ring, giving each slot back when they are freed.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import reduce_tensor

from tensordb_core.errors import TensorDBError

#: Fewer slots than this (little shared memory free) and batches go torch's way.
MIN_SLOTS = 2
#: Slots a worker's stream leaves free when it decodes a batch into the ring: for the batches it decoded
#: ahead elsewhere (before the ring was made, or while every other slot was held), which are copied in.
SLOTS_KEPT_FOR_COPIES = 2
#: Where Linux keeps POSIX shared memory (torch's segments and the rings).
SHM_DIR = "/dev/shm"
_ALIGN = 64

def slots_that_fit(wanted: int, slot_bytes: int) -> int:
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


def aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


class Ring:
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
        self.header = aligned(8 * (1 + 2 * slots))
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
        if aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize) > self.slot_bytes:
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
        if sum(aligned(a.nbytes) for a in arrays) > self.slot_bytes:
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
            tensor = torch.from_numpy(a).as_subclass(SlotTensor)
            tensor._slot = (self, slot, at, a.dtype.str)
            out.append(tensor)
            at += aligned(a.nbytes)
        return out

    def _drop(self, slot: int) -> None:
        with self.lock:
            self.local[slot] -= 1

    def count_sent(self, slot: int) -> Any:
        """Count one tensor of ``slot`` as sent; the ring itself while the main process has not mapped it."""
        with self.lock:
            self.sent[slot] += 1
        return self.ring if self.mapped[0] == 0 else None


class SlotTensor(torch.Tensor):
    """A worker's tensor in a ring slot: pickled (to the main process) as the slot's address, not its bytes.

    Only a loader worker makes these, and only torch's worker-to-main queue
    pickles them; the main process gets plain tensors.  Operations on one
    return plain tensors (``__torch_function__`` disabled).
    """

    __torch_function__ = torch._C._disabled_torch_function_impl
    _slot: tuple[Ring, int, int, str]

    def __reduce_ex__(self, protocol: Any) -> Any:
        ring, slot, at, dtype = self._slot
        plain = self.as_subclass(torch.Tensor)
        if plain.data_ptr() != ring.ring.data_ptr() + at:  # torch moved its storage: send it torch's way
            return reduce_tensor(plain)
        counter = 8 * (1 + ring.slots + slot)
        return _rebuild_from_ring, (ring.token, counter, at, dtype, tuple(self.shape), ring.count_sent(slot))


#: Rings this (main) process maps, by worker token ``<pid>-<random>``: (ring tensor, its bytes, counter lock).
MAPPED: dict[str, tuple[Any, np.ndarray, threading.Lock]] = {}


def _rebuild_from_ring(token: str, counter: int, at: int, dtype: str, shape: tuple[int, ...], ring: Any) -> Any:
    """In the main process: the tensor a worker put at ``at`` in its ring, as a view of this process's mapping.

    ``counter`` is the byte offset of the slot's ``returned`` count, raised
    when the view is freed (with every tensor and storage made from it).
    """
    held = MAPPED.get(token)
    if held is None:
        if ring is None:
            raise TensorDBError(f"a loader worker's batch came without its shared memory (worker {token}); "
                                "recreate the DataLoader, or pass worker_slots=0 to the dataset")
        _forget_dead_workers()
        held = MAPPED[token] = (ring, ring.numpy(), threading.Lock())
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
    for token in list(MAPPED):
        try:
            os.kill(int(token.split("-")[0]), 0)
        except ProcessLookupError:
            del MAPPED[token]
        except OSError:
            pass


__all__ = ["MAPPED", "MIN_SLOTS", "SHM_DIR", "SLOTS_KEPT_FOR_COPIES", "Ring", "SlotTensor", "aligned", "slots_that_fit"]
