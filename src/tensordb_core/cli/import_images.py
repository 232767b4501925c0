"""``tensordb import-images``: an ImageFolder directory into a study, JPEG and PNG bytes kept as they are.

The layout is torchvision's ImageFolder: ``ROOT/<class>/.../<file>``.  Each
image becomes one record::

    {"image": Encoded(<the file's bytes>, "jpeg" | "png"), "label": <int>, "label_name": "<class>",
     "path": "<class>/.../<file>", "sha256": "<hex of the bytes>"}

Why these choices:

* The bytes are stored as they are (no decode, no re-encode): the study holds
  exactly the files, so an epoch decodes the same pixels the files hold and the
  store is the size of the files.
* ``label`` is the class's index among the sorted class names (what
  ImageFolder gives), so a model trained on either agrees; ``label_name`` keeps
  the name queryable.
* The codec comes from the file's first bytes, not its extension: a PNG named
  ``.jpg`` is stored as PNG, a text file named ``.jpg`` is refused by name.
* Files stream from disk through a generator into ``import_records``: only
  the file names (not the bytes) are held, so the folder may be larger than
  memory.
* Resumable: ``path`` + ``sha256`` identify a file already imported in this
  study, so a rerun after a kill (or after new files arrived) imports only the
  rest; a file whose bytes changed is imported again as a new record.
* Committed in batches: each ``import_records`` call is all or nothing
  (warehouse/commits.py), so one call over a whole folder would lose every
  file to a kill near its end.  Every :data:`COMMIT_FILES` files (or
  :data:`COMMIT_BYTES` of them) are one call: a kill loses at most the batch
  in flight, and the rerun picks up from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensordb_core.errors import CodecError, InvalidDocument, NotFound, TensorDBError
from tensordb_core.format.media import Encoded, probe_image

#: Extensions considered images (lower-cased); every other file is skipped and counted by extension.
EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png"})
#: First bytes of each codec the command keeps as is.
MAGIC = (("jpeg", b"\xff\xd8\xff"), ("png", b"\x89PNG\r\n\x1a\n"))
#: The record field holding the image; ``label``, ``label_name``, ``path`` and ``sha256`` are beside it.
IMAGE_FIELD = "image"
#: Fields the command writes itself; ``--tags`` may not use them.
FIELDS = frozenset({IMAGE_FIELD, "label", "label_name", "path", "sha256"})


class FolderNotFound(NotFound, FileNotFoundError):
    """The ImageFolder root does not exist or is not a directory."""


class UnreadableFile(TensorDBError, OSError):
    """An image file could not be read (permissions, I/O error); the message names it."""


class NotAnImage(CodecError):
    """A file with an image extension holds neither JPEG nor PNG bytes; the message names it."""


class ClassesChanged(InvalidDocument):
    """The folder's class list would give a class another ``label`` than the study's earlier import gave it."""


@dataclass(frozen=True)
class ImageFile:
    """One candidate image: its path relative to the root (POSIX form, the ``path`` field) and its class."""

    rel: str
    path: Path
    class_name: str
    size: int


@dataclass
class Scan:
    """What is in the folder: sorted class names, the candidate images in import order, what was passed over."""

    classes: list[str]
    files: list[ImageFile]
    other: Counter[str] = field(default_factory=Counter)  # extension (or "(no class folder)") -> count


@dataclass
class Summary:
    """The command's result: what was imported and what was skipped, and why."""

    imported: int = 0
    bytes: int = 0
    already: int = 0
    changed: int = 0
    undecodable: int = 0
    other: Counter[str] = field(default_factory=Counter)
    classes: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.already + self.undecodable + sum(self.other.values())

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "bytes": self.bytes, "skipped": self.skipped, "already": self.already,
                "changed": self.changed, "undecodable": self.undecodable, "other": dict(self.other),
                "classes": self.classes, "seconds": round(self.seconds, 3)}

    def line(self) -> str:
        rate = self.imported / self.seconds if self.seconds else 0.0
        out = (f"imported {self.imported} file(s), {self.bytes / 1e6:.1f} MB, from {self.classes} class(es) "
               f"in {self.seconds:.1f}s ({rate:.0f} files/s); skipped {self.skipped}")
        why = [f"{self.already} already imported"] if self.already else []
        why += [f"{self.undecodable} not images"] if self.undecodable else []
        why += [f"{n} {ext}" for ext, n in sorted(self.other.items())]
        if self.changed:
            why.append(f"{self.changed} changed since the last import were imported again")
        return out + (f" ({', '.join(why)})" if why else "")


