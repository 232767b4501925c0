"""What benchmarks/records.py measures with: the generated JPEG/PNG files, one decoder, and every loader's rows.

Why a module of its own: the driver stays a list of rows, and every system
(TensorDB, LitData, MosaicML streaming, WebDataset) reads the *same* files'
bytes and decodes them with the *same* function (:data:`DECODERS`, the
library ``tensordb_core.format.media`` chose: simplejpeg for JPEG, Pillow for
PNG), so a row differs from another only in how the bytes are stored and read.
"""

from __future__ import annotations

import functools
import io
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Largest shard/chunk file the peers write (their usual defaults); smaller for small sets, so 2 workers have >= 4.
SHARD_BYTES = 64 << 20


# -- the images ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSet:
    """``n`` generated RGB JPEGs of 256-500 px a side, the first ``n_masks`` with a PNG mask (class ids 0-4)."""

    name: str
    n: int
    n_masks: int
    seed: int = 7
    quality: int = 90


def _texture(rng: np.random.Generator, side: int = 1024) -> np.ndarray:
    """A field of coarse (4 px) and fine noise that every image crops from: JPEG sizes like photos', cheaply."""
    coarse = rng.standard_normal((side // 4, side // 4, 3), dtype=np.float32) * 12
    return np.repeat(np.repeat(coarse, 4, 0), 4, 1) + rng.standard_normal((side, side, 3), dtype=np.float32) * 6


def generate(spec: ImageSet, out: Path) -> dict[str, Any]:
    """Write ``out/jpeg/NNNNN.jpg`` (+ ``out/mask/NNNNN.png``) and ``out/labels.npy``; reused when already there.

    Content: a two-colour gradient, four filled ellipses and a noise texture,
    which encodes at ~90 KB an image at quality 90 (ImageNet's average is
    ~110 KB).  Labels are uniform in 0-9, so ``label == 3`` is ~10% of samples.
    """
    done = out / "done"
    if not done.exists():
        import simplejpeg
        from PIL import Image

        rng = np.random.default_rng(spec.seed)
        tex = _texture(rng)
        side = tex.shape[0]
        (out / "jpeg").mkdir(parents=True, exist_ok=True)
        (out / "mask").mkdir(exist_ok=True)
        for i in range(spec.n):
            h, w = (int(v) for v in rng.integers(256, 501, size=2))
            y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
            x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
            a, b = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
            oy, ox = (int(v) for v in rng.integers(0, side - 500, size=2))
            img = a + (b - a) * (y * rng.uniform(0.2, 1) + x * rng.uniform(0.2, 1)) / 2 + tex[oy:oy + h, ox:ox + w]
            mask = np.zeros((h, w), np.uint8)
            for k in range(1, 5):
                ry, rx, cy, cx = rng.uniform(20, h / 3), rng.uniform(20, w / 3), rng.uniform(0, h), rng.uniform(0, w)
                y0, y1, x0, x1 = int(max(0, cy - ry)), int(min(h, cy + ry + 1)), int(max(0, cx - rx)), int(min(w, cx + rx + 1))
                yy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / ry
                xx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / rx
                inside = yy * yy + xx * xx < 1
                img[y0:y1, x0:x1][inside] = rng.uniform(0, 255, 3) + tex[oy + y0:oy + y1, ox + x0:ox + x1][inside]
                mask[y0:y1, x0:x1][inside] = k
            pixels = np.clip(img, 0, 255).astype(np.uint8)
            (out / "jpeg" / f"{i:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(pixels, quality=spec.quality))
            if i < spec.n_masks:
                Image.fromarray(mask).save(out / "mask" / f"{i:05d}.png", compress_level=6)
        np.save(out / "labels.npy", rng.integers(0, 10, size=spec.n))
        done.write_text("ok")
    return {"jpeg_bytes": sum(f.stat().st_size for f in (out / "jpeg").iterdir()),
            "mask_bytes": sum(f.stat().st_size for f in (out / "mask").iterdir())}


@dataclass(frozen=True)
class Sample:
    """One sample's stored bytes, as every loader writes it."""

    key: int
    image: bytes
    mask: bytes | None
    label: int


def samples(spec: ImageSet, root: Path, masks: bool) -> Iterator[Sample]:
    """The files in index order: all ``n`` images (``masks=False``) or the ``n_masks`` with their masks."""
    labels = np.load(root / "labels.npy")
    for i in range(spec.n_masks if masks else spec.n):
        mask = (root / "mask" / f"{i:05d}.png").read_bytes() if masks else None
        yield Sample(i, (root / "jpeg" / f"{i:05d}.jpg").read_bytes(), mask, int(labels[i]))


# -- one decoder for everyone -------------------------------------------------------------------------------


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8 (H, W, 3): simplejpeg (libjpeg-turbo, GIL released), the library the stream uses for JPEG."""
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB")


def decode_png(data: bytes) -> np.ndarray:
    """uint8 (H, W): Pillow, the library the stream uses for PNG."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


#: The decode functions, by field; swap these to benchmark another library for every loader at once.
DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {"image": decode_jpeg, "mask": decode_png}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A peer's batch as the stream hands one out: decoded images (and masks) as lists (ragged), labels stacked.

    Also the ``collate_fn`` of their DataLoader rows, so decoding runs in the loader's workers.
    """
    out: dict[str, Any] = {"image": [DECODERS["image"](bytes(s["image"])) for s in items],
                           "label": np.asarray([int(s["label"]) for s in items])}
    if items and items[0].get("mask"):
        out["mask"] = [DECODERS["mask"](bytes(s["mask"])) for s in items]
    return out


def batched(items: Iterable[dict[str, Any]], size: int, keep: Callable[[dict[str, Any]], bool] | None = None
            ) -> Iterator[dict[str, Any]]:
    """Group ``items`` (raw, undecoded) into decoded batches of ``size``; ``keep`` filters before decoding."""
    chunk: list[dict[str, Any]] = []
    for item in items:
        if keep is not None and not keep(item):
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield collate(chunk)
            chunk = []
    if chunk:
        yield collate(chunk)


def count(batches: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Consume ``batches``: (samples, decoded bytes)."""
    n = nbytes = 0
    for b in batches:
        n += len(b["image"])
        nbytes += sum(a.nbytes for a in b["image"]) + sum(a.nbytes for a in b.get("mask", ()))
    return n, nbytes


# -- timing -------------------------------------------------------------------------------------------------


def cpu_now() -> float:
    """CPU seconds of this process and of its reaped children (a DataLoader's workers, once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(repeat: int, fn: Callable[[], tuple[int, int]], warm: bool = True) -> tuple[float, int, int, float]:
    """A warm-up run (page cache, imports, shared memory), then the fastest of ``repeat``: (s, samples, bytes, cpu s)."""
    if warm:
        fn()
    best: tuple[float, int, int, float] | None = None
    for _ in range(repeat):
        cpu, began = cpu_now(), time.perf_counter()
        n, nbytes = fn()
        took = time.perf_counter() - began
        if best is None or took < best[0]:
            best = (took, n, nbytes, cpu_now() - cpu)
    assert best is not None
    return best


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def shard_bytes(total: int) -> int:
    """Shard size for a peer: 64 MiB, or an eighth of the data when that is smaller (>= 4 shards for 2 workers)."""
    return int(min(SHARD_BYTES, max(1 << 20, total // 8)))


def loader(dataset: Any, batch: int, workers: int) -> Any:
    import torch.utils.data

    return torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate,
                                       persistent_workers=False)


# -- the peers: write, then read (single process or a DataLoader) ------------------------------------------


class Peer:
    """A peer loader over one directory: ``write`` the samples, then ``dataset(shuffle)`` yields raw dicts."""

    name = ""
    module = ""

    def __init__(self, out: Path) -> None:
        self.out = out

    def write(self, items: Iterable[Sample], total: int) -> None:
        raise NotImplementedError

    def dataset(self, shuffle: bool, batch: int) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release what a dataset holds (MosaicML: shared memory) before the next one opens the same files."""

    def epoch(self, batch: int, workers: int = 0, keep: Callable[[dict[str, Any]], bool] | None = None
              ) -> tuple[int, int]:
        ds = self.dataset(True, batch)
        try:
            if workers:
                return count(loader(ds, batch, workers))
            return count(batched(ds, batch, keep))
        finally:
            del ds
            self.close()


def _row(s: Sample) -> dict[str, Any]:
    row: dict[str, Any] = {"image": s.image, "label": s.label}
    if s.mask is not None:
        row["mask"] = s.mask
    return row


class WebDatasetPeer(Peer):
    """WebDataset: tar shards of ``.jpg`` (+ ``.png``) + ``.cls``, shard order shuffled plus a 1,000-sample buffer."""

    name, module = "WebDataset", "webdataset"

    def write(self, items: Iterable[Sample], total: int) -> None:
        import webdataset as wds

        self.out.mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(self.out / "shard-%05d.tar"), maxsize=shard_bytes(total), verbose=0) as sink:
            for s in items:
                sample = {"__key__": f"{s.key:08d}", "jpg": s.image, "cls": str(s.label).encode()}
                if s.mask is not None:
                    sample["png"] = s.mask
                sink.write(sample)

    def dataset(self, shuffle: bool, batch: int) -> Any:
        import webdataset as wds

        urls = sorted(str(f) for f in self.out.glob("*.tar"))
        ds = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, empty_check=False, seed=0)
        if shuffle:
            ds = ds.shuffle(1000)
        return ds.map(lambda s: {"image": s["jpg"], "label": int(s["cls"]), **({"mask": s["png"]} if "png" in s else {})})


class MosaicPeer(Peer):
    """MosaicML streaming: MDS shards with ``image``/``mask`` as ``bytes`` columns, ``StreamingDataset(local=...)``."""

    name, module = "MosaicML streaming", "streaming"

    def write(self, items: Iterable[Sample], total: int) -> None:
        from other_loaders import import_mosaic

        MDSWriter, _ = import_mosaic()
        rest = iter(items)
        first = next(rest)
        columns = {"image": "bytes", "label": "int", **({"mask": "bytes"} if first.mask is not None else {})}
        with MDSWriter(out=str(self.out), columns=columns, size_limit=shard_bytes(total)) as sink:
            for s in _chain(first, rest):
                sink.write(_row(s))

    def dataset(self, shuffle: bool, batch: int) -> Any:
        from other_loaders import import_mosaic

        _, StreamingDataset = import_mosaic()
        return StreamingDataset(local=str(self.out), shuffle=shuffle, shuffle_seed=0, batch_size=batch)

    def close(self) -> None:
        try:
            from streaming.base.util import clean_stale_shared_memory
        except ImportError:
            return
        clean_stale_shared_memory()


class LitDataPeer(Peer):
    """LitData: chunks written by its ``BinaryWriter`` (``bytes`` items), read by ``litdata.StreamingDataset``."""

    name, module = "LitData", "litdata"

    def write(self, items: Iterable[Sample], total: int) -> None:
        from litdata.streaming.writer import BinaryWriter

        self.out.mkdir(parents=True, exist_ok=True)
        writer = BinaryWriter(str(self.out), chunk_bytes=shard_bytes(total))
        for s in items:
            writer.add_item(s.key, _row(s))
        writer.done()
        writer.merge()

    def dataset(self, shuffle: bool, batch: int) -> Any:
        import litdata

        return litdata.StreamingDataset(input_dir=f"local:{self.out}", shuffle=shuffle, seed=0)


def _chain(first: Sample, rest: Iterator[Sample]) -> Iterator[Sample]:
    yield first
    yield from rest


PEERS: tuple[type[Peer], ...] = (LitDataPeer, MosaicPeer, WebDatasetPeer)


@functools.cache
def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def peers_status() -> list[dict[str, str]]:
    return [{"peer": p.name, "module": p.module, "status": "measured" if installed(p.module) else
             f"not installed (pip install {'mosaicml-streaming' if p.module == 'streaming' else p.module})"}
            for p in PEERS]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
