"""Stream throughput vs. its ceiling: how close does ``data_generator`` get to "read + decode, nothing else"?

Run from the repository root::

    .venv/bin/python benchmarks/stream.py                  # everything, ~4-5 minutes on 2 cores (~7 with WebDataset + MosaicML)
    .venv/bin/python benchmarks/stream.py --remote none    # local rows only, ~1 minute (~4 with WebDataset + MosaicML)
    .venv/bin/python benchmarks/stream.py --quick --remote s3,gcs
    .venv/bin/python benchmarks/stream.py --markdown benchmarks/results/stream.json   # the saved table

Rows, all on the same synthetic images (smooth gradients + sparse noise, so
lz4 compresses them to about half) with int labels: 20,000 x (3,64,64) and
2,000 x (3,224,224) uint8 locally, a fifth of each (4,000 and 400) per remote
backend (``--quick``: a fifth of all of that).

1. ``ceiling``: read each stored chunk file (page cache) and lz4-decode every
   sample with ``np.frombuffer`` in one tight loop: no index, no checks, no
   batching, one thread.  ``ceiling+crc`` adds the crc32 check the stream does.
2. ``npy``: the naive layout: one ``.npy`` file per sample, ``np.load`` each.
3. ``stream``: ``db.data_generator`` on the embedded directory store (SQLite
   index + files), shuffled and not, consuming whole batches.
4. ``--remote s3,gcs,azure,gridfs`` (default: all; a backend whose server
   cannot start is reported "not available: <why>"): the benchmark starts the
   real server on 127.0.0.1 (``benchmarks/servers.py``, through
   ``tests/serverkit.py``), imports into an embedded SQLite index + that blob
   store (GridFS: a MongoDB index + GridFS) and measures, on that server: one
   GET per sample in sequence (``--get-samples`` of them, each stored as its
   own object), one GET per chunk + decode (the remote ceiling), and the stream.
   Every server is stopped by PID at the end, on errors, Ctrl-C and SIGTERM.
   ``--blobs URI`` adds the same rows for a store you run yourself;
   :func:`remote_rows` is the hook.
5. WebDataset / MosaicML streaming, when installed (``pip install webdataset
   mosaicml-streaming``): the same samples written as 64 MiB WebDataset tar
   shards (``.npy`` + ``.cls`` per sample, read back with ``np.load``) and as
   MosaicML MDS shards (fixed-shape ``ndarray:uint8`` + ``int``, read with
   ``StreamingDataset(local=...)`` in this process), both uncompressed,
   collated into batches of the stream's size; one warm-up pass, then the
   best of ``--repeat`` passes, in order and shuffled.  A closing line per
   dataset gives TensorDB's shuffled next-epoch stream over the faster
   shuffled one of them (the target is 1.5x).

Each measurement is the best of ``--repeat`` runs (this is a shared 2-core
VM: the best run is the least disturbed one).  Ratios are against the
ceiling of the same dataset, measured in the same run.  Results print as a
table and go to ``benchmarks/results/stream.json``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4
import lz4.frame
import numpy as np

import tensordb_core as tdb
from tensordb_core.checksums import IMPLEMENTATION as CRC32_IMPLEMENTATION
from tensordb_core.checksums import crc32

RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"


@dataclass(frozen=True)
class Spec:
    """One synthetic dataset: ``n`` uint8 images of ``shape``, streamed in batches of ``batch``."""

    name: str
    n: int
    shape: tuple[int, int, int]
    batch: int
    seed: int

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape))


def specs(quick: bool) -> list[Spec]:
    scale = 5 if quick else 1
    return [Spec("3x64x64", 20_000 // scale, (3, 64, 64), 64, 1), Spec("3x224x224", 2_000 // scale, (3, 224, 224), 32, 2)]


def images(spec: Spec, block: int = 500) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Deterministic image-like blocks ``(X, labels)``: a random colour gradient, quantised, plus 10% noise pixels."""
    rng = np.random.default_rng(spec.seed)
    c, h, w = spec.shape
    yy = np.arange(h, dtype=np.float32)[None, None, :, None]
    xx = np.arange(w, dtype=np.float32)[None, None, None, :]
    for start in range(0, spec.n, block):
        m = min(block, spec.n - start)
        slope = rng.uniform(-1, 1, size=(m, c, 2, 1, 1)).astype(np.float32) * (128 / h)
        base = rng.uniform(0, 255, size=(m, c, 1, 1)).astype(np.float32)
        img = ((base + slope[:, :, 0] * yy + slope[:, :, 1] * xx) / 4).astype(np.int16) * 4
        noise = (rng.random((m, c, h, w)) < 0.1) * rng.integers(-8, 8, size=(m, c, h, w), dtype=np.int16)
        yield np.clip(img + noise, 0, 255).astype(np.uint8), np.arange(start, start + m) % 1000


