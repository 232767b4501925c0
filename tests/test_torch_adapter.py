"""The PyTorch adapter: DataLoader workers (and DDP ranks) each stream a disjoint shard.

Needs the CPU build of torch (CI installs ``torch==2.13.0``; see ``.ci/run``).
"""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb

torch = pytest.importorskip("torch")  # installed by .ci/run; optional extra [torch] for users

from tensordb_core.torch import TensorDBIterableDataset, loader_shard

N = 120


@pytest.fixture
def warehouse(tmp_path):
    path = str(tmp_path / "wh")
    with tdb.connect(path, study="torch") as db:
        X = (np.arange(N)[:, None] + np.zeros(6)).astype(np.float32).reshape(N, 2, 3)
        db.import_data(X, np.arange(N), chunk_bytes=512)
    return path


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
