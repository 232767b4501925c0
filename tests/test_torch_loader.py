"""TensorDBDataLoader: loader workers hand batches over in groups (tensordb_core/torch/groups.py, loader.py).

What must hold: the loop gets the same batches as from a plain ``DataLoader``
(each worker's in the same order), one at a time; workers really send groups
(first batch alone); the caller's dataset object and ``worker_init_fn`` work
as before; bad arguments are refused with a typed error.  Needs the CPU
build of torch (CI installs it).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch  # installed by .ci/run: missing fails, never skips
import torch.utils.data

from tensordb_core.errors import TensorDBError
from tensordb_core.torch import TensorDBDataLoader, TensorDBIterableDataset
from tensordb_core.torch.groups import (
    MAX_BATCHES_PER_HANDOFF,
    BatchGroup,
    batch_bytes,
    batches_per_handoff,
    handoff_groups,
)

N = 120  # the samples in tests/conftest.py's torch_warehouse


@pytest.fixture
def warehouse(torch_warehouse):
    return torch_warehouse  # N samples, X[i] all i, label i, in chunks of 512 bytes


def _dataset(warehouse: str, **kwargs) -> TensorDBIterableDataset:
    return TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000, **kwargs)


def _labels(batches) -> list[list[int]]:
    return [y.tolist() for _, y in batches]


def _plain_batches(warehouse: str) -> int:
    """How many batches a plain loader with 2 workers gives (each worker's last batch may be short)."""
    return len(list(torch.utils.data.DataLoader(_dataset(warehouse), batch_size=None, num_workers=2)))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("per_handoff", [3, None])
def test_the_loop_gets_the_plain_loaders_batches_one_at_a_time(warehouse, per_handoff):
    ds = _dataset(warehouse)
    grouped = TensorDBDataLoader(ds, num_workers=2, persistent_workers=True, batches_per_handoff=per_handoff)
    plain = torch.utils.data.DataLoader(_dataset(warehouse), batch_size=None, num_workers=2)
    for epoch in range(2):
        ds.set_epoch(epoch)
        plain.dataset.set_epoch(epoch)
        got = list(grouped)  # kept whole: no ring slot of a held batch may be reused
        want = list(plain)
        assert all(isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor) for X, y in got)
        assert all(torch.equal(X[:, 0, 0], y.to(torch.float32)) for X, y in got)  # each batch intact
        assert sorted(_labels(got)) == sorted(_labels(want))
        assert sorted(v for labels in _labels(got) for v in labels) == list(range(N))
        # each worker's batches keep their order: the plain loader alternates workers, batch by batch
        plain_workers = [_labels(want)[w::2] for w in range(2)]
        got_labels = _labels(got)
        for batches in plain_workers:
            at = [got_labels.index(b) for b in batches]
            assert at == sorted(at)
        del got


@pytest.mark.timeout(120)
def test_workers_send_their_first_batch_alone_then_groups(warehouse):
    ds = _dataset(warehouse)
    loader = TensorDBDataLoader(ds, num_workers=2, batches_per_handoff=3)
    items = list(torch.utils.data.DataLoader.__iter__(loader))  # what the workers sent, before the split
    sizes = [len(item) if isinstance(item, BatchGroup) else 1 for item in items]
    assert sum(sizes) == _plain_batches(warehouse) == 16  # 60 samples a worker: 8 batches each
    assert sizes[:2] == [1, 1] and sorted(sizes[2:]) == [1, 1, 3, 3, 3, 3]  # first alone each, then 3, 3, 1


@pytest.mark.timeout(120)
def test_the_callers_dataset_still_gives_single_batches_to_a_plain_loader(warehouse):
    ds = _dataset(warehouse)
    assert len(list(TensorDBDataLoader(ds, num_workers=2, batches_per_handoff=4))) == 16
    raw = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    assert len(raw) == 16 and not any(isinstance(item, BatchGroup) for item in raw)


def _mark(where: Path, worker_id: int) -> None:
    (where / f"worker-{worker_id}").write_text(str(torch.utils.data.get_worker_info().dataset._groups_asked))


@pytest.mark.timeout(120)
def test_the_callers_worker_init_fn_runs_in_each_worker(warehouse, tmp_path):
    loader = TensorDBDataLoader(_dataset(warehouse), num_workers=2, worker_init_fn=functools.partial(_mark, tmp_path),
                                batches_per_handoff=2)
    assert len(list(loader)) == 16
    assert sorted(p.name for p in tmp_path.glob("worker-*")) == ["worker-0", "worker-1"]
    assert {p.read_text() for p in tmp_path.glob("worker-*")} == {"2"}  # asked before the caller's function ran