# -- the rows ---------------------------------------------------------------------------------------------


#: CPU seconds (all threads of this process) of the last run :func:`best_of` kept.
LAST_CPU: list[float] = [0.0]


def best_of(repeat: int, fn: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    """Run ``fn`` (returns samples, decoded bytes) ``repeat`` times; the fastest run's (seconds, samples, bytes)."""
    best = None
    for _ in range(repeat):
        cpu = time.process_time()
        began = time.perf_counter()
        samples, nbytes = fn()
        took = time.perf_counter() - began
        if best is None or took < best[0]:
            best = (took, samples, nbytes)
            LAST_CPU[0] = time.process_time() - cpu
    assert best is not None
    return best


def chunk_layout(db: tdb.TensorDB, spec: Spec, local: bool = True) -> list[tuple[str, list[tuple[int, int, str, int]]]]:
    """Per chunk (in ``_seq`` order): its file path (``local``) or blob key, and its samples' (offset, length, codec, crc32)."""
    chunks: dict[str, list[tuple[int, int, str, int]]] = {}
    for doc in db.index.find("data", db.scope.query({"ds": spec.name}), sort=[("_seq", 1)]):
        x = doc["_x"]
        chunks.setdefault(x["key"], []).append((x["offset"], x["length"], x["codec"], x["crc32"]))
    return [(db.blobs.path_of(key) if local else key, segs) for key, segs in chunks.items()]


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def ceiling(layout: list[tuple[str, list[tuple[int, int, str, int]]]], spec: Spec, crc: bool,
            read: Callable[[str], bytes] = read_file) -> tuple[int, int]:
    """Read every chunk whole and decode every sample: the least work that produces the arrays.

    ``read`` is ``open().read()`` for the local ceiling, a store's ``get`` (one
    GET per chunk, in sequence) for a remote one.
    """
    n = 0
    decompress = lz4.frame.decompress
    for where, segs in layout:
        view = memoryview(read(where))
        for off, length, codec, checksum in segs:
            seg = view[off : off + length]
            if crc and crc32(seg) != checksum:  # the stream's own CRC-32 (zlib-ng when installed)
                raise RuntimeError("checksum mismatch")
            raw = decompress(seg) if codec == "lz4" else seg
            np.frombuffer(raw, np.uint8).reshape(spec.shape)
            n += 1
    return n, n * spec.sample_bytes


def naive_npy(paths: list[str], spec: Spec) -> tuple[int, int]:
    for p in paths:
        np.load(p)
    return len(paths), len(paths) * spec.sample_bytes


def stream_run(db: tdb.TensorDB, spec: Spec, stats_out: dict[str, Any], **kwargs: Any) -> tuple[int, int]:
    n = 0
    with db.data_generator({"ds": spec.name}, batch_size=spec.batch, **kwargs) as stream:
        for X, _y in stream:
            n += len(X)
        stats_out.update(stream.stats.as_dict())
    return n, n * spec.sample_bytes


def stream_epochs(db: tdb.TensorDB, spec: Spec, epochs: int, **kwargs: Any) -> tuple[float, dict[str, Any]]:
    """Seconds of the fastest epoch after the first (index read, lineage count and warm-up paid once)."""
    times: list[tuple[float, float]] = []
    n = 0
    with db.data_generator({"ds": spec.name}, batch_size=spec.batch, epochs=1 + epochs, **kwargs) as stream:
        mark = None
        for X, _y in stream:
            n += len(X)
            if n % spec.n == 0:  # batches never span epochs: an epoch ends exactly here
                now = (time.perf_counter(), time.process_time())
                if mark is not None:
                    times.append((now[0] - mark[0], now[1] - mark[1]))
                mark = now
        stats = stream.stats.as_dict()
    assert n == (1 + epochs) * spec.n, n
    took, LAST_CPU[0] = min(times)
    return took, stats


def row(dataset: Spec, name: str, took: float, samples: int, nbytes: int, ceiling_sps: float | None,
        **extra: Any) -> dict[str, Any]:
    sps = samples / took
    return {"dataset": dataset.name, "row": name, "samples": samples, "seconds": round(took, 4),
            "samples_per_s": round(sps, 1), "MB_per_s": round(nbytes / took / 1e6, 1),
            "vs_ceiling": round(sps / ceiling_sps, 3) if ceiling_sps else None,
            "cpu_us_per_sample": round(LAST_CPU[0] / samples * 1e6, 2), **extra}


def import_dataset(db: tdb.TensorDB, spec: Spec, npy_dir: Path | None) -> list[str]:
    """Import ``spec`` into ``db`` (tag ``ds``); also write one ``.npy`` per sample when ``npy_dir`` is given."""
    paths: list[str] = []
    for X, labels in images(spec):
        db.import_data(X, labels, {"ds": spec.name})
        if npy_dir is not None:
            for x, i in zip(X, range(len(paths), len(paths) + len(X))):
                path = str(npy_dir / f"{i}.npy")
                np.save(path, x)
                paths.append(path)
    return paths


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
            top["vs_sequential_get"] = round(top["samples_per_s"] / get_sps, 1)
            for r in (first, later):
                r["vs_remote_ceiling"] = round(r["samples_per_s"] / top["samples_per_s"], 2)
            rows += [get_row, top, first, later]
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
        finally:
            backend.stop()
        status.append({"backend": name, "status": f"measured on {backend.description}",
                       "seconds": f"{time.perf_counter() - began:.1f}"})
    return rows, status


#: Shard size for the WebDataset tars and MDS shards (MDSWriter's default, a common WebDataset choice).
SHARD_BYTES = 64 << 20


@functools.cache
def import_mosaic() -> tuple[Any, Any]:
    """``(MDSWriter, StreamingDataset)`` from MosaicML streaming.

    ``import streaming`` also imports its example vision datasets, hence
    torchvision; where torchvision cannot load (a CPU-only torch with no
    matching torchvision wheel), the package's ``__init__`` is bypassed and
    ``streaming.base``, which holds the writer and the dataset, is imported alone.
    """
    try:
        from streaming import MDSWriter, StreamingDataset
    except (ImportError, RuntimeError):
        import types

        found = importlib.util.find_spec("streaming")
        assert found is not None and found.submodule_search_locations is not None
        for name in [m for m in sys.modules if m == "streaming" or m.startswith("streaming.")]:
            del sys.modules[name]
        shell = types.ModuleType("streaming")
        shell.__path__ = list(found.submodule_search_locations)
        shell.__spec__ = found
        sys.modules["streaming"] = shell
        from streaming.base import MDSWriter, StreamingDataset
    return MDSWriter, StreamingDataset


def batches(samples: Iterator[tuple[np.ndarray, int]], spec: Spec) -> tuple[int, int]:
    """Collate ``samples`` into ``spec.batch``-sized ``(X, y)`` arrays, as the stream hands them out; (samples, bytes)."""
    n = 0
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for x, y in samples:
        xs.append(x)
        ys.append(y)
        if len(xs) == spec.batch:
            np.stack(xs), np.asarray(ys)
            n += len(xs)
            xs, ys = [], []
    if xs:
        np.stack(xs), np.asarray(ys)
        n += len(xs)
    return n, n * spec.sample_bytes


def webdataset_rows(spec: Spec, work: Path, repeat: int, top: float) -> list[dict[str, Any]]:
    """WebDataset: tar shards of ``.npy`` + ``.cls`` per sample, read back and ``np.load``-ed, in order and shuffled."""
    import io

    import webdataset as wds

    out = work / "wds" / spec.name
    out.mkdir(parents=True)
    with wds.ShardWriter(str(out / "shard-%05d.tar"), maxsize=SHARD_BYTES, verbose=0) as sink:
        i = 0
        for X, labels in images(spec):
            for x, y in zip(X, labels):
                sink.write({"__key__": f"{i:08d}", "npy": x, "cls": int(y)})
                i += 1
    urls = sorted(str(f) for f in out.glob("*.tar"))

    def run(shuffle: bool) -> tuple[int, int]:
        ds = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, empty_check=False, seed=0)
        if shuffle:
            ds = ds.shuffle(1000)
        return batches(((np.load(io.BytesIO(s["npy"])), int(s["cls"])) for s in ds), spec)

    rows = []
    for shuffle in (False, True):
        run(shuffle)  # warm-up pass: page cache, imports
        took, n, nb = best_of(repeat, functools.partial(run, shuffle))
        how = "shuffled" if shuffle else "in order"  # shuffled: shard order + a 1,000-sample buffer
        rows.append(row(spec, f"WebDataset tar + np.load ({how})", took, n, nb, top, shards=len(urls)))
    return rows


