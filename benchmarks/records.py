"""Records of encoded media: TensorDB against LitData, MosaicML streaming and WebDataset on the same JPEG files.

Run from the repository root::

    .venv/bin/python benchmarks/records.py            # 5,000 JPEGs (1,000 with PNG masks)
    .venv/bin/python benchmarks/records.py --quick    # a fifth of that
    .venv/bin/python benchmarks/records.py --markdown benchmarks/results/records.json

Every row uses the same files, generated once per run (``record_loaders.generate``:
RGB JPEGs of 256-500 px a side at quality 90, ~90 KB each; masks are 5-class
PNGs), and every system decodes with the same functions (simplejpeg for JPEG,
Pillow for PNG, ``record_loaders.DECODERS``), the libraries TensorDB's stream
uses.  Two datasets: ``images`` (every JPEG + an int label) and ``image+mask``
(the first fifth, JPEG + PNG mask + label).  Rows:

1. ``write``: storing the files' bytes (TensorDB: ``import_records`` with
   ``tdb.Encoded``; the peers: their own writers, bytes columns, no
   re-encoding): samples/s, and bytes on disk / the files' bytes.
2. ``files + decode``: read every file and decode it, one thread and one
   thread per core: what decoding costs, the bound of every loader here.
3. ``epoch``: one shuffled epoch decoded to uint8 arrays, batches of 64
   (images ragged, so lists), in this process and through a torch
   ``DataLoader`` with 2 workers (decode in the workers); TensorDB decodes on
   its stream's threads.  Each is a warm-up epoch, then the best of
   ``--repeat`` fresh epochs (opening the dataset/stream included), the
   systems' epochs interleaved round by round so drifting load on a shared
   machine falls on all of them alike.
4. ``filter label==3``: the ~10% of samples with one label, decoded;
   TensorDB queries its index and reads only those samples, the peers read
   everything and keep what matches (decoding only those).

``vs best peer``: TensorDB's samples/s over the fastest peer's in the same
group and run (for ``write``: bytes on disk over the files' bytes instead).
Results print as a table and go to ``benchmarks/results/records.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data
from record_loaders import (
    DECODERS,
    PEERS,
    ImageSet,
    Peer,
    count,
    cpu_count,
    dir_bytes,
    generate,
    installed,
    peers_status,
    samples,
    timed,
)
from report import machine, write_json

import tensordb_core as tdb
from tensordb_core.format.media import Encoded

RESULTS = Path(__file__).resolve().parent / "results" / "records.json"
BATCH = 64
LABEL = 3  # the filtered query keeps label == 3 (labels are uniform in 0-9)


def row(dataset: str, group: str, system: str, took: float, n: int, cpu: float, **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "group": group, "system": system, "samples": n, "seconds": round(took, 3),
            "samples_per_s": round(n / took, 1) if took else None,
            "cpu_us_per_sample": round(cpu / n * 1e6, 1) if n else None, **extra}


# -- TensorDB -----------------------------------------------------------------------------------------------


def tensordb_records(spec: ImageSet, root: Path, masks: bool):
    for s in samples(spec, root, masks):
        rec: dict[str, Any] = {"image": Encoded(s.image, "jpeg"), "label": s.label}
        if s.mask is not None:
            rec["mask"] = Encoded(s.mask, "png")
        yield rec


def tensordb_epoch(uri: str, query: dict[str, Any], batch: int) -> tuple[int, int]:
    with tdb.connect(uri, study="bench") as db, \
            db.data_generator(query, batch_size=batch, shuffle=True, seed=0, epochs=1) as stream:
        return count(stream)


class TensorDBLoaderDataset(torch.utils.data.IterableDataset):
    """The stream in DataLoader workers: each worker streams its shard (``tensordb_core.torch.loader_shard``).

    Used when the torch adapter does not yet yield record batches; otherwise
    :class:`tensordb_core.torch.TensorDBIterableDataset` is measured.
    """

    def __init__(self, uri: str, query: dict[str, Any], batch: int) -> None:
        super().__init__()
        self.uri, self.query, self.batch = uri, query, batch

    def __iter__(self):
        from tensordb_core.torch import loader_shard

        with tdb.connect(self.uri, study="bench") as db, \
                db.data_generator(self.query, batch_size=self.batch, shuffle=True, seed=0, epochs=1,
                                  shard=loader_shard()) as stream:
            yield from stream


def tensordb_loader(uri: str, query: dict[str, Any], batch: int, workers: int) -> tuple[Any, str]:
    """A DataLoader over the torch adapter when it yields dicts for records, else over :class:`TensorDBLoaderDataset`."""
    how = "torch adapter"
    try:
        from tensordb_core.torch import TensorDBIterableDataset

        ds: Any = TensorDBIterableDataset(uri, query, study="bench", batch_size=batch, shuffle=True, seed=0)
        first = next(iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)))
        if not isinstance(first, dict):
            raise TypeError("the adapter yields tuples")
    except (TypeError, ValueError, RuntimeError):  # the adapter predates record batches: the stream, sharded alike
        ds, how = TensorDBLoaderDataset(uri, query, batch), "stream in loader workers"
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=False), how


#: What a system offers to measure: {group: (function returning (samples, bytes), extra row fields)}.
Measures = dict[str, tuple[Callable[[], tuple[int, int]], dict[str, Any]]]


def tensordb_write(spec: ImageSet, root: Path, work: Path, masks: bool, files_bytes: int,
                   workers: int) -> tuple[dict[str, Any], Measures]:
    """Import the files with ``import_records`` (the write row), and what to time on the result."""
    name = "image+mask" if masks else "images"
    uri = str(work / f"tdb-{name}")
    n = spec.n_masks if masks else spec.n
    with tdb.connect(uri, study="bench", blob_options={"fsync": False}) as db:
        cpu, began = time.process_time(), time.perf_counter()
        db.import_records(tensordb_records(spec, root, masks))
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
    blobs, stored = dir_bytes(Path(uri) / "blobs"), dir_bytes(Path(uri))
    written = row(name, "write", "TensorDB", took, n, cpu, stored_bytes=stored, blob_bytes=blobs,
                  vs_files=round(stored / files_bytes, 4), blobs_vs_files=round(blobs / files_bytes, 4))
    loader, how = tensordb_loader(uri, {}, BATCH, workers)
    measures: Measures = {
        "epoch, 1 process": (functools.partial(tensordb_epoch, uri, {}, BATCH), {}),
        f"epoch, DataLoader {workers} workers": (functools.partial(count, loader), {"how": how}),
    }
    if not masks:
        measures[f"filter label=={LABEL}"] = (functools.partial(tensordb_epoch, uri, {"label": LABEL}, BATCH),
                                             {"how": "index query, reads only those"})
    return written, measures


def decode_files(spec: ImageSet, root: Path, masks: bool, threads: int) -> tuple[int, int]:
    """Read every file and decode it (``threads`` at a time): the work every row does, nothing else."""
    n = spec.n_masks if masks else spec.n

    def one(i: int) -> int:
        img = DECODERS["image"]((root / "jpeg" / f"{i:05d}.jpg").read_bytes())
        extra = DECODERS["mask"]((root / "mask" / f"{i:05d}.png").read_bytes()).nbytes if masks else 0
        return img.nbytes + extra

    if threads == 1:
        return n, sum(one(i) for i in range(n))
    with ThreadPoolExecutor(threads) as pool:
        return n, sum(pool.map(one, range(n), chunksize=16))


def peer_write(peer_cls: type[Peer], spec: ImageSet, root: Path, work: Path, masks: bool, files_bytes: int,
               workers: int) -> tuple[dict[str, Any], Measures]:
    """Write the files with the peer's own writer (the write row), and what to time on the result."""
    name = "image+mask" if masks else "images"
    peer = peer_cls(work / f"{peer_cls.module}-{name}")
    n = spec.n_masks if masks else spec.n
    cpu, began = time.process_time(), time.perf_counter()
    peer.write(samples(spec, root, masks), files_bytes)
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    stored = dir_bytes(peer.out)
    written = row(name, "write", peer.name, took, n, cpu, stored_bytes=stored, vs_files=round(stored / files_bytes, 4))
    measures: Measures = {
        "epoch, 1 process": (functools.partial(peer.epoch, BATCH), {}),
        f"epoch, DataLoader {workers} workers": (functools.partial(peer.epoch, BATCH, workers), {}),
    }
    if not masks:
        measures[f"filter label=={LABEL}"] = (functools.partial(peer.epoch, BATCH, keep=_label_is(LABEL)),
                                             {"how": "read all, keep matches"})
    return written, measures