@pytest.mark.timeout(120)
def test_without_workers_it_is_a_plain_loader(warehouse):
    batches = list(TensorDBDataLoader(_dataset(warehouse, shuffle=False)))
    assert _labels(batches) == [list(range(i, i + 8)) for i in range(0, N, 8)]


@pytest.mark.timeout(120)
def test_record_batches_come_grouped_and_split_as_dicts(torch_records_warehouse):
    ds = TensorDBIterableDataset(torch_records_warehouse, study="r", batch_size=4, seed=1, pad={"tokens": 0})
    seen = []
    for batch in TensorDBDataLoader(ds, num_workers=2, batches_per_handoff=3):
        assert isinstance(batch, dict) and isinstance(batch["label"], torch.Tensor)
        seen += batch["caption"]
    assert sorted(seen) == sorted(f"caption {i}" for i in range(40))


@pytest.mark.parametrize("kwargs", [{"batch_size": 8}, {"batches_per_handoff": 0}, {"batches_per_handoff": -1},
                                    {"batches_per_handoff": True}, {"batches_per_handoff": "2"},
                                    {"batches_per_handoff": 2.0}])
def test_bad_arguments_are_refused(warehouse, kwargs):
    with pytest.raises(TensorDBError, match="batch"):
        TensorDBDataLoader(_dataset(warehouse), num_workers=2, **kwargs)


def test_only_a_tensordb_dataset_is_taken():
    with pytest.raises(TensorDBError, match="TensorDBIterableDataset"):
        TensorDBDataLoader(torch.utils.data.TensorDataset(torch.zeros(4)))


def test_a_group_holds_about_eight_mib_of_batches_at_most_eight():
    assert batches_per_handoff(3, 10 << 20) == 3  # asked: as asked
    assert batches_per_handoff(0, 64 * 12288) == MAX_BATCHES_PER_HANDOFF  # 64 x 12 KiB: capped
    assert batches_per_handoff(0, 2 << 20) == 4
    assert batches_per_handoff(0, 32 * 150528) == 1  # 32 x 147 KiB: one at a time
    assert batches_per_handoff(0, 0) == MAX_BATCHES_PER_HANDOFF


def test_batch_bytes_counts_arrays_tensors_and_ragged_lists():
    X, y = torch.zeros((4, 10), dtype=torch.float32), np.zeros(4, np.int64)
    assert batch_bytes((X, y)) == 160 + 32
    assert batch_bytes({"x": X, "parts": [np.zeros(3, np.uint8), np.zeros(5, np.uint8)], "s": ["a"]}) == 168


def test_groups_close_the_batches_they_were_given():
    closed = []

    def batches():
        try:
            yield from range(10)
        finally:
            closed.append(True)

    groups = handoff_groups(batches(), lambda first: 4)
    assert next(groups) == 0 and next(groups) == [1, 2, 3, 4]
    groups.close()
    assert closed == [True]
    assert list(handoff_groups(iter(range(6)), lambda first: 4)) == [0, [1, 2, 3, 4], [5]]
    assert list(handoff_groups(iter(range(3)), lambda first: 1)) == [0, 1, 2]
    assert list(handoff_groups(iter([]), lambda first: 4)) == []


@pytest.mark.timeout(180)
def test_persistent_workers_carry_their_first_stream_into_the_next_epochs(warehouse, tmp_path, monkeypatch):
    """A plain DataLoader's worker cannot tell it is persistent and carries from its second iteration; this
    loader tells it, so each worker streams every epoch of a fixed population with one stream."""
    import tensordb_core.torch.dataset as torch_dataset

    real = torch_dataset.data_stream

    def counted(*args, **kwargs):
        with open(tmp_path / "streams", "a") as f:  # the workers fork with the patch: they write here
            f.write(f"{kwargs['epochs']}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch_dataset, "data_stream", counted)
    for make, expected in ((lambda ds: TensorDBDataLoader(ds, num_workers=2, persistent_workers=True), ["None"] * 2),
                           (lambda ds: torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                                                   persistent_workers=True), ["1", "1", "None", "None"])):
        (tmp_path / "streams").write_text("")
        ds = _dataset(warehouse)
        loader = make(ds)
        for epoch in range(3):
            ds.set_epoch(epoch)
            assert sorted(v for labels in _labels(loader) for v in labels) == list(range(N))
        del loader
        assert sorted((tmp_path / "streams").read_text().split()) == expected
