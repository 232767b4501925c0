"""The warehouse API, the stream and the `tensordb demo` main job, run against any index/blob pair.

Each backend's test module calls these with URIs of its real server, so every
backend passes the same end-to-end checks, not only the store conformance suites.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

import tensordb_core as tdb


def check_warehouse_and_stream(tmp_path, blobs: str | None, *, index: str | None = None,
                               blob_options: dict[str, Any] | None = None) -> None:
    """Import, query, stream, save/load parameters and architectures; the stream's order equals the embedded one."""
    rng = np.random.default_rng(7)
    X = rng.integers(0, 255, size=(300, 3, 16, 16), dtype=np.uint8)
    y = rng.integers(0, 10, size=300)
    reference = tdb.connect(tmp_path / "reference", study="s")
    remote = tdb.connect(index or tmp_path / "idx", study="s", blobs=blobs, blob_options=blob_options)
    try:
        for db in (reference, remote):
            db.import_data(X[:200], y[:200], tags={"split": "train"}, chunk_bytes=64 * 1024)
            db.import_data(X[200:], y[200:], tags={"split": "test"}, chunk_bytes=64 * 1024)
        cur = remote.find_data({"split": "train", "label": {"$in": [3, 5]}})
        want = [i for i in range(200) if y[i] in (3, 5)]
        got_X, got_y = cur.arrays()
        assert len(cur) == len(want)
        np.testing.assert_array_equal(got_X, X[want])
        np.testing.assert_array_equal(got_y, y[want])

        def stream(db: tdb.TensorDB) -> list[np.ndarray]:
            with db.data_generator({"split": "train"}, batch_size=16, shuffle=True, seed=3, epochs=2) as s:
                return [yb for _, yb in s]

        remote_batches, reference_batches = stream(remote), stream(reference)
        assert len(remote_batches) == len(reference_batches) == 26
        for a, b in zip(remote_batches, reference_batches):
            np.testing.assert_array_equal(a, b)  # same order for a seed, whatever the backend

        as_of = remote.data_snapshot(settle_s=0.05)  # a store's own grace may be 30 s (MongoDB)
        remote.import_data(X[:20], y[:20], tags={"split": "train"})  # arrives between two ranks' starts
        ranks = []
        for rank in range(2):
            with remote.data_generator({"split": "train"}, batch_size=16, seed=3, shard=(rank, 2), as_of=as_of) as s:
                ranks.append(np.concatenate([yb for _, yb in s]))
        assert sorted(np.concatenate(ranks).tolist()) == sorted(y[:200].tolist())  # the snapshot, once

        def kept(db: tdb.TensorDB, cache: str) -> tuple[list[np.ndarray], float]:
            with db.data_generator({"split": "test"}, batch_size=16, seed=5, cache_dir=cache) as s:
                return [yb for _, yb in s], s.stats.index_s

        cold, _ = kept(reference, str(tmp_path / "reference-cache"))
        (first, read), (again, unread) = (kept(remote, str(tmp_path / "cache")) for _ in range(2))
        assert read > 0 and unread == 0.0  # the second stream started from the references the first one kept
        assert len(cold) == len(first) == len(again) == 7
        for a, b, c in zip(cold, first, again):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)

        pid = remote.save_parameters({"w": X[0].astype(np.float32)}, metrics={"acc": 0.5})
        params, doc = remote.best_parameters("acc")
        assert doc["_id"] == pid
        np.testing.assert_array_equal(params["w"], X[0].astype(np.float32))
        remote.save_model_architecture('{"builder": "numpy-mlp"}', tags={"name": "mlp"})
        assert remote.find_model_architecture({"name": "mlp"})[0] == '{"builder": "numpy-mlp"}'
    finally:
        remote.close()
        reference.close()


def sample_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Records like COCO's: an image of varying size, a mask, ragged tokens, bytes, JSON fields (needs [media])."""
    from tensordb_core.format.media import encode_image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = 16 + 4 * (i % 3), 24
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([xx * 10 % 256, yy * 12 % 256, (xx + yy + i) % 256], -1).astype(np.uint8)
        out.append({
            "image": tdb.Encoded(encode_image(image, "jpeg", 90), "jpeg"),
            "mask": (rng.random((h, w)) > 0.5).astype(np.uint8),
            "tokens": rng.integers(0, 1000, size=1 + i % 5).astype(np.int32),
            "raw": bytes([i % 256]) * (i % 4),
            "label": i % 4,
            "caption": f"caption {i}",
            "box": [float(i), 1.5],
        })
    return out


def check_records(tmp_path, blobs: str | None, *, index: str | None = None,
                  blob_options: dict[str, Any] | None = None) -> None:
    """Records (JPEG, PNG, ragged arrays, bytes, JSON fields): import, query, read, project, stream like embedded."""
    records = sample_records(60)
    reference = tdb.connect(tmp_path / "records-reference", study="r")
    remote = tdb.connect(index or tmp_path / "records-idx", study="r", blobs=blobs, blob_options=blob_options)
    try:
        for db in (reference, remote):
            ids = db.import_records(iter(records), tags={"split": "train"}, encode={"mask": "png"},
                                    chunk_bytes=8 * 1024)
            assert len(ids) == 60
        cur = remote.find_data({"label": 2, "caption": {"$in": ["caption 2", "caption 6", "caption 7"]}})
        got = cur.records()
        assert [r["caption"] for r in got] == ["caption 2", "caption 6"]
        for r in got:
            want = records[int(r["caption"].split()[1])]
            np.testing.assert_array_equal(r["mask"], want["mask"])
            np.testing.assert_array_equal(r["tokens"], want["tokens"])
            assert r["raw"] == want["raw"] and r["box"] == want["box"] and r["split"] == "train"
            assert r["image"].shape == (*want["mask"].shape, 3) and r["image"].dtype == np.uint8
        raw = remote.find_data({"caption": "caption 5"}).records(fields=["image"], decode=False)
        assert raw == [{"image": records[5]["image"].data}]  # stored byte for byte

        def stream(db: tdb.TensorDB) -> list[dict[str, Any]]:
            with db.data_generator({"split": "train"}, batch_size=8, seed=5, epochs=2, pad={"tokens": 0}) as s:
                return list(s)

        mine, theirs = stream(remote), stream(reference)
        assert len(mine) == len(theirs) == 16
        for a, b in zip(mine, theirs):
            assert a["caption"] == b["caption"]  # same order for a seed, whatever the backend
            np.testing.assert_array_equal(a["tokens"], b["tokens"])
            np.testing.assert_array_equal(a["tokens_length"], b["tokens_length"])
        with remote.data_generator({}, batch_size=60, shuffle=False, fields=["tokens", "label"]) as s:
            (batch,) = list(s)
        assert sorted(batch) == ["label", "tokens"]
        np.testing.assert_array_equal(batch["label"], [r["label"] for r in records])
    finally:
        remote.close()
        reference.close()


def run_cli_demo(uri: str, blobs: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run `tensordb demo` the way a user would (two worker processes); return its output."""
    argv = [sys.executable, "-m", "tensordb_core.cli", "demo", uri, "--epochs", "3", "--workers", "2"]
    if blobs:
        argv += ["--blobs", blobs]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
                         check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "best model" in out.stdout, out.stdout[-3000:]
    accuracy = float(out.stdout.split("test_acc ")[-1].split(";")[0])
    assert accuracy >= 0.9, out.stdout[-2000:]
    return out.stdout