def mosaic_rows(spec: Spec, work: Path, repeat: int, top: float) -> list[dict[str, Any]]:
    """MosaicML streaming: MDS shards (fixed-shape uint8 ndarray + int), read with ``StreamingDataset(local=...)``."""
    MDSWriter, StreamingDataset = import_mosaic()
    out = work / "mds" / spec.name
    shape = ",".join(map(str, spec.shape))
    with MDSWriter(out=str(out), columns={"x": f"ndarray:uint8:{shape}", "y": "int"}, size_limit=SHARD_BYTES) as sink:
        for X, labels in images(spec):
            for x, y in zip(X, labels):
                sink.write({"x": x, "y": int(y)})
    rows = []
    for shuffle in (False, True):
        ds = StreamingDataset(local=str(out), shuffle=shuffle, shuffle_seed=0, batch_size=spec.batch)

        def run(ds: Any = ds) -> tuple[int, int]:
            return batches(((s["x"], s["y"]) for s in ds), spec)

        run()  # warm-up pass: page cache, shared-memory setup
        took, n, nb = best_of(repeat, run)
        how = "shuffled" if shuffle else "in order"
        rows.append(row(spec, f"MosaicML MDS StreamingDataset ({how})", took, n, nb, top,
                        shards=len(list(out.glob("*.mds")))))
        del ds, run  # frees its shared memory before the next one opens the same directory
    return rows


