"""Rows for remote blob stores: the stream vs. one GET per sample and vs. one GET per chunk, on one server.

Used by ``stream.py`` for the servers it starts (``servers.py``) and for a
store given with ``--blobs``.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lz4.frame
import numpy as np
from benchkit import (
    CACHED_EPOCHS,
    Spec,
    best_of,
    ceiling,
    chunk_layout,
    import_dataset,
    row,
    stream_epochs,
    stream_run,
)

import tensordb_core as tdb


def remote_specs(datasets: list[Spec], divisor: int = 5) -> list[Spec]:
    """The remote rows' subsets: a fifth of each dataset (4,000 and 400 samples in the full run)."""
    return [Spec(s.name, max(1, s.n // divisor), s.shape, s.batch, s.seed) for s in datasets]


def remote_rows(blobs_uri: str | None, datasets: list[Spec], repeat: int = 2,
                ceilings: dict[str, float] | None = None, *, index_uri: str | None = None,
                blob_options: dict[str, Any] | None = None, index_options: dict[str, Any] | None = None,
                label: str | None = None, get_samples: int = 1000, workdir: Path | None = None) -> list[dict[str, Any]]:
    """Rows for one remote blob store: the stream vs. one GET per sample, both on the same server.

    The index is ``index_uri`` (e.g. MongoDB, whose GridFS then holds the blobs
    when ``blobs_uri`` is None), else an embedded SQLite index in ``workdir``,
    else (no ``workdir``) the in-memory index.  The samples are imported first
    (timed, reported to stderr).  For the GET loop, ``get_samples`` samples of
    each dataset (shuffled) are also stored as one object each (not timed)
    and then fetched one request at a time with the store's ``get`` and decoded.
    ``ceilings`` (samples/s per dataset name) adds the ratio to the local ceiling.
    """
    rows = []
    if index_uri is None:
        index_uri = str(workdir / f"wh-{uuid.uuid4().hex[:8]}") if workdir else f"memory://bench-{uuid.uuid4().hex}"
    label = label or tdb.parse_uri(blobs_uri or index_uri).scheme
    with tdb.connect(index_uri, study="bench", blobs=blobs_uri, blob_options=blob_options,
                     index_options=index_options) as db:
        for spec in datasets:
            began = time.perf_counter()
            import_dataset(db, spec, None)
            print(f"[{spec.name} {label}] imported {spec.n} samples in {time.perf_counter() - began:.1f}s",
                  file=sys.stderr)
            c = (ceilings or {}).get(spec.name)
            layout = chunk_layout(db, spec, local=False)
            took, n, nb = best_of(repeat, functools.partial(ceiling, layout, spec, True, db.blobs.get))
            top = row(spec, f"{label}: GET each chunk + crc32 + decode", took, n, nb, c, requests=len(layout))
            keys = store_one_object_per_sample(db, spec, get_samples)
            took, n, nb = best_of(1, functools.partial(one_get_per_sample, db.blobs, keys, spec))
            get_row = row(spec, f"{label}: one GET per sample, sequential", took, n, nb, c)
            get_sps = get_row["samples_per_s"]
            stats: dict[str, Any] = {}
            took, n, nb = best_of(repeat, functools.partial(stream_run, db, spec, stats, shuffle=True, seed=0))
            first = row(spec, f"{label}: stream 1st epoch (shuffled)", took, n, nb, c,
                        vs_sequential_get=round(n / took / get_sps, 1), requests=stats["requests"],
                        index_s=round(stats["index_s"], 3), io_s=round(stats["io_s"], 3),
                        wait_fetch_s=round(stats["wait_fetch_s"], 3))
            took, stats = stream_epochs(db, spec, repeat, shuffle=True, seed=0)
            later = row(spec, f"{label}: stream next epochs (shuffled)", took, spec.n, spec.n * spec.sample_bytes, c,
                        vs_sequential_get=round(spec.n / took / get_sps, 1), io_s=round(stats["io_s"], 3),
                        wait_fetch_s=round(stats["wait_fetch_s"], 3))
            cache_dir = Path(tempfile.mkdtemp(prefix="tensordb-bench-cache-", dir=workdir))
            took, stats = stream_epochs(db, spec, max(repeat, CACHED_EPOCHS), shuffle=True, seed=0,
                                        cache_dir=str(cache_dir))
            cached = row(spec, f"{label}: stream next epochs, disk cache (shuffled)", took, spec.n,
                         spec.n * spec.sample_bytes, c, vs_sequential_get=round(spec.n / took / get_sps, 1),
                         requests=stats["requests"], io_s=round(stats["io_s"], 3))
            shutil.rmtree(cache_dir, ignore_errors=True)
            top["vs_sequential_get"] = round(top["samples_per_s"] / get_sps, 1)
            for r in (first, later, cached):
                r["vs_remote_ceiling"] = round(r["samples_per_s"] / top["samples_per_s"], 2)
            rows += [get_row, top, first, later, cached]
    return rows


def store_one_object_per_sample(db: tdb.TensorDB, spec: Spec, limit: int) -> list[str]:
    """Store ``limit`` samples of ``spec`` (a shuffled pick) as one object each; their keys, in fetch order.

    Each object holds exactly the sample's stored (lz4) bytes, so the GET loop
    decodes the same bytes the stream does.  Uploaded on 8 threads, not timed.
    """
    docs = [d["_x"] for d in db.index.find("data", db.scope.query({"ds": spec.name}), sort=[("_seq", 1)])]
    pick = np.random.default_rng(0).permutation(len(docs))[:limit]
    chunks: dict[str, bytes] = {}
    items = []
    for i in pick:
        x = docs[i]
        if x["key"] not in chunks:
            chunks[x["key"]] = db.blobs.get(x["key"])
        seg = chunks[x["key"]][x["offset"] : x["offset"] + x["length"]]
        items.append((f"bench-per-sample/{spec.name}/{i}.{x['codec']}", seg))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: db.blobs.put(*kv), items))
    return [k for k, _ in items]


def one_get_per_sample(blobs: Any, keys: list[str], spec: Spec) -> tuple[int, int]:
    """The naive remote loop: one GET per sample object, in sequence, then decode."""
    for key in keys:
        data = blobs.get(key)
        raw = lz4.frame.decompress(data) if key.endswith(".lz4") else data
        np.frombuffer(raw, np.uint8).reshape(spec.shape)
    return len(keys), len(keys) * spec.sample_bytes


def backend_rows(names: list[str], datasets: list[Spec], repeat: int, ceilings: dict[str, float],
                 get_samples: int, work: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Start each named backend's server, measure its rows, stop it by PID; (rows, per-backend status)."""
    import servers  # benchmarks/servers.py, next to this script

    rows: list[dict[str, Any]] = []
    status: list[dict[str, str]] = []
    for name in names:
        began = time.perf_counter()
        try:
            backend = servers.start(name)
        except Exception as exc:  # noqa: BLE001 - a missing server is reported, the others still run
            status.append({"backend": name, "status": f"not available: {exc}"})
            print(f"[{name}] not available: {exc}", file=sys.stderr)
            continue
        try:
            args = backend.connect_args(work)
            rows += remote_rows(args["blobs"] if backend.index_uri is None else None, datasets, repeat, ceilings,
                                index_uri=backend.index_uri, blob_options=args["blob_options"],
                                index_options=args["index_options"], label=name, get_samples=get_samples,
                                workdir=work)
            if name == "s3":  # the peers read S3 only: LitData and MosaicML from the same server
                from remote_peers import peer_rows

                rows += peer_rows(name, args["blobs"], args["blob_options"], datasets, repeat, work)
        finally:
            backend.stop()
        status.append({"backend": name, "status": f"measured on {backend.description}",
                       "seconds": f"{time.perf_counter() - began:.1f}"})
    return rows, status