def parse_tags(text: str | None) -> dict[str, Any] | None:
    """``--tags '{"split": "train"}'``: a JSON object shared by every imported record."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(f"--tags must be a JSON object, e.g. '{{\"split\": \"train\"}}': {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidDocument(f"--tags must be a JSON object, not {type(value).__name__}")
    return value


def scan(root: str | os.PathLike[str]) -> Scan:
    """The ImageFolder layout under ``root``, in a deterministic order (by class name, then by relative path).

    Only names and sizes are read here; hidden files and folders (``.name``)
    are ignored, as a file browser would.
    """
    base = Path(root)
    if not base.is_dir():
        what = "is not a directory" if base.exists() else "does not exist"
        raise FolderNotFound(f"{str(base)!r} {what}: pass the ImageFolder root, whose subfolders are the classes "
                             f"(ROOT/<class>/<image>.jpg)")
    classes = sorted(e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
    out = Scan(classes, [])
    out.other.update("(no class folder)" for e in os.scandir(base) if e.is_file() and not e.name.startswith("."))
    for name in classes:
        start = len(out.files)
        for folder, dirs, files in os.walk(base / name):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for fname in sorted(files):
                if fname.startswith("."):
                    continue
                path = Path(folder) / fname
                ext = path.suffix.lower()
                if ext not in EXTENSIONS:
                    out.other[ext or "(no extension)"] += 1
                    continue
                try:
                    size = path.stat().st_size
                except OSError:  # a dangling link: reading it raises UnreadableFile, naming it, in order
                    size = 0
                out.files.append(ImageFile(path.relative_to(base).as_posix(), path, name, size))
        out.files[start:] = sorted(out.files[start:], key=lambda f: f.rel)
    return out


def read_image(f: ImageFile) -> tuple[bytes, str]:
    """The file's bytes and their codec (by magic bytes, header checked); typed errors naming the file."""
    try:
        data = f.path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read {f.rel!r}: {exc.strerror or exc}; fix its permissions or remove it "
                             f"(files already imported are skipped when you rerun)") from exc
    codec = next((name for name, magic in MAGIC if data.startswith(magic)), None)
    if codec is None:
        raise NotAnImage(f"{f.rel!r} is neither a JPEG nor a PNG (first bytes {data[:8]!r}); remove it, or pass "
                         f"--on-error skip to skip and count such files")
    try:
        probe_image(data, codec)  # the header the import reads: refused here, by file name, not by record number
    except CodecError as exc:
        raise NotAnImage(f"{f.rel!r} starts like a {codec} file but its header is unreadable ({exc}); remove it, "
                         f"or pass --on-error skip to skip and count such files") from exc
    return data, codec


@dataclass
class Imported:
    """What the study already holds, as 16-byte keys: a million files cost ~100 MB here, not ~300 MB of strings."""

    files: set[bytes] = field(default_factory=set)  # key(path, sha256)
    paths: set[bytes] = field(default_factory=set)  # key(path)

    @staticmethod
    def key(*parts: str) -> bytes:
        return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest()

    def add(self, path: str, sha256: str) -> None:
        self.files.add(self.key(path, sha256))
        self.paths.add(self.key(path))


def imported_files(db: Any) -> tuple[Imported, dict[str, int]]:
    """The study's earlier imports (path + sha256 of each) and their ``{label_name: label}``.

    Read with a projection of the four small fields, so resuming a large
    import reads a few bytes per document, not the documents' locators.
    """
    from tensordb_core.stream.refs import COLLECTION

    seen = Imported()
    labels: dict[str, int] = {}
    query = db.scope.query({"path": {"$exists": True}, "sha256": {"$exists": True}})
    for doc in db.index.find(COLLECTION, query, projection={"path": 1, "sha256": 1, "label": 1, "label_name": 1}):
        seen.add(doc["path"], doc["sha256"])
        if isinstance(doc.get("label_name"), str) and isinstance(doc.get("label"), int):
            labels.setdefault(doc["label_name"], doc["label"])
    return seen, labels