def other_loaders() -> list[dict[str, Any]]:
    """Which of WebDataset / MosaicML streaming this run could measure."""
    out = []
    for module, name in (("webdataset", "WebDataset"), ("streaming", "MosaicML streaming")):
        installed = importlib.util.find_spec(module) is not None
        out.append({"row": name, "module": module, "status": "measured" if installed else
                    "not installed (pip install webdataset mosaicml-streaming)"})
    return out


def other_loader_rows(spec: Spec, work: Path, repeat: int, top: float) -> list[dict[str, Any]]:
    """The WebDataset and MosaicML rows for ``spec``, for whichever of them is installed."""
    rows: list[dict[str, Any]] = []
    for other, fn in zip(other_loaders(), (webdataset_rows, mosaic_rows)):
        if other["status"] == "measured":
            began = time.perf_counter()
            rows += fn(spec, work, repeat, top)
            print(f"[{spec.name}] {other['row']}: written and measured in {time.perf_counter() - began:.1f}s",
                  file=sys.stderr)
    return rows


def versus_others(rows: list[dict[str, Any]], target: float = 1.5) -> list[dict[str, Any]]:
    """Per dataset: TensorDB's shuffled next-epoch stream / the fastest shuffled WebDataset or MosaicML row."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows if "vs_ceiling" in r):
        mine = [r for r in rows if r["dataset"] == name and r["row"] == "stream next epochs (shuffled)"]
        theirs = [r for r in rows if r["dataset"] == name and r["row"].startswith(("WebDataset", "MosaicML"))
                  and "shuffled" in r["row"]]
        if mine and theirs:
            best = max(theirs, key=lambda r: r["samples_per_s"])
            ratio = mine[0]["samples_per_s"] / best["samples_per_s"]
            out.append({"dataset": name, "tensordb_samples_per_s": mine[0]["samples_per_s"], "best_other": best["row"],
                        "best_other_samples_per_s": best["samples_per_s"], "ratio": round(ratio, 2),
                        "target": target, "met": ratio >= target})
    return out


def local_rows(db: tdb.TensorDB, spec: Spec, work: Path, repeat: int, ceilings: dict[str, float]) -> list[dict]:
    """Every row for ``spec`` on the embedded store and local files; records its ceiling in ``ceilings``."""
    npy_dir = work / "npy" / spec.name
    npy_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    paths = import_dataset(db, spec, npy_dir)
    layout = chunk_layout(db, spec)
    stored = sum(os.path.getsize(p) for p, _ in layout)
    print(f"[{spec.name}] generated and imported {spec.n} samples in {time.perf_counter() - t0:.1f}s: "
          f"{len(layout)} chunks, stored/raw = {stored / (spec.n * spec.sample_bytes):.2f}", file=sys.stderr)
    rows = []
    ceiling(layout, spec, False)  # warm the page cache
    took, n, nb = best_of(repeat, functools.partial(ceiling, layout, spec, False))
    top = ceilings[spec.name] = n / took
    rows.append(row(spec, "ceiling (read + lz4 decode)", took, n, nb, top))
    took, n, nb = best_of(repeat, functools.partial(ceiling, layout, spec, True))
    rows.append(row(spec, "ceiling + crc32", took, n, nb, top))
    order = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]
    took, n, nb = best_of(repeat, functools.partial(naive_npy, order, spec))
    rows.append(row(spec, "naive: one .npy per sample (shuffled)", took, n, nb, top))
    for shuffle in (True, False):
        how = "shuffled" if shuffle else "in order"
        stats: dict[str, Any] = {}
        took, n, nb = best_of(repeat, functools.partial(stream_run, db, spec, stats, shuffle=shuffle, seed=0))
        rows.append(row(spec, f"stream 1st epoch ({how})", took, n, nb, top, index_s=round(stats["index_s"], 3)))
        took, stats = stream_epochs(db, spec, repeat, shuffle=shuffle, seed=0)
        rows.append(row(spec, f"stream next epochs ({how})", took, spec.n, spec.n * spec.sample_bytes, top,
                        decode_s=round(stats["decode_s"], 3), wait_fetch_s=round(stats["wait_fetch_s"], 3),
                        wait_decode_s=round(stats["wait_decode_s"], 3)))
    return rows + other_loader_rows(spec, work, repeat, top)


# -- main -------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()], "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "lz4": lz4.__version__, "crc32": CRC32_IMPLEMENTATION,
            "processor": platform.processor() or platform.machine()}


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table: ratios to the local ceiling, to the sequential GET loop and to the remote chunk ceiling."""
    print(f"{'dataset':<10} {'row':<44} {'samples':>7} {'samples/s':>11} {'MB/s':>7} {'vs ceiling':>10} "
          f"{'vs seq GET':>10} {'vs remote ceil':>14} {'CPU us/sample':>13}")

    def ratio(r: dict[str, Any], key: str, digits: int) -> str:
        return f"{r[key]:.{digits}f}x" if r.get(key) is not None else ""

    for r in rows:
        print(f"{r['dataset']:<10} {r['row']:<44} {r['samples']:>7} {r['samples_per_s']:>11,.0f} "
              f"{r['MB_per_s']:>7,.0f} {ratio(r, 'vs_ceiling', 2):>10} {ratio(r, 'vs_sequential_get', 1):>10} "
              f"{ratio(r, 'vs_remote_ceiling', 2):>14} {r['cpu_us_per_sample']:>13.1f}")


