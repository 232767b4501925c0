"""LitData and MosaicML streaming reading the same samples from the same S3 server as the stream (issue 16).

Why these rows: both peers read a remote dataset by downloading whole
shards to a local directory and reading that copy, so their first epoch
pays the download and their later epochs read local files; TensorDB's stream
reads byte ranges of its chunks (its later epochs read them again, or its
on-disk chunk cache with ``cache_dir=``).  The issue's remote targets compare
exactly that: the stream's first epoch against theirs, and its disk-cached
later epochs against their cached ones, on one server.

Each peer writes the samples in its own format locally (the writers of
``versus_litdata.py`` and ``other_loaders.py``: uncompressed 64 MiB shards),
uploaded with boto3 under a prefix of the benchmark's bucket (not timed).
Then, shuffled, batches collated to the stream's batch size:

* ``<label>: LitData 1st epoch``: a new ``StreamingDataset("s3://...",
  storage_options=...)`` with a fresh ``cache_dir``: its index read and the
  download are in the epoch, as the stream's index read is in its own.
* ``<label>: LitData next epochs``: one dataset iterated again, as a training
  loop does, reading the chunks its first pass left on disk.
* the same two for MosaicML (``remote=`` the prefix, ``local=`` a fresh
  directory; its S3 client takes the endpoint from ``S3_ENDPOINT_URL``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from benchkit import CACHED_EPOCHS, Spec, best_of, images, mean_of, row
from other_loaders import SHARD_BYTES, batches, import_mosaic
from versus_litdata import _collate, _write_litdata, litdata_installed

#: Where the peers' shards go, beside the stream's blobs in the benchmark's bucket.
PREFIX = "peers"


def s3_location(blobs_uri: str, blob_options: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """``(endpoint, bucket, boto3 credentials)`` of the S3 store the stream reads (``s3://bucket/...?endpoint_url=``)."""
    parts = urlsplit(blobs_uri)
    endpoint = parse_qs(parts.query)["endpoint_url"][0]
    creds = {k: v for k, v in blob_options.items() if k in ("aws_access_key_id", "aws_secret_access_key")}
    return endpoint, parts.netloc, creds


def _client(endpoint: str, creds: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)


def upload(client: Any, directory: Path, bucket: str, prefix: str) -> int:
    """Upload every file of ``directory`` under ``prefix``; how many."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    return len(files)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (MosaicML's S3 client reads its endpoint and keys there)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fresh(work: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))


def first_and_next_epochs(spec: Spec, name: str, cached: str, dataset: Callable[[Path], Any],
                          epoch: Callable[[Any], tuple[int, int]], work: Path, repeat: int) -> list[dict[str, Any]]:
    """A peer's two rows: its first epoch (a new ``dataset(local_dir)`` each run, so its index read and download
    are in it) and its next epochs (one dataset iterated again, as a training loop does, reading its local copy)."""

    def first_epoch() -> tuple[int, int]:
        local = _fresh(work, "peer-local")
        try:
            return epoch(dataset(local))  # dropped on return (MosaicML frees its shared memory then)
        finally:
            shutil.rmtree(local, ignore_errors=True)

    rows = []
    took, n, nb = best_of(repeat, first_epoch)
    rows.append(row(spec, f"{name} 1st epoch (shuffled)", took, n, nb, None))
    local = _fresh(work, "peer-local")
    try:
        kept = [dataset(local)]
        epoch(kept[0])  # downloads: the epochs timed next read the local copy
        took, n, nb = mean_of(max(repeat, CACHED_EPOCHS), lambda: epoch(kept[0]))  # as the stream's: a mean
        kept.clear()
    finally:
        shutil.rmtree(local, ignore_errors=True)
    rows.append(row(spec, f"{name} next epochs, {cached} (shuffled)", took, n, nb, None))
    return rows


def litdata_remote_rows(spec: Spec, label: str, url: str, storage_options: dict[str, Any], work: Path,
                        repeat: int) -> list[dict[str, Any]]:
    """LitData's rows: ``StreamingDataset(url, storage_options=..., cache_dir=...)``."""
    from litdata import StreamingDataset

    def dataset(cache: Path) -> Any:
        return StreamingDataset(url, storage_options=storage_options, cache_dir=str(cache), shuffle=True, seed=0)

    def epoch(ds: Any) -> tuple[int, int]:
        n, nb, _first = _collate(ds, spec)
        return n, nb

    return first_and_next_epochs(spec, f"{label}: LitData", "its disk cache", dataset, epoch, work, repeat)


