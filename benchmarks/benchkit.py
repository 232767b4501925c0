"""What every benchmark row is built from: the synthetic datasets, timing, and the local measurements.

Why a module of its own: ``stream.py`` (the driver), ``remote_rows.py`` and
``other_loaders.py`` all measure the same samples the same way (best of
``repeat`` runs, CPU time per sample, ratios to the ceiling), so the
definitions live once, here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.frame
import numpy as np

import tensordb_core as tdb
from tensordb_core.format.checksums import crc32


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


#: Epochs averaged in the rows of epochs read from a local copy of remote data (the stream's disk cache, a peer's
#: own), whatever ``--remote-repeat`` says.  Why: an epoch of the 4,000 small remote samples takes 10-60 ms, and a
#: stream reads ahead across epoch ends, so single epochs of one run ran 35k-458k samples/s and the mean of two
#: moved 56k-145k between runs of one configuration; the peers' row took their fastest epoch, ours the mean.
CACHED_EPOCHS = 8


def mean_of(runs: int, fn: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    """Run ``fn`` (returns samples, decoded bytes) ``runs`` times; the mean run's (seconds, samples, bytes)."""
    cpu = time.process_time()
    began = time.perf_counter()
    done = [fn() for _ in range(runs)]
    LAST_CPU[0] = (time.process_time() - cpu) / runs
    return (time.perf_counter() - began) / runs, done[0][0], done[0][1]


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


def stream_run(db: tdb.TensorDB, spec: Spec, stats_out: dict[str, Any], ds: str | None = None,
               **kwargs: Any) -> tuple[int, int]:
    """One fresh stream over the samples tagged ``ds`` (default: the spec's name), one epoch."""
    n = 0
    with db.data_generator({"ds": ds or spec.name}, batch_size=spec.batch, **kwargs) as stream:
        for X, _y in stream:
            n += len(X)
        stats_out.update(stream.stats.as_dict())
    return n, n * spec.sample_bytes


def stream_epochs(db: tdb.TensorDB, spec: Spec, epochs: int, ds: str | None = None,
                  **kwargs: Any) -> tuple[float, dict[str, Any]]:
    """Mean seconds of the epochs after the first (index read, lineage count and warm-up paid once).

    Why the mean, not the fastest: a stream reads ahead across epochs (its
    windows queue does not stop at an epoch's end), so an epoch can start
    with most of its samples read and unpacked during the one before; the
    fastest epoch of a 4,000-sample remote stream, one read of all its
    samples, measured 299k samples/s, 2.9x the single-thread ceiling.
    """
    times: list[tuple[float, float]] = []
    n = 0
    with db.data_generator({"ds": ds or spec.name}, batch_size=spec.batch, epochs=1 + epochs, **kwargs) as stream:
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
    took, LAST_CPU[0] = (sum(t[0] for t in times) / len(times), sum(t[1] for t in times) / len(times))
    return took, stats


def row(dataset: Spec, name: str, took: float, samples: int, nbytes: int, ceiling_sps: float | None,
        **extra: Any) -> dict[str, Any]:
    sps = samples / took
    return {"dataset": dataset.name, "row": name, "samples": samples, "seconds": round(took, 4),
            "samples_per_s": round(sps, 1), "MB_per_s": round(nbytes / took / 1e6, 1),
            "vs_ceiling": round(sps / ceiling_sps, 3) if ceiling_sps else None,
            "cpu_us_per_sample": round(LAST_CPU[0] / samples * 1e6, 2), **extra}


def row_without_cpu(dataset: Spec, name: str, took: float, samples: int, nbytes: int, ceiling_sps: float | None,
                    **extra: Any) -> dict[str, Any]:
    """A row not timed by :func:`best_of` (its CPU would be another run's): the CPU column stays empty."""
    return {**row(dataset, name, took, samples, nbytes, ceiling_sps, **extra), "cpu_us_per_sample": None}


def import_dataset(db: tdb.TensorDB, spec: Spec, npy_dir: Path | None, ds: str | None = None,
                   codec: str = "auto") -> list[str]:
    """Import ``spec`` into ``db`` (tag ``ds``, default its name); also write one ``.npy`` per sample when ``npy_dir`` is given.

    The ``ds`` tag is indexed, as the README asks of a tag one streams by: the
    second dataset of a warehouse otherwise starts each stream by reading past
    every sample of the first (the record probe and the epoch layout).
    """
    db.index_tags("ds")
    paths: list[str] = []
    for X, labels in images(spec):
        db.import_data(X, labels, {"ds": ds or spec.name}, codec=codec)
        if npy_dir is not None:
            for x, i in zip(X, range(len(paths), len(paths) + len(X))):
                path = str(npy_dir / f"{i}.npy")
                np.save(path, x)
                paths.append(path)
    return paths
