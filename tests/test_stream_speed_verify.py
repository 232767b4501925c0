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


@pytest.mark.parametrize("codec_name", ["none", "lz4"])
def test_large_samples_are_checked_by_the_decoder_once_and_carried_to_later_epochs(tmp_path, monkeypatch,
                                                                                  codec_name):
    """Samples past unpack's size are checked by the decoder as it decodes each (their bytes are then in cache),
    not by the fetch thread first; a row checked so is not checked again after the epoch that carried it.

    Rows still being decoded when the first epoch's last window is read are checked once more in the second
    (at most the windows in flight), so the count is bounded: without the carry every epoch would check all.
    """
    from tensordb_core.format import codec
    from tensordb_core.stream.unpack import MAX_SAMPLE_BYTES

    calls = {"fetch": 0, "decode": 0}

    def counted(where, real):
        def crc(data):
            calls[where] += 1
            return real(data)
        return crc

    monkeypatch.setattr(fetch, "crc32", counted("fetch", fetch.crc32))
    monkeypatch.setattr(codec, "crc32", counted("decode", codec.crc32))
    n = 60
    X = np.random.default_rng(0).integers(0, 4, size=(n, 3, 150, 150), dtype=np.uint8)
    assert X[0].nbytes > MAX_SAMPLE_BYTES
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(n), codec=codec_name)
        stored = next(iter(db.index.find("data", {})))["_x"]["length"]
        calls.update(fetch=0, decode=0)  # the import's own crc32s
        with db.data_generator({}, batch_size=4, seed=1, epochs=4, window_bytes=6 * stored) as stream:
            got = [(x, v) for xb, y in stream for x, v in zip(xb, y.tolist())]
    assert sorted(v for _, v in got) == sorted(list(range(n)) * 4)
    assert all(np.array_equal(x, X[v]) for x, v in got)
    assert calls["fetch"] == 0  # nothing checked twice in one epoch: the fetch thread left them to the decoder
    assert n <= calls["decode"] < 2 * n  # every sample checked in the first epoch, few again, none after
