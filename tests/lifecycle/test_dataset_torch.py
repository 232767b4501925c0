"""The torch adapter reads a dataset version: its pinned samples and labels, split over loader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import tensordb_core as tdb
from tensordb_core.torch import TensorDBIterableDataset


def test_loader_workers_read_the_pinned_version(tmp_path: Path) -> None:
    uri = str(tmp_path / "warehouse")
    with tdb.connect(uri, study="s") as db:
        db.import_data(np.arange(24, dtype=np.float32).reshape(12, 2), np.arange(12), chunk_bytes=32)
        db.save_dataset("v1", {"label": {"$lt": 8}})
        db.update_data({}, {"$set": {"label": -1}})
        db.import_data(np.zeros((4, 2), np.float32), np.full(4, 50))
    data = TensorDBIterableDataset(uri, study="s", batch_size=3, dataset="v1")
    data.set_epoch(0)
    labels = torch.cat([y for _, y in DataLoader(data, batch_size=None, num_workers=2)])
    assert sorted(labels.tolist()) == list(range(8))