def _label_is(label: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: int(s["label"]) == label


def measure(dataset: str, systems: dict[str, Measures], repeat: int) -> list[dict[str, Any]]:
    """Every group's rows, the systems interleaved: each round times each system once, in a rotated order.

    Why interleaved: on a shared machine the load drifts over minutes; timing
    one system's repeats back to back hands it one stretch of load and the next
    system another.  A warm-up run of each first (page cache, imports, shared
    memory); the fastest round of each system is kept.
    """
    rows = []
    for group in dict.fromkeys(g for m in systems.values() for g in m):
        here = {name: m[group] for name, m in systems.items() if group in m}
        best: dict[str, Any] = dict.fromkeys(here)
        for fn, _ in here.values():
            fn()
        names = list(here)
        for r in range(repeat):
            for name in names[r % len(names):] + names[:r % len(names)]:
                took, n, _, cpu = timed(1, here[name][0], warm=False)
                if best[name] is None or took < best[name][0]:
                    best[name] = (took, n, cpu)
        for name, (took, n, cpu) in best.items():
            rows.append(row(dataset, group, name, took, n, cpu, **here[name][1]))
    return rows


def versus(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, group): TensorDB over the best peer (write: bytes on disk over the files' instead)."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["group"]) for r in rows):
        group = [r for r in rows if (r["dataset"], r["group"]) == key]
        mine = next((r for r in group if r["system"] == "TensorDB"), None)
        peers = [r for r in group if r["system"] != "TensorDB" and not r["system"].startswith("files")]
        if mine is None or not peers:
            continue
        best = max(peers, key=lambda r: r["samples_per_s"])
        ratio = round(mine["samples_per_s"] / best["samples_per_s"], 2)
        mine["vs_best_peer"] = ratio
        entry = {"dataset": key[0], "group": key[1], "tensordb_samples_per_s": mine["samples_per_s"],
                 "best_peer": best["system"], "best_peer_samples_per_s": best["samples_per_s"], "ratio": ratio}
        if key[1] == "write":
            entry["tensordb_stored_vs_files"] = mine["vs_files"]
        out.append(entry)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["| dataset | measure | system | samples | samples/s | CPU µs/sample | stored / files | vs best peer |",
             "|---|---|---|--:|--:|--:|--:|--:|"]
    for r in result["rows"]:
        stored = f"{r['vs_files']:.3f}x" if r.get("vs_files") is not None else ""
        vs = f"**{r['vs_best_peer']:.2f}x**" if r.get("vs_best_peer") is not None else ""
        lines.append(f"| {r['dataset']} | {r['group']} | {r['system']} | {r['samples']:,} | "
                     f"{r['samples_per_s']:,.0f} | {r['cpu_us_per_sample']:,.0f} | {stored} | {vs} |")
    return "\n".join(lines)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["dataset", "measure", "system", "samples", "samples/s", "CPU us/sample", "stored/files", "vs best peer"]
    cells = [[r["dataset"], r["group"], r["system"], f"{r['samples']:,}", f"{r['samples_per_s']:,.0f}",
              f"{r['cpu_us_per_sample']:,.0f}", f"{r['vs_files']:.3f}x" if r.get("vs_files") is not None else "",
              f"{r['vs_best_peer']:.2f}x" if r.get("vs_best_peer") is not None else ""] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        for line in [head, *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
        return
    table = Table(*head, title="records: TensorDB vs LitData / MosaicML streaming / WebDataset, same JPEG bytes")
    for c in cells:
        table.add_row(*c)
    Console(width=max(150, shutil.get_terminal_size().columns)).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the images (1,000, 200 with masks)")
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs per row after a warm-up; the best is kept")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--images", type=Path, help="keep the generated files here (reused by the next run)")
    parser.add_argument("--n", type=int, help="this many images (a fifth with masks) instead: a smoke test")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--markdown", metavar="JSON", help="print a saved result as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    spec = ImageSet("quick", 1000, 200) if args.quick else ImageSet("full", 5000, 1000)
    if args.n:
        spec = ImageSet(f"n{args.n}", args.n, max(1, args.n // 5))
    began, load_before = time.perf_counter(), [round(v, 2) for v in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="tensordb-records-"))
    root = args.images or work / "files"
    rows: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        sizes = generate(spec, root)
        print(f"{spec.n} JPEGs ({sizes['jpeg_bytes'] / 1e6:.1f} MB), {spec.n_masks} PNG masks "
              f"({sizes['mask_bytes'] / 1e6:.1f} MB) ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        mask_jpeg = sum((root / "jpeg" / f"{i:05d}.jpg").stat().st_size for i in range(spec.n_masks))
        for masks in (False, True):
            name = "image+mask" if masks else "images"
            files_bytes = mask_jpeg + sizes["mask_bytes"] if masks else sizes["jpeg_bytes"]
            n = spec.n_masks if masks else spec.n
            systems: dict[str, Measures] = {}
            for threads in sorted({1, cpu_count()}):
                label = f"files, {threads} thread{'s' if threads > 1 else ''}"
                systems[label] = {"files + decode": (functools.partial(decode_files, spec, root, masks, threads),
                                                     {"how": "read each file, decode it; nothing else"})}
            t0 = time.perf_counter()
            written, systems["TensorDB"] = tensordb_write(spec, root, work, masks, files_bytes, args.workers)
            rows.append(written)
            for peer_cls in PEERS:
                if installed(peer_cls.module):
                    written, systems[peer_cls.name] = peer_write(peer_cls, spec, root, work, masks, files_bytes,
                                                                 args.workers)
                    rows.append(written)
            print(f"[{name}] {n} samples ({files_bytes / 1e6:.1f} MB of files) written by "
                  f"{sum(not k.startswith('files') for k in systems)} "
                  f"systems in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            t0 = time.perf_counter()
            rows += measure(name, systems, args.repeat)
            print(f"[{name}] measured in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    vs = versus(rows)
    order = ["files + decode", "write", "epoch, 1 process", f"epoch, DataLoader {args.workers} workers",
             f"filter label=={LABEL}"]
    rows.sort(key=lambda r: (r["dataset"] != "images", order.index(r["group"])))
    print_table(rows)
    for p in peers_status():
        if p["status"] != "measured":
            print(f"{p['peer']}: {p['status']}")
    import simplejpeg
    from PIL import __version__ as pillow

    result = {"benchmark": "records", "quick": args.quick, "repeat": args.repeat, "workers": args.workers,
              "images": spec.n, "masks": spec.n_masks, "jpeg_bytes": sizes["jpeg_bytes"],
              "mask_bytes": sizes["mask_bytes"], "batch": BATCH,
              "machine": {**machine(), "load_average_at_start": load_before, "simplejpeg": simplejpeg.__version__,
                          "pillow": pillow, "peers": {p["module"]: _version(p["module"]) for p in peers_status()}},
              "total_seconds": round(time.perf_counter() - began, 1), "rows": rows, "vs_best_peer": vs}
    out = write_json(args.out, result)
    print(f"wrote {out} ({result['total_seconds']}s)", file=sys.stderr)
    return 0


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"streaming": "mosaicml-streaming"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
