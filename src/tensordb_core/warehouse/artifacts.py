"""Run artifacts: files, figures, text and JSON, stored as content-addressed blobs in fixed-size parts.

Why parts: a checkpoint or a dataset export can be larger than memory.  A
file is read :data:`PART_SIZE` bytes at a time and each part is its own
content-addressed blob (verified on every read, deduplicated across runs);
the artifact document lists the parts in order with the whole file's sha256,
so :func:`stream_artifact` writes it back part by part and checks the whole.
Parts are written (announced by write intents) before the document, so gc
never removes a part and a document never names a missing one.

An artifact name is a plain file name: no path separator, no ``..``, no
control character.  Logging the same name again in a run adds a newer
version; lists and loads see the newest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from tensordb_core.errors import DocumentNotFound, IntegrityError, InvalidDocument
from tensordb_core.store.scope import StudyScope, check_json_value
from tensordb_core.warehouse.arguments import check_name as check_plain_name
from tensordb_core.warehouse.names import ARTIFACTS, RUNS

COLLECTION = ARTIFACTS
#: Bytes per part blob: big enough to keep per-blob overhead small, small enough to hold a few in memory.
PART_SIZE = 8 * 1024 * 1024
KINDS = ("file", "text", "json", "figure")
MEDIA = {"text": "text/plain; charset=utf-8", "json": "application/json", "figure": "image/png",
         "file": "application/octet-stream"}
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_name(name: Any) -> str:
    """A safe artifact name (one file name, never a path), or :class:`InvalidDocument`."""
    if not isinstance(name, str) or not name or len(name) > 255 or _BAD_NAME.search(name) \
            or name == "." or ".." in name:
        raise InvalidDocument(f"invalid artifact name {name!r}: a file name without '/', '\\\\', '..' or control "
                              "characters, at most 255 characters")
    return name


def _source(source: Any, name: str | None, kind: str | None) -> tuple[str, str, BinaryIO]:
    """``(kind, name, readable)`` for what :func:`log_artifact` accepts."""
    if kind == "text":
        if not isinstance(source, str):
            raise InvalidDocument("a text artifact is a str")
        return "text", check_name(name), io.BytesIO(source.encode("utf-8"))
    if kind == "json":
        text = json.dumps(check_json_value(source, "artifact"), sort_keys=True, indent=1)
        return "json", check_name(name), io.BytesIO(text.encode("utf-8"))
    if kind == "figure" or (kind is None and hasattr(source, "savefig")):
        buf = io.BytesIO()
        source.savefig(buf, format="png")
        buf.seek(0)
        return "figure", check_name(name), buf
    if kind not in (None, "file"):
        raise InvalidDocument(f"artifact kind must be one of {KINDS}, not {kind!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        if name is None:
            raise InvalidDocument("bytes need a name: run.log_artifact(data, name='weights.bin')")
        return "file", check_name(name), io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        final = check_name(name if name is not None else path.name)
        if not path.is_file():
            raise DocumentNotFound(f"no file {str(path)!r} to log as an artifact")
        return "file", final, path.open("rb")
    raise InvalidDocument(f"cannot log a {type(source).__name__} as an artifact: give a path, bytes, str text, "
                          "a JSON-like value (kind='json') or a matplotlib figure")


def _require_run(scope: StudyScope, run_id: str) -> None:
    if not isinstance(run_id, str) or scope.index.count(RUNS, scope.query({"_id": run_id})) != 1:
        raise DocumentNotFound(f"no run {run_id!r} in study {scope.study!r}")


def log_artifact(scope: StudyScope, run_id: str, source: Any, name: str | None = None, *,
                 kind: str | None = None) -> dict[str, Any]:
    """Store ``source`` for ``run_id``: parts first, then the document; returns the document."""
    scope.require_writable()
    _require_run(scope, run_id)
    kind, name, reader = _source(source, name, kind)
    whole, parts, size = hashlib.sha256(), [], 0
    with reader, scope.writing_blobs() as put:
        while True:
            part = reader.read(PART_SIZE)
            if not part and parts:
                break
            whole.update(part)
            parts.append({"key": put(part), "size": len(part)})
            size += len(part)
            if len(part) < PART_SIZE:
                break
        doc = scope.new_doc(run=run_id, name=name, kind=kind, media_type=MEDIA[kind], size=size,
                            sha256=whole.hexdigest(), parts=parts)
        scope.index.insert_many(COLLECTION, [doc])
    return doc


def list_artifacts(scope: StudyScope, run_id: str) -> list[dict[str, Any]]:
    """The newest version of each artifact of a run, by name (none for a run this study does not hold)."""
    check_plain_name(run_id, "run id")
    newest: dict[str, dict[str, Any]] = {}
    for doc in scope.index.find(COLLECTION, scope.query({"run": run_id}), sort=[("_seq", 1)]):
        newest[doc["name"]] = doc
    return [newest[k] for k in sorted(newest)]


def artifact_doc(scope: StudyScope, run_id: str, name: str) -> dict[str, Any]:
    """The newest document of artifact ``name`` of ``run_id`` in this study."""
    for doc in scope.index.find(COLLECTION, scope.query({"run": run_id, "name": name}), sort=[("_seq", -1)],
                                limit=1):
        return doc
    raise DocumentNotFound(f"run {run_id!r} of study {scope.study!r} has no artifact {name!r}")


def iter_parts(scope: StudyScope, doc: Mapping[str, Any]) -> Iterator[bytes]:
    """The artifact's bytes part by part, each checked against its address and the whole against ``sha256``."""
    whole = hashlib.sha256()
    for part in doc["parts"]:
        data = scope.get_blob(part["key"])
        whole.update(data)
        yield data
    if whole.hexdigest() != doc["sha256"]:
        raise IntegrityError(f"artifact {doc['name']!r} of run {doc['run']}: its parts do not hash to its sha256")


def load_artifact(scope: StudyScope, run_id: str, name: str, *, path: str | os.PathLike[str] | None = None) -> Any:
    """The artifact as logged (``str`` text, parsed JSON, else ``bytes``); with ``path``, streamed there instead.

    Streaming writes to ``<path>.partial`` and renames on success, so a failed
    check never leaves a plausible-looking file behind.
    """
    doc = artifact_doc(scope, run_id, name)
    if path is not None:
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                for data in iter_parts(scope, doc):
                    out.write(data)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target
    data = b"".join(iter_parts(scope, doc))
    if doc["kind"] == "text":
        return data.decode("utf-8")
    if doc["kind"] == "json":
        return json.loads(data)
    return data
