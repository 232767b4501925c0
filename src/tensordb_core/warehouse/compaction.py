"""Compaction: rewrite chunks that are mostly dead, so deleting most of a warehouse gives its space back.

Why: a chunk holds the segments of many samples; deleting 90% of the samples
at random leaves nearly every chunk with a few live segments, and gc can
delete only chunks *no* sample references.  Compaction rewrites such a chunk's
live segments into a new chunk (a content address like any other, written
under a write intent), repoints each document that referenced the old chunk
(one conditional update per document: ``{_id, <ref>.key: old}``, so a
document deleted or already repointed meanwhile is left alone) and leaves the
old chunk to gc's normal rule: an intent recorded for it now keeps it for the
grace period, so a reader that planned its reads on the old references
finishes them.  Documents of dataset versions (members) are repointed with
the samples they pin; a member copied from an old reference after the
repointing keeps the old chunk referenced, which is then simply not freed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.store.blobkit import verify_content
from tensordb_core.store.generations import bump_data_generation
from tensordb_core.store.protocols import BlobStore, IndexStore
from tensordb_core.store.scope import DATA, INTENTS, MEMBERS, StudyScope
from tensordb_core.warehouse.commits import PENDING_PREFIX

#: Chunks whose live bytes are under this fraction of their size are rewritten by default.
COMPACT_BELOW = 0.5
_PROJECTION = {"_x": 1, "_y": 1, "_chunk": 1, "_fields": 1, "_study": 1}


@dataclass
class _Chunk:
    size: int = 0
    segments: set[tuple[int, int]] = field(default_factory=set)  # live (offset, length), deduplicated
    docs: list[tuple[str, str]] = field(default_factory=list)  # (collection, doc id)

    def live(self) -> int:
        return sum(length for _, length in self.segments)


@dataclass
class CompactReport:
    """What a compaction did: chunks rewritten, their bytes before and the new chunks' bytes."""

    chunks: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    documents: int = 0


def _refs(doc: Mapping[str, Any]) -> Iterable[tuple[str, int, int, int]]:
    """``(chunk key, chunk size, offset, length)`` of every segment a sample or member document references."""
    for name in ("_x", "_y"):
        ref = doc.get(name)
        if isinstance(ref, Mapping) and isinstance(ref.get("key"), str):
            yield ref["key"], int(ref.get("chunk_size") or 0), int(ref["offset"]), int(ref["length"])
    chunk = doc.get("_chunk")
    if isinstance(chunk, Mapping) and isinstance(chunk.get("key"), str):
        for seg in (doc.get("_fields") or {}).values():
            yield chunk["key"], int(chunk.get("size") or 0), int(seg["offset"]), int(seg["length"])


def survey(index: IndexStore) -> dict[str, _Chunk]:
    """Every chunk committed samples and dataset members reference, with its live segments."""
    chunks: dict[str, _Chunk] = {}
    for collection in (DATA, MEMBERS):
        for doc in index.find(collection, {}, projection=_PROJECTION, batch_size=5000):
            if str(doc.get("_study", "")).startswith(PENDING_PREFIX):
                continue
            for key, size, offset, length in _refs(doc):
                chunk = chunks.setdefault(key, _Chunk())
                chunk.size = max(chunk.size, size)
                chunk.segments.add((offset, length))
                if not chunk.docs or chunk.docs[-1] != (collection, doc["_id"]):
                    chunk.docs.append((collection, doc["_id"]))
    return chunks


def compact(index: IndexStore, blobs: BlobStore, *, below: float = COMPACT_BELOW,
            progress: Callable[[int], None] | None = None) -> CompactReport:
    """Rewrite every chunk whose live bytes are under ``below`` of its size; see the module docs."""
    report = CompactReport()
    writer = StudyScope(index, blobs, None)
    for key, chunk in survey(index).items():
        if chunk.size <= 0 or not chunk.segments or chunk.live() >= below * chunk.size:
            continue
        old = blobs.get(key)
        verify_content(key, old)
        moved, parts, at = {}, [], 0
        for offset, length in sorted(chunk.segments):
            moved[offset] = at
            parts.append(old[offset:offset + length])
            at += length
        body = b"".join(parts)
        # An intent on the old chunk *before* any document leaves it: from the first repoint on, nothing may
        # reference it, and without the intent a concurrent gc could take it from readers still planned on it.
        index.insert_many(INTENTS, [{"key": key, "at": time.time()}])
        with writer.writing_blobs() as put:
            new = put(body)
            for collection, doc_id in chunk.docs:
                _repoint(index, collection, doc_id, key, new, len(body), moved)
        bump_data_generation(index)  # memos holding the old references re-read before the old chunk's grace ends
        report.chunks += 1
        report.bytes_before += chunk.size
        report.bytes_after += len(body)
        report.documents += len(chunk.docs)
        if progress is not None:
            progress(1)
    return report


def _repoint(index: IndexStore, collection: str, doc_id: str, old: str, new: str, size: int,
             moved: Mapping[int, int]) -> None:
    """Point one document's references into ``old`` at their segments' places in ``new`` (if still ``old``)."""
    doc = next(iter(index.find(collection, {"_id": doc_id}, limit=1, projection=_PROJECTION)), None)
    if doc is None:
        return
    for name in ("_x", "_y"):
        ref = doc.get(name)
        if isinstance(ref, Mapping) and ref.get("key") == old:
            index.update_many(collection, {"_id": doc_id, f"{name}.key": old},
                              {"$set": {f"{name}.key": new, f"{name}.chunk_size": size,
                                        f"{name}.offset": moved[int(ref["offset"])]}})
    chunk = doc.get("_chunk")
    if isinstance(chunk, Mapping) and chunk.get("key") == old:
        fields = {f"_fields.{name}.offset": moved[int(seg["offset"])] for name, seg in (doc.get("_fields") or {}).items()}
        index.update_many(collection, {"_id": doc_id, "_chunk.key": old},
                          {"$set": {"_chunk.key": new, "_chunk.size": size, **fields}})


__all__ = ["COMPACT_BELOW", "CompactReport", "compact", "survey"]
