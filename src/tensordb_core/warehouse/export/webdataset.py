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
from typing import Any, BinaryIO

import numpy as np

from tensordb_core.warehouse.export.source import Page, Schema

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


#: A tar archive ends with two zero blocks and is padded to a whole record, as tar(1) and Python's tarfile write it.
_BLOCK, _RECORD = 512, 10240


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """A POSIX ustar header for a regular file (mode 0444); pax for a name over 100 bytes or a size over 8 GiB.

    Written by hand because ``tarfile.TarInfo.tobuf`` costs ~70 us a member,
    which was half the time of a WebDataset export of small samples.
    """
    raw = name.encode()
    if len(raw) > 100 or size >= 8 ** 11:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, 0o444
        return info.tobuf(tarfile.PAX_FORMAT)
    header = bytearray(_BLOCK)
    header[0:len(raw)] = raw
    header[100:124] = b"0000444\x000000000\x000000000\x00"  # mode, uid, gid
    header[124:136] = b"%011o\x00" % size
    header[136:148] = b"%011o\x00" % mtime
    header[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    header[156:157] = b"0"  # a regular file
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\x00 " % sum(header)
    return bytes(header)


class _Shards:
    """The shard being written, and when to start the next one."""

    def __init__(self, directory: Path, max_samples: int, max_bytes: int) -> None:
        self.directory, self.max_samples, self.max_bytes = directory, max_samples, max_bytes
        self.number, self.samples, self.nbytes = -1, 0, 0
        self.file: BinaryIO | None = None
        self.mtime = int(time.time())

    def add(self, members: list[tuple[str, bytes]]) -> None:
        if self.file is None or self.samples >= self.max_samples or self.nbytes >= self.max_bytes:
            self.close()
            self.number += 1
            self.samples = self.nbytes = 0
            self.file = open(self.directory / f"{self.directory.name}-{self.number:06d}.tar", "wb")  # noqa: SIM115
        parts = []
        for name, data in members:
            parts += [tar_header(name, len(data), self.mtime), data, bytes(-len(data) % _BLOCK)]
        block = b"".join(parts)
        self.file.write(block)
        self.nbytes += len(block)
        self.samples += 1

    def close(self) -> None:
        """End the shard as tar does: two zero blocks, then zeros up to a whole record."""
        if self.file is not None:
            end = self.nbytes + 2 * _BLOCK
            self.file.write(bytes(2 * _BLOCK + (-end % _RECORD)))
            self.file.close()
            self.file = None


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