def mosaic_remote_rows(spec: Spec, label: str, url: str, work: Path, repeat: int) -> list[dict[str, Any]]:
    """MosaicML's rows: ``StreamingDataset(remote=url, local=...)``."""
    _writer, StreamingDataset = import_mosaic()

    def dataset(local: Path) -> Any:
        return StreamingDataset(remote=url, local=str(local), shuffle=True, shuffle_seed=0, batch_size=spec.batch)

    def epoch(ds: Any) -> tuple[int, int]:
        return batches(((s["x"], s["y"]) for s in ds), spec)

    return first_and_next_epochs(spec, f"{label}: MosaicML", "its local copy", dataset, epoch, work, repeat)


def _write_mds(spec: Spec, out: Path) -> None:
    MDSWriter, _dataset = import_mosaic()
    shape = ",".join(map(str, spec.shape))
    with MDSWriter(out=str(out), columns={"x": f"ndarray:uint8:{shape}", "y": "int"}, size_limit=SHARD_BYTES) as sink:
        for X, labels in images(spec):
            for x, y in zip(X, labels):
                sink.write({"x": x, "y": int(y)})


def peer_rows(label: str, blobs_uri: str, blob_options: dict[str, Any], datasets: list[Spec], repeat: int,
              work: Path) -> list[dict[str, Any]]:
    """Every installed peer's rows for ``datasets``, read from the S3 server the stream's ``blobs_uri`` names."""
    endpoint, bucket, creds = s3_location(blobs_uri, blob_options)
    client = _client(endpoint, creds)
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)  # the stream's store makes it on first write: these rows may come first
    peers: list[tuple[str, Callable[[Spec, Path], None], Callable[..., list[dict[str, Any]]]]] = []
    if litdata_installed():
        options = {"endpoint_url": endpoint, "region_name": "us-east-1", **creds}
        peers.append(("litdata", _write_litdata,
                      lambda spec, url, scratch: litdata_remote_rows(spec, label, url, options, scratch, repeat)))
    if importlib.util.find_spec("streaming") is not None:
        peers.append(("mds", _write_mds, lambda spec, url, scratch: mosaic_remote_rows(spec, label, url, scratch, repeat)))
    if len(peers) < 2:
        print(f"[{label}] LitData and MosaicML streaming measured only where installed: {[p[0] for p in peers]}",
              file=sys.stderr)
    rows: list[dict[str, Any]] = []
    keys = {"S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": creds.get("aws_access_key_id", ""),
            "AWS_SECRET_ACCESS_KEY": creds.get("aws_secret_access_key", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    for spec in datasets:
        for name, write, measure in peers:
            scratch = _fresh(work, f"{name}-{spec.name}")
            try:
                began = time.perf_counter()
                write(spec, scratch / "out")
                prefix = f"{PREFIX}/{name}/{spec.name}"
                files = upload(client, scratch / "out", bucket, prefix)
                print(f"[{spec.name} {label}] {name}: wrote and uploaded {files} files in "
                      f"{time.perf_counter() - began:.1f}s", file=sys.stderr)
                with environment(**keys):
                    rows += measure(spec, f"s3://{bucket}/{prefix}", scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return rows


def versus_remote_peers(rows: list[dict[str, Any]], label: str = "s3") -> list[dict[str, Any]]:
    """Per dataset, the issue's remote ratios from one run's rows: the stream's first epoch against each peer's,
    and its disk-cached later epochs against each peer's cached ones (targets 1.4x and 1.0x against LitData)."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        by = {r["row"]: r["samples_per_s"] for r in rows if r["dataset"] == name}
        ours_first = by.get(f"{label}: stream 1st epoch (shuffled)")
        ours_cached = by.get(f"{label}: stream next epochs, disk cache (shuffled)")
        entry: dict[str, Any] = {"dataset": name}
        for peer, cached in (("LitData", "its disk cache"), ("MosaicML", "its local copy")):
            first = by.get(f"{label}: {peer} 1st epoch (shuffled)")
            later = by.get(f"{label}: {peer} next epochs, {cached} (shuffled)")
            if first and ours_first:
                entry[f"1st epoch vs {peer}"] = round(ours_first / first, 2)
            if later and ours_cached:
                entry[f"later epochs (disk cache) vs {peer}"] = round(ours_cached / later, 2)
        if len(entry) > 1:
            out.append(entry)
    return out


__all__ = ["peer_rows", "s3_location", "versus_remote_peers"]
