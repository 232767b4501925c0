"""WebDataset and MosaicML streaming rows on the same samples, where those packages are installed.

Each writes the samples in its own format (64 MiB shards, uncompressed),
reads them back in order and shuffled, and collates batches the size the
stream hands out, so the comparison is sample for sample.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import Spec, best_of, images, row

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