def markdown_table(result: dict[str, Any]) -> str:
    """A saved result as a Markdown table (what README/docs quote): ``stream.py --markdown results/stream.json``."""
    def x(r: dict[str, Any], key: str, digits: int) -> str:
        return f"{r[key]:.{digits}f}x" if r.get(key) is not None else ""

    lines = ["| dataset | row | samples | samples/s | MB/s | vs ceiling | vs seq GET | vs remote ceiling | CPU µs/sample |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in result["rows"]:
        lines.append(f"| {r['dataset']} | {r['row']} | {r['samples']:,} | {r['samples_per_s']:,.0f} | "
                     f"{r['MB_per_s']:,.0f} | {x(r, 'vs_ceiling', 2)} | {x(r, 'vs_sequential_get', 1)} | "
                     f"{x(r, 'vs_remote_ceiling', 2)} | {r['cpu_us_per_sample']:.1f} |")
    return "\n".join(lines)


def remote_names(text: str) -> list[str]:
    """``--remote`` value: a comma list of backends, ``all`` or ``none``."""
    from servers import NAMES

    if text in ("all", ""):
        return list(NAMES)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return names


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the samples")
    parser.add_argument("--repeat", type=int, default=5, help="runs (epochs) per measurement; the best is kept")
    parser.add_argument("--remote", type=remote_names, default="all", metavar="s3,gcs,azure,gridfs",
                        help="backends whose servers to start and measure (default all; 'none' for local rows only)")
    parser.add_argument("--remote-repeat", type=int, default=2, help="runs (epochs) per remote stream measurement")
    parser.add_argument("--get-samples", type=int, default=1000,
                        help="samples per dataset in the sequential one-GET-per-sample loop")
    parser.add_argument("--blobs", action="append", default=[], help="a remote blob-store URI to add rows for")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the JSON results")
    parser.add_argument("--markdown", metavar="JSON", help="print a saved result as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text())))
        return 0
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    datasets = specs(args.quick)
    remote = remote_specs(datasets)
    rows: list[dict[str, Any]] = []
    ceilings: dict[str, float] = {}
    backends: list[dict[str, str]] = []
    began = time.perf_counter()
    load_before = [round(v, 2) for v in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="tensordb-bench-"))
    try:
        with tdb.connect(str(work / "wh"), study="bench", blob_options={"fsync": False}) as db:
            for spec in datasets:
                rows += local_rows(db, spec, work, args.repeat, ceilings)
        more, backends = backend_rows(args.remote, remote, args.remote_repeat, ceilings, args.get_samples, work)
        rows += more
        for uri in args.blobs:
            rows += remote_rows(uri, remote, args.remote_repeat, ceilings, get_samples=args.get_samples)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    others = other_loaders()
    versus = versus_others(rows)
    print_table(rows)
    for b in backends:
        print(f"{b['backend']}: {b['status']}")
    for other in others:
        print(f"{other['row']}: {other['status']}")
    for v in versus:
        print(f"{v['dataset']}: TensorDB stream next epochs (shuffled) {v['tensordb_samples_per_s']:,.0f}/s = "
              f"{v['ratio']:.2f}x {v['best_other']} {v['best_other_samples_per_s']:,.0f}/s "
              f"(target {v['target']}x: {'met' if v['met'] else 'missed'})")
    result = {"benchmark": "stream", "quick": args.quick, "repeat": args.repeat,
              "remote_repeat": args.remote_repeat, "get_samples": args.get_samples,
              "datasets": {s.name: s.n for s in datasets}, "remote_datasets": {s.name: s.n for s in remote},
              "machine": {**machine(), "load_average_at_start": load_before},
              "total_seconds": round(time.perf_counter() - began, 1), "rows": rows, "backends": backends,
              "other_loaders": others, "vs_other_loaders": versus}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({result['total_seconds']}s)", file=sys.stderr)
    failed = [b for b in backends if b["status"].startswith("not available")]
    return 1 if failed and argv_named_remote(argv) else 0


def argv_named_remote(argv: list[str] | None) -> bool:
    """Whether ``--remote`` was given explicitly (then an unavailable backend is a failure, not a note)."""
    return any(a == "--remote" or a.startswith("--remote=") for a in (sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
