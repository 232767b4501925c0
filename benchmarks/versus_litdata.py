"""TensorDB against LitData on the same samples: epochs, time to first batch, torch DataLoader workers (issue 16).

LitData (``pip install litdata --no-deps``: its dependencies would replace the
CPU torch; it imports with what the venv holds) writes the samples with its
``BinaryWriter`` into 64 MiB chunks, uncompressed (TensorDB stores lz4), and
reads them with ``StreamingDataset(input_dir=...)`` from the local directory.

Rows:

* ``LitData StreamingDataset (in order / shuffled)``: one epoch of a fresh
  dataset, collated into the stream's batch size with ``np.stack`` (LitData
  reads local data the same way every epoch, so this is also its later epochs).
* ``time to first batch: ...``: from creating the reader to holding the first
  batch (``ttfb_ms``): the TensorDB stream (index read included), LitData, and
  the ceiling (read the first chunk, decode one batch).
* ``torch DataLoader, N workers: ...``: TensorDB's ``TensorDBIterableDataset``
  with persistent workers and ``set_epoch``, against LitData's
  ``StreamingDataLoader``; the mean of the epochs after the first.  ``... single
  process`` is the same with ``num_workers=0``.  Batches are torch tensors.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import lz4.frame
import numpy as np
from benchkit import Spec, best_of, images, row, row_without_cpu

import tensordb_core as tdb

CHUNK_BYTES = "64MB"


def litdata_installed() -> bool:
    return importlib.util.find_spec("litdata") is not None


def _write_litdata(spec: Spec, out: Path) -> None:
    from litdata.streaming.writer import BinaryWriter

    writer = BinaryWriter(str(out), chunk_bytes=CHUNK_BYTES)
    i = 0
    for X, labels in images(spec):
        for x, y in zip(X, labels):
            writer.add_item(i, {"x": x, "y": int(y)})
            i += 1
    writer.done()
    writer.merge()


def _collate(items: Any, spec: Spec) -> tuple[int, int, float | None]:
    """Batch ``items`` ({"x", "y"} dicts) with ``np.stack``; (samples, bytes, seconds to the first batch)."""
    began = time.perf_counter()
    first: float | None = None
    n = 0
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for s in items:
        xs.append(s["x"])
        ys.append(s["y"])
        if len(xs) == spec.batch:
            np.stack(xs), np.asarray(ys)
            n += len(xs)
            xs, ys = [], []
            if first is None:
                first = time.perf_counter() - began
    if xs:
        np.stack(xs), np.asarray(ys)
        n += len(xs)
    return n, n * spec.sample_bytes, first


def _loader_epochs(loader: Any, epochs: int, set_epoch: Any = None) -> tuple[float, int]:
    """Mean seconds of epochs 2.. of ``loader`` (epoch 1 starts the workers), and samples per epoch.

    The mean, not the fastest: TensorDB's persistent workers carry their
    stream into the next epoch, read ahead across the boundary (see
    ``benchkit.stream_epochs``); LitData's are measured the same way.
    """
    times, n = [], 0
    for epoch in range(1 + epochs):
        if set_epoch is not None:
            set_epoch(epoch)
        began = time.perf_counter()
        n = sum(len(b[0] if isinstance(b, (tuple, list)) else b["x"]) for b in loader)
        if epoch:
            times.append(time.perf_counter() - began)
    return sum(times) / len(times), n


def litdata_rows(spec: Spec, work: Path, repeat: int, top: float, warehouse: str,
                 layout: list[tuple[str, list[tuple[int, int, str, int]]]], workers: int = 2) -> list[dict[str, Any]]:
    """Every LitData row for ``spec``, with the matching TensorDB time-to-first-batch and DataLoader rows."""
    from litdata import StreamingDataLoader, StreamingDataset

    from tensordb_core.torch import TensorDBDataLoader, TensorDBIterableDataset

    out = work / "litdata" / spec.name
    _write_litdata(spec, out)
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    for shuffle in (False, True):
        def run(shuffle: bool = shuffle) -> tuple[int, int]:
            n, nb, ttfb = _collate(StreamingDataset(str(out), shuffle=shuffle, seed=0), spec)
            first[f"litdata-{shuffle}"] = min(first.get(f"litdata-{shuffle}", 1e9), ttfb or 1e9)
            return n, nb

        run()  # warm-up: page cache, imports
        took, n, nb = best_of(repeat, run)
        rows.append(row(spec, f"LitData StreamingDataset ({'shuffled' if shuffle else 'in order'})", took, n, nb, top))

    def tensordb_first() -> float:
        began = time.perf_counter()
        with tdb.connect(warehouse, study="bench") as db, db.data_generator(
                {"ds": spec.name}, batch_size=spec.batch, shuffle=True, seed=0) as stream:
            next(stream)
            return time.perf_counter() - began

    def ceiling_first() -> float:
        began = time.perf_counter()
        path, segs = layout[0]
        with open(path, "rb") as f:
            view = memoryview(f.read())
        np.stack([np.frombuffer(lz4.frame.decompress(view[o:o + ln]), np.uint8).reshape(spec.shape)
                  for o, ln, _c, _k in segs[:spec.batch]])
        return time.perf_counter() - began

    for name, fn in (("TensorDB stream (shuffled)", tensordb_first), ("ceiling (first chunk)", ceiling_first)):
        fn()
        first[name] = min(fn() for _ in range(repeat))
    for name, seconds in (("TensorDB stream (shuffled)", first["TensorDB stream (shuffled)"]),
                          ("LitData StreamingDataset (shuffled)", first["litdata-True"]),
                          ("ceiling (first chunk)", first["ceiling (first chunk)"])):
        rows.append(row_without_cpu(spec, f"time to first batch: {name}", seconds, spec.batch, spec.batch * spec.sample_bytes,
                        None, ttfb_ms=round(seconds * 1e3, 1)))

    for n_workers in (workers, 0):
        what = f"torch DataLoader, {n_workers} workers" if n_workers else "torch DataLoader, single process"
        ds = TensorDBIterableDataset(warehouse, {"ds": spec.name}, study="bench", batch_size=spec.batch, seed=0)
        # TensorDB's own DataLoader subclass, as LitData's rows use its StreamingDataLoader
        loader = TensorDBDataLoader(ds, num_workers=n_workers, persistent_workers=bool(n_workers))
        took, n = _loader_epochs(loader, repeat, ds.set_epoch)
        rows.append(row_without_cpu(spec, f"{what}: TensorDB (persistent workers)" if n_workers else f"{what}: TensorDB",
                        took, n, n * spec.sample_bytes, top))
        del loader
        lds = StreamingDataset(str(out), shuffle=True, seed=0)
        lloader = StreamingDataLoader(lds, batch_size=spec.batch, num_workers=n_workers)
        took, n = _loader_epochs(lloader, repeat)
        rows.append(row_without_cpu(spec, f"{what}: LitData StreamingDataLoader", took, n, n * spec.sample_bytes, top))
        del lloader
    print(f"[{spec.name}] LitData rows measured", file=sys.stderr)
    return rows


def versus_litdata(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset, the issue's ratios against LitData (and the ceiling) from one run's rows."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        by = {r["row"]: r for r in rows if r["dataset"] == name}

        def ratio(a: str, b: str, invert: bool = False, by: dict[str, Any] = by) -> float | None:
            x = by[a]["samples_per_s"] if a in by else None
            y = by[b]["samples_per_s"] if b in by else None
            if x is None or y is None:
                return None
            return round(y / x if invert else x / y, 2)

        w = [k for k in by if k.startswith("torch DataLoader, ") and "workers: TensorDB" in k]
        out.append({
            "dataset": name,
            "1st epoch shuffled vs LitData": ratio("stream 1st epoch (shuffled)", "LitData StreamingDataset (shuffled)"),
            "1st epoch shuffled vs ceiling": by.get("stream 1st epoch (shuffled)", {}).get("vs_ceiling"),
            "1st epoch from kept references vs LitData": ratio("stream 1st epoch (shuffled), references kept in "
                                                               "cache_dir", "LitData StreamingDataset (shuffled)"),
            "1st epoch from kept references vs ceiling": by.get(
                "stream 1st epoch (shuffled), references kept in cache_dir", {}).get("vs_ceiling"),
            "in order (1st epoch) vs LitData": ratio("stream 1st epoch (in order)", "LitData StreamingDataset (in order)"),
            "time to first batch, TensorDB / LitData": ratio(
                "time to first batch: LitData StreamingDataset (shuffled)", "time to first batch: TensorDB stream (shuffled)"),
            "DataLoader workers vs LitData": ratio(w[0], w[0].replace("TensorDB (persistent workers)",
                                                                     "LitData StreamingDataLoader")) if w else None,
            "DataLoader workers vs single process": ratio(w[0], "torch DataLoader, single process: TensorDB") if w else None,
        })
        raw = ratio("stream 1st epoch (in order, stored raw)", "LitData StreamingDataset (in order)")
        if raw is not None:  # the large dataset only: the same samples stored raw, as LitData stores them
            out[-1]["in order stored raw (1st epoch) vs LitData"] = raw
    return out
