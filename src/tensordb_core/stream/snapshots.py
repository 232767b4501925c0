"""Sample-reference tables kept on local disk, so a new process's first epoch starts without reading the index.

Why: a stream's first epoch reads every matching index document to learn
where each sample lies (chunk, offset, length, crc32, format, label); on the
embedded index that is ~5.5 µs of CPU a document (SQLite parses each JSON
document, Python the answer), about a fifth of a small-sample first epoch on
2 cores, and seconds for a million samples, paid again by every run of a
training script and by every loader worker.  The in-process memo
(stream/memo.py) spares later streams of one process; this keeps the table
for the next process, as LitData and MosaicML streaming keep an index file
beside their shards.  On ``data_stream(..., cache_dir=...)``.

What is kept: one query's :class:`~tensordb_core.stream.refs.RefTable` on
one index, with the ``_seq`` bound it holds and the data generation it was
read in, as an array archive of the format's own (``format.codec.encode_archive``,
uncompressed: numpy columns, labels too where they are all ints, floats or
bools, the ids as one NUL-separated text and where each ends, and one JSON member with the chunk
keys, formats and other labels; every member 64-byte aligned, so a loaded table's
columns (its ids too) are the mapped file's own bytes, not copies: a million rows
loaded in ~14 ms in a new loader worker, and froze in ~5, against ~75 and 55-210
copied; its ``_seq`` column alone, what a shard counts its blocks from, in ~3),
stored *content-addressed* in the stream's disk cache
(stream/disk_cache.py: its byte bound and LRU eviction apply; the archive's
crc32 per column checks it when read, where a chunk's sha256 is checked:
hashing a 1M-row table took ~50 ms of its ~150 ms load), found through a
small pointer file ``refs/<name>`` named by the sha256 of the index and the
query; an evicted or damaged table drops its pointer too, so the next
stream that reads the index keeps it anew.  Nothing is unpickled: plain
dtypes and JSON.

Why a kept table is never stale: the rule of the in-process memo.  It is
used only while the index's data generation (store/generations.py) reads
what it read before the table was built: every relabel, delete and
compaction moves it.  Imports only append, and a stream reads the documents
past the table's bound from the index (``_seq`` order) before its epoch.
The name holds the index's identity (store/owners.py: a random id kept in
the index) and its URI, so neither a copy of a warehouse nor a new
warehouse made at the same path finds another's table.  Tables whose rows
only documents describe (records, ``_y`` labels, malformed references) and
labels that are not JSON values are not kept; a file that fails to load is
ignored (the index is read as without a cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import weakref
from collections.abc import Collection, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from tensordb_core.errors import TensorDBError
from tensordb_core.format import jsontext
from tensordb_core.format.codec import decode_archive, encode_archive
from tensordb_core.store.owners import IDENTITY
from tensordb_core.store.protocols import IndexStore
from tensordb_core.stream.disk_cache import DiskChunkCache
from tensordb_core.stream.refs import PackedIds, RefTable

#: The layout of a kept table; a file of another layout is never read.
SNAPSHOT_FORMAT = 1
#: The cache's subdirectory of pointer files (the chunk files' fan-out directories are two hex digits).
POINTERS = "refs"
#: Between the ids in their one column.  Why not JSON: a million ids parsed in 0.8 s, split in 0.15 s.
_SEP = "\x00"


def index_identity(index: IndexStore) -> str | None:
    """The index's id and URI (password and secrets redacted), or None while it has no id: nothing was ever
    imported into it, and reading must not write one (store/owners.py).  Asked once per store object (an id
    never changes): a find cost 1-6 ms of a stream's start."""
    known = _IDENTITIES.get(index)
    if known is None:
        found = next(iter(index.find(IDENTITY, {"_id": "index"}, limit=1)), None)
        if found is None:
            return None
        known = _IDENTITIES[index] = f"{found['id']} {index.uri.redacted()}"
    return known


