"""The PyTorch adapter: DataLoader workers (and DDP ranks) each stream a disjoint shard.

Needs the CPU build of torch (CI installs ``torch==2.13.0``; see ``.ci/run``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # installed by .ci/run (optional extra [torch] for users): missing fails, never skips

import tensordb_core as tdb
from tensordb_core.torch import TensorDBIterableDataset, loader_shard

N = 120  # the samples in tests/conftest.py's torch_warehouse


@pytest.fixture
def warehouse(torch_warehouse):
    return torch_warehouse  # tests/conftest.py: N samples, X[i] all i, label i


@pytest.mark.timeout(120)
def test_two_workers_cover_each_sample_once_per_epoch(warehouse):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        labels = []
        for X, y in loader:
            assert isinstance(X, torch.Tensor) and X.dtype == torch.float32 and X.shape[1:] == (2, 3)
            assert torch.equal(X[:, 0, 0], y.to(torch.float32))
            labels += y.tolist()
        assert sorted(labels) == list(range(N))
        epochs.append(labels)
    assert epochs[0] != epochs[1]


def test_without_workers_the_dataset_is_one_shard(warehouse):
    assert loader_shard() == (0, 1)
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=50, shuffle=False)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [50, 50, 20]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(N))


@pytest.mark.timeout(120)
def test_workers_agree_on_the_epoch_population_while_data_arrives(warehouse):
    """set_epoch fixes the population in the loader's process: samples imported after it (before the
    workers start their streams) belong to the next epoch, never to one worker's shard of this one."""
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=5, window_bytes=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ds.set_epoch(0)
    with tdb.connect(warehouse, study="torch") as db:
        late = np.arange(N, N + 30)
        db.import_data((late[:, None] + np.zeros(6)).astype(np.float32).reshape(-1, 2, 3), late, chunk_bytes=512)
    assert sorted(y for _, ys in loader for y in ys.tolist()) == list(range(N))
    ds.set_epoch(1)
    assert sorted(y for _, ys in loader for y in ys.tolist()) == list(range(N + 30))
    ds.set_epoch(2, as_of=ds.as_of - 30)  # an explicit bound (DDP: rank 0's db.data_snapshot(), broadcast)
    assert sorted(y for _, ys in loader for y in ys.tolist()) == list(range(N))


@pytest.mark.timeout(120)
def test_a_grouped_dataset_lets_the_warehouse_fix_each_epoch(warehouse):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=5, window_bytes=1000, group="run-9")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ds.set_epoch(0)
    assert ds.as_of is None  # left to the group
    first = sorted(y for _, ys in loader for y in ys.tolist())
    with tdb.connect(warehouse, study="torch") as db:
        late = np.arange(N, N + 30)
        db.import_data((late[:, None] + np.zeros(6)).astype(np.float32).reshape(-1, 2, 3), late, chunk_bytes=512)
    again = sorted(y for _, ys in loader for y in ys.tolist())  # epoch 0 again: its recorded bound
    assert first == again == list(range(N))
    ds.set_epoch(1)
    assert sorted(y for _, ys in loader for y in ys.tolist()) == list(range(N + 30))


@pytest.mark.timeout(120)
def test_record_data_comes_as_dicts_of_tensors_with_ragged_fields_from_two_workers(torch_records_warehouse):
    from tensordb_core.torch import collate_records

    ds = TensorDBIterableDataset(torch_records_warehouse, study="r", batch_size=8, seed=1, pad={"tokens": 0})
    seen = []
    for batch in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2):
        assert isinstance(batch["label"], torch.Tensor) and isinstance(batch["caption"], list)
        assert isinstance(batch["tokens"], torch.Tensor) and batch["tokens_length"].shape == batch["label"].shape
        assert isinstance(batch["image"], list) and all(isinstance(t, torch.Tensor) for t in batch["image"])
        seen += batch["caption"]
    assert sorted(seen) == sorted(f"caption {i}" for i in range(40))
    one = collate_records([{"t": np.arange(2), "s": "a"}, {"t": np.arange(3), "s": "b"}], pad={"t": -1})
    assert one["t"].tolist() == [[0, 1, -1], [0, 1, 2]] and one["t_length"].tolist() == [2, 3] and one["s"] == ["a", "b"]


