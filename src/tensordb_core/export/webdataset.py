"""WebDataset: a directory of POSIX tar shards, ``NAME-000000.tar``, ``NAME-000001.tar``, ... of ``{key}.{ext}`` members.

The WebDataset convention is that a sample is the run of tar members that
share a key (the name up to its first dot) and the rest of the name says how
to decode it.  The key is the sample's TensorDB id; its members are
(docs/export.md):

* ``{key}.{field}.jpg`` / ``.png`` — an encoded image, byte for byte as stored;
* ``{key}.{field}.npy`` — an array field (``np.save`` format);
* ``{key}.{field}.bin`` — an opaque bytes field;
* ``{key}.json`` — every JSON field (tags, labels, JSON record fields) as one object;
* ``{key}.cls`` — the ``label`` when it is an integer, as decimal text (WebDataset's class label).

A shard is closed after ``shard_samples`` samples or once it holds
``shard_bytes`` bytes, whichever comes first, so shards stay a size a
loader can shuffle and fetch.  Memory holds one page of samples.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tensordb_core.export.source import Page, Schema

_EXTENSIONS = {"jpeg": "jpg", "png": "png"}


def member_suffixes(schema: Schema) -> dict[str, str]:
    """Binary field -> the suffix of its member (``image`` -> ``image.jpg``); JSON fields go to ``json``/``cls``."""
    out = {}
    for spec in schema.fields.values():
        if spec.kind == "image":
            out[spec.name] = f"{spec.name}.{_EXTENSIONS[spec.codec or 'jpeg']}"
        elif spec.kind == "bytes":
            out[spec.name] = f"{spec.name}.bin"
        elif spec.kind == "array":
            out[spec.name] = f"{spec.name}.npy"
    return out


def _npy(value: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(value), allow_pickle=False)
    return out.getvalue()


class _Shards:
    """The shard being written, and when to start the next one."""

    def __init__(self, directory: Path, max_samples: int, max_bytes: int) -> None:
        self.directory, self.max_samples, self.max_bytes = directory, max_samples, max_bytes
        self.number, self.samples, self.nbytes = -1, 0, 0
        self.tar: tarfile.TarFile | None = None
        self.mtime = time.time()

    def add(self, members: list[tuple[str, bytes]]) -> None:
        if self.tar is None or self.samples >= self.max_samples or self.nbytes >= self.max_bytes:
            self.close()
            self.number += 1
            self.samples = self.nbytes = 0
            self.tar = tarfile.open(self.directory / f"{self.directory.name}-{self.number:06d}.tar", "w",
                                    format=tarfile.USTAR_FORMAT)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(self.mtime), 0o444
            self.tar.addfile(info, io.BytesIO(data))
            self.nbytes += 512 + len(data)
        self.samples += 1

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None


def write(stage: Path, pages: Iterable[Page], schema: Schema, options: dict[str, Any]) -> None:
    """Write ``stage`` (a directory) full of tar shards named after it."""
    suffixes = member_suffixes(schema)
    json_fields = [name for name, spec in schema.fields.items() if spec.kind == "json"]
    int_label = "label" in schema.fields and schema.fields["label"].json_type == "int"
    shards = _Shards(stage, options["shard_samples"], options["shard_bytes"])
    try:
        for page in pages:
            for key, record in zip(page.ids, page.records):
                members = []
                for name, suffix in suffixes.items():
                    value = record.get(name)
                    if value is not None:
                        data = bytes(value) if suffix.endswith((".jpg", ".png", ".bin")) else _npy(value)
                        members.append((f"{key}.{suffix}", data))
                if json_fields:
                    tags = {name: record[name] for name in json_fields if name in record}
                    members.append((f"{key}.json", json.dumps(tags, sort_keys=True).encode()))
                if int_label and isinstance(record.get("label"), int):
                    members.append((f"{key}.cls", str(record["label"]).encode()))
                shards.add(members)
    finally:
        shards.close()