_IDENTITIES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class RefSnapshots:
    """Reference tables by (index identity, memo key), kept in a :class:`DiskChunkCache`."""

    def __init__(self, cache: DiskChunkCache) -> None:
        self.cache = cache

    def _name(self, identity: str, key: Hashable) -> tuple[str, Path]:
        spelled = json.dumps([SNAPSHOT_FORMAT, identity, key], default=repr)
        return spelled, self.cache.directory / POINTERS / hashlib.sha256(spelled.encode()).hexdigest()

    @staticmethod
    def _pointer(path: Path) -> dict[str, Any] | None:
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def _read(self, identity: str, key: Hashable, generation: int, most_seqs: int | None = None,
              names: Collection[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any], Path] | None:
        """The arrays of the table kept for ``key`` (only ``names``, given them), its JSON member and its pointer's
        path; None when none is kept in ``generation``, its bound is past ``most_seqs``, or it does not load."""
        spelled, path = self._name(identity, key)
        pointer = self._pointer(path)
        if pointer is None or pointer.get("generation") != generation or not isinstance(pointer.get("digest"), str):
            return None
        if most_seqs is not None and not (isinstance(pointer.get("scanned"), int) and pointer["scanned"] <= most_seqs):
            return None
        data = self.cache.get(pointer["digest"], check=False)  # decode_archive checks each column's crc32
        try:  # the format's own: plain dtypes only
            arrays = decode_archive(data, names=None if names is None else {*names, "lists"}) if data is not None \
                else None
        except TensorDBError:
            arrays = None
            self.cache.discard(pointer["digest"])
        if not isinstance(arrays, dict):  # evicted, damaged or foreign: the pointer goes too, so it is kept anew
            if self._pointer(path) == pointer:  # (unless another process just renamed a new one into place)
                with contextlib.suppress(OSError):
                    path.unlink()
            return None
        try:
            lists = jsontext.loads(arrays.pop("lists").tobytes())
        except (TensorDBError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(lists, dict) or (lists.get("format"), lists.get("name"), lists.get("generation")) != (
                SNAPSHOT_FORMAT, spelled, generation) or not isinstance(lists.get("scanned"), int):
            return None
        return arrays, lists, path

    def load(self, identity: str, key: Hashable, generation: int, most_seqs: int | None = None
             ) -> tuple[RefTable, int] | None:
        """The table kept for ``key`` on this index in data generation ``generation`` and the ``_seq`` bound it
        holds; None when none is kept, it belongs to another generation, its bound is past ``most_seqs``
        (None: any), or its file does not load."""
        found = self._read(identity, key, generation, most_seqs)
        if found is None:
            return None
        arrays, lists, path = found
        try:
            ends = arrays.pop("id_ends", None)  # (absent from a table kept before they were)
            ends = np.require(ends, np.int64, ["C", "A"]) if ends is not None else None
            lists["ids"] = PackedIds(arrays.pop("ids").data, _SEP, ends) if len(arrays["seq"]) else []  # in place
            if "labels" not in lists:  # a column, used where it lies like the others (aligned, else copied)
                lists["labels"] = np.require(arrays.pop("labels"), requirements=["C", "A"])
            table, scanned = RefTable.from_parts(arrays, lists), int(lists["scanned"])
        except (TensorDBError, ValueError, KeyError, TypeError):
            return None
        if table.last_seq > scanned:
            return None
        with contextlib.suppress(OSError):  # the cache's LRU clock, as a hit on the table itself sets
            os.utime(path)
        return table, scanned

    def load_seqs(self, identity: str, key: Hashable, generation: int) -> tuple[np.ndarray, int] | None:
        """The ``_seq`` column alone of the table :meth:`load` would give, and its bound (None as there).

        Why: a shard's place in the epoch comes from counting each block's
        rows, which this column answers (8 MB at 1M rows, read and checked in
        ~3 ms) where the whole table takes ~25 ms to load in a new loader
        worker and the index ~60 ms of SQLite to count; the rows come later,
        loaded beside the first batch (:meth:`~tensordb_core.stream.memo.IndexMemo.load_later`).
        """
        found = self._read(identity, key, generation, names=("seq",))
        if found is None or "seq" not in found[0]:
            return None
        seq, scanned = found[0]["seq"], int(found[1]["scanned"])
        if seq.dtype != np.int64 or seq.ndim != 1 or (len(seq) and int(seq[-1]) > scanned):
            return None
        return np.require(seq, requirements=["C", "A"]), scanned

    def save(self, identity: str, key: Hashable, table: RefTable, scanned: int, generation: int) -> bool:
        """Keep ``table`` (every match with ``_seq <= scanned``, read in ``generation``) unless a table as far
        read in this generation is kept already; True when written."""
        spelled, path = self._name(identity, key)
        pointer = self._pointer(path)
        if pointer is not None and pointer.get("generation") == generation and pointer.get("scanned", -1) >= scanned:
            return False
        parts = table.to_parts()
        if parts is None or table.last_seq > scanned:
            return False
        arrays, lists = parts
        ids, labels = lists.pop("ids"), lists["labels"]
        if isinstance(ids, PackedIds) and ids.sep == _SEP:  # a kept table's, as it was read
            joined, ends = ids.text, ids.ends
        else:
            text = _SEP.join(ids)
            if text.count(_SEP) != max(0, len(ids) - 1):
                return False  # an id holding the separator (a user's own _id): not kept
            joined = text.encode()
            ends = PackedIds(joined, _SEP).ends if ids else np.zeros(0, dtype=np.int64)
        arrays = {**arrays, "ids": np.frombuffer(joined, dtype=np.uint8), "id_ends": np.asarray(ends, np.int64)}
        if isinstance(labels, np.ndarray):  # a kept table's column, as it was read
            arrays["labels"] = labels
            del lists["labels"]
        elif (kinds := set(map(type, labels))) and (kinds <= {int} or kinds <= {float} or kinds <= {bool}):
            # the common labels: one column
            arrays["labels"] = np.asarray(labels)
            if arrays["labels"].dtype == object or arrays["labels"].tolist() != labels:
                return False  # an int past int64: kept in no column
            del lists["labels"]
        try:
            meta = json.dumps({"format": SNAPSHOT_FORMAT, "name": spelled, "generation": generation,
                               "scanned": scanned, **lists}, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError):  # a label that is not a JSON value (a BSON type from MongoDB)
            return False
        data = encode_archive({**arrays, "lists": np.frombuffer(meta, dtype=np.uint8)}, codec="none", align=64)
        digest = hashlib.sha256(data).hexdigest()
        self.cache.put(digest, data)
        try:  # the pointer last, renamed into place: a reader finds the old table or the new one, whole
            path.parent.mkdir(exist_ok=True)
            tmp = path.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"digest": digest, "generation": generation, "scanned": scanned}))
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk: the next process reads the index, as without a cache
            return False
        return True


__all__ = ["POINTERS", "SNAPSHOT_FORMAT", "RefSnapshots", "index_identity"]