def check_labels(classes: list[str], earlier: Mapping[str, int]) -> dict[str, int]:
    """``{class: label}`` by sorted class names, refusing a class whose earlier label would change."""
    mapping = {name: i for i, name in enumerate(classes)}
    moved = {k: (v, mapping[k]) for k, v in earlier.items() if k in mapping and mapping[k] != v}
    if moved:
        shown = ", ".join(f"{k!r}: {a} -> {b}" for k, (a, b) in sorted(moved.items())[:5])
        raise ClassesChanged(f"the class list changed since this study's earlier import, so labels would move "
                             f"({shown}); import into a new --study, or keep the same class folders")
    return mapping




def records(found: Scan, labels: Mapping[str, int], seen: Imported, summary: Summary, *,
            on_error: str = "raise", limit: int | None = None,
            advance: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """One record per new image, read lazily; ``summary`` counts what is passed over.

    ``advance(1)`` is called for every file looked at (imported or skipped),
    so a progress bar over ``len(found.files)`` reaches its total.
    """
    for f in found.files:
        if limit is not None and summary.imported >= limit:
            return
        try:
            data, codec = read_image(f)
        except NotAnImage:
            if on_error != "skip":
                raise
            summary.undecodable += 1
            if advance:
                advance(1)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if seen.key(f.rel, digest) in seen.files:
            summary.already += 1
        else:
            summary.changed += seen.key(f.rel) in seen.paths
            summary.imported += 1
            summary.bytes += len(data)
            yield {IMAGE_FIELD: Encoded(data, codec), "label": labels[f.class_name], "label_name": f.class_name,
                   "path": f.rel, "sha256": digest}
        if advance:
            advance(1)


#: Files, and bytes of them, per atomic import call (see the module docstring).
COMMIT_FILES = 1000
COMMIT_BYTES = 256 << 20


def batches(items: Iterator[dict[str, Any]], files: int, size: int) -> Iterator[Iterator[dict[str, Any]]]:
    """``items`` cut into consecutive lazy batches of at most ``files`` records or about ``size`` image bytes.

    Lazy: a batch is read from ``items`` while it is imported, so no batch is
    ever held in memory whole.
    """
    source = iter(items)
    ended = False

    def one(first: dict[str, Any]) -> Iterator[dict[str, Any]]:
        nonlocal ended
        count, total = 1, len(first[IMAGE_FIELD].data)
        yield first
        while count < files and total < size:
            nxt = next(source, None)
            if nxt is None:
                ended = True
                return
            count, total = count + 1, total + len(nxt[IMAGE_FIELD].data)
            yield nxt

    while not ended:
        first = next(source, None)
        if first is None:
            return
        yield one(first)


def import_images(db: Any, root: str | os.PathLike[str] | Scan, *, tags: Mapping[str, Any] | None = None,
                  chunk_bytes: int | None = None, on_error: str = "raise", limit: int | None = None,
                  progress: Callable[[int], None] | None = None, commit_files: int = COMMIT_FILES) -> Summary:
    """Import the ImageFolder at ``root`` into ``db``'s study; see the module docstring for the record layout.

    ``root`` may be an earlier :func:`scan` of it (the CLI scans first, to size its progress bar);
    ``progress(n)`` counts files looked at, up to ``len(scan(root).files)``;
    ``commit_files`` new files (at most) become visible together.
    """
    if on_error not in ("raise", "skip"):
        raise InvalidDocument(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if type(commit_files) is not int or commit_files < 1:
        raise InvalidDocument(f"commit_files must be a positive int, not {commit_files!r}")
    clash = FIELDS & set(tags or {})
    if clash:
        raise InvalidDocument(f"--tags may not set {sorted(clash)}: import-images writes those fields itself")
    began = time.perf_counter()
    found = root if isinstance(root, Scan) else scan(root)
    seen, earlier = imported_files(db)
    labels = check_labels(found.classes, earlier)
    summary = Summary(other=Counter(found.other), classes=len(found.classes))
    kwargs: dict[str, Any] = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    stream = records(found, labels, seen, summary, on_error=on_error, limit=limit, advance=progress)
    for batch in batches(stream, commit_files, COMMIT_BYTES):
        db.import_records(batch, tags=dict(tags) if tags else None, **kwargs)
    summary.seconds = time.perf_counter() - began
    return summary
