"""crc32 once per sample per process (issue 16): later epochs over one snapshot skip the pre-check; a bad one is caught."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.stream import fetch
from tensordb_core.stream.decode import SampleError

N = 200


def test_each_sample_is_crc_checked_once_across_epochs(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = fetch.crc32

    def counted(data):
        calls["n"] += 1
        return real(data)

    monkeypatch.setattr(fetch, "crc32", counted)
    X = np.random.default_rng(0).integers(0, 255, size=(N, 64), dtype=np.uint8)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=4096)
        with db.data_generator({}, batch_size=16, seed=1, epochs=3) as stream:
            labels = [v for _, y in stream for v in y.tolist()]
        assert sorted(labels) == sorted(list(range(N)) * 3)
        assert calls["n"] == N  # the first epoch checked each sample; epochs 2 and 3 trusted them


def test_a_damaged_sample_is_still_caught_on_first_read(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, size=(N, 64), dtype=np.uint8)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=1 << 20)
        chunk = next(p for p in (tmp_path / "wh").rglob("*") if p.is_file() and len(p.name) == 64)
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x55
        chunk.chmod(0o644)
        chunk.write_bytes(bytes(data))
        with pytest.raises(SampleError), db.data_generator({}, batch_size=16, seed=1, epochs=2) as stream:
            for _ in stream:
                pass