def _epoch_labels(ds, epoch):
    ds.set_epoch(epoch)
    return [int(v) for _, y in ds for v in y.tolist()]


def test_an_iteration_hands_its_stream_on_to_the_next_epoch(warehouse, monkeypatch):
    """From a process's second iteration on (a worker that is not persistent iterates once), one stream
    serves every epoch of a fixed population, in the order one stream of all those epochs gives."""
    import tensordb_core.torch.dataset as adapter

    made = []
    real = adapter.data_stream
    monkeypatch.setattr(adapter, "data_stream", lambda *a, **k: made.append(k["epochs"]) or real(*a, **k))
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
    got = [_epoch_labels(ds, epoch) for epoch in range(4)]
    assert made == [1, None]  # epoch 0 alone; then one endless stream, each iteration stopping at its epoch's end
    with tdb.connect(warehouse, study="torch") as db, db.data_generator(
            {}, batch_size=8, seed=3, window_bytes=1000, epochs=4, as_of=ds.as_of) as stream:
        expected = [int(v) for _, y in stream for v in y.tolist()]
    assert [v for labels in got for v in labels] == expected and all(sorted(labels) == list(range(N)) for labels in got)
    assert got[0] != got[1] != got[2]
    ds._carried.close()


def test_a_carried_stream_is_dropped_when_its_epoch_population_or_data_changed(warehouse, monkeypatch):
    import tensordb_core.torch.dataset as adapter

    made = []
    real = adapter.data_stream
    monkeypatch.setattr(adapter, "data_stream", lambda *a, **k: made.append(k["state"].epoch) or real(*a, **k))
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
    assert sorted(_epoch_labels(ds, 0)) == list(range(N))
    assert sorted(_epoch_labels(ds, 0)) == list(range(N))  # a second iteration: its stream runs on into epoch 1
    with tdb.connect(warehouse, study="torch") as db:  # new samples: set_epoch fixes a larger population
        late = np.arange(N, N + 30)
        db.import_data((late[:, None] + np.zeros(6)).astype(np.float32).reshape(-1, 2, 3), late, chunk_bytes=512)
    assert sorted(_epoch_labels(ds, 1)) == list(range(N + 30))
    with tdb.connect(warehouse, study="torch") as db:  # deleted in place: the population's bound stays the same
        assert db.delete_data({"label": {"$lt": 10}}) == 10
    assert sorted(_epoch_labels(ds, 2)) == list(range(10, N + 30))
    assert sorted(_epoch_labels(ds, 2)) == list(range(10, N + 30))  # the same epoch again: the one carried is epoch 3
    assert made == [0, 0, 1, 2, 2]
    it = iter(ds)
    next(it)
    it.close()  # an epoch left part way: its stream cannot serve the next one
    assert ds._carried is None


@pytest.mark.timeout(120)
def test_persistent_workers_cover_each_sample_once_per_epoch_on_carried_streams(warehouse):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=4, window_bytes=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        epochs.append([int(v) for _, y in loader for v in y.tolist()])
        assert sorted(epochs[-1]) == list(range(N))
    assert epochs[0] != epochs[1] != epochs[2]
    del loader


def test_the_dataset_imports_its_stores_modules_for_the_workers_it_forks(tmp_path):
    """Built in the loader's parent, the dataset imports what opening its stores needs (forked workers inherit
    it: ~13-30 ms of CPU a worker for the embedded store, ~100-230 ms for a cloud SDK) and opens nothing."""
    import subprocess
    import sys

    where = tmp_path / "not-yet"
    code = ("import sys, os\nfrom tensordb_core.torch import TensorDBIterableDataset\n"
            "before = 'tensordb_core.embedded.sqlite_index' in sys.modules or 'boto3' in sys.modules\n"
            f"TensorDBIterableDataset({str(where)!r}, study='s', "
            "blobs='s3://bkt/p?endpoint_url=http://127.0.0.1:9&check_bucket=false')\n"
            "print(before, 'tensordb_core.embedded.sqlite_index' in sys.modules, 'boto3' in sys.modules, "
            f"os.path.exists({str(where)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "False"]
