"""A byte-bounded on-disk cache of remote chunk bytes, shared by every stream, worker and process on a machine.

Why: a remote blob store (S3, GCS, Azure, GridFS) costs a request and the
transfer for every chunk every epoch, while a training run reads the same
chunks again each epoch.  Keeping the stored (compressed) chunks in a local
directory makes later epochs read at local-disk speed, as LitData and MosaicML
streaming do with their shard copies.  Off by default: ``data_stream(...,
cache_dir="/local/ssd/tensordb-cache", disk_cache_bytes=50 << 30)``, or for
every stream of a machine's processes that names no ``cache_dir``, the
environment's ``TENSORDB_CACHE_DIR`` (:func:`disk_cache_for`): where to cache
is the machine's business, like ``TENSORDB_URI``, so one training script
runs cached on a workstation and uncached elsewhere, unchanged.

Why it is safe to share: only *content-addressed* chunks are kept (a key whose
last segment is the sha256 of its bytes, which is how every data chunk is
stored), so a cached file can never be stale; two warehouses holding the same
chunk share one file.  Each file is written to a temporary name and renamed
into place (atomic on POSIX), so a reader sees a whole file or none.  A file
is checked against its content address (sha256) the first time a cache object
reads it; one that fails (a torn disk, a user's edit) is deleted and fetched
again from the store.  After that the stream's per-segment crc32 still checks
every sample it decodes.

Bound and eviction: the files' total size is kept under ``max_bytes``: a hit
sets the file's modification time to now, and when this process has written
about a tenth of the bound since it last looked, it lists the directory and
deletes the least recently used files until the total is under 90% of the
bound.  Several processes may evict at once; a file deleted under a reader is
a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tensordb_core.errors import BlobNotFound, TensorDBError
from tensordb_core.store.kit.cloud import is_content_address
from tensordb_core.store.kit.mapping import MAPPED_BYTES, KeptViews, map_range
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest, BlobStore

#: The default bound when only ``cache_dir`` is given.
DEFAULT_DISK_CACHE_BYTES = 8 << 30
#: Evict down to this fraction of the bound (so a full cache does not list its directory on every write).
LOW_WATER = 0.9
#: Temporary files older than this are leftovers of a crashed writer and are removed while evicting.
STALE_TMP_S = 3600.0


class DiskCacheError(TensorDBError, ValueError):
    """The disk cache's directory or size is unusable (not a directory, not writable, a bad bound)."""


#: The directory a stream given no ``cache_dir`` keeps its disk cache in (unset or empty: none).
CACHE_DIR_ENV = "TENSORDB_CACHE_DIR"


def disk_cache_for(cache_dir: str | os.PathLike[str] | DiskChunkCache | bool | None, max_bytes: int
                   ) -> DiskChunkCache | None:
    """The disk cache a stream's ``cache_dir`` names: a :class:`DiskChunkCache` as given, a directory (kept to
    ``max_bytes``), ``None`` for ``$TENSORDB_CACHE_DIR`` (unset or empty: no cache), ``False`` for none whatever
    the environment says.  An unusable directory is a :class:`DiskCacheError`, naming the variable when it
    came from there."""
    if cache_dir is False:
        return None
    if isinstance(cache_dir, DiskChunkCache):
        return cache_dir
    if cache_dir is True:
        raise DiskCacheError("cache_dir=True names no directory: give a path, None for $TENSORDB_CACHE_DIR, or False")
    if cache_dir is not None:
        return DiskChunkCache(cache_dir, max_bytes)
    named = os.environ.get(CACHE_DIR_ENV, "")
    if not named.strip():
        return None
    try:
        return DiskChunkCache(named, max_bytes)
    except DiskCacheError as exc:
        raise DiskCacheError(f"{CACHE_DIR_ENV}: {exc}") from None


class DiskChunkCache:
    """Chunk bytes by content address in ``directory`` (two-level fan-out), at most ``max_bytes`` in all.

    Picklable (a directory and a bound), so a torch ``DataLoader`` worker gets
    the same cache as its parent.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = DEFAULT_DISK_CACHE_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise DiskCacheError(f"disk_cache_bytes must be a positive number of bytes, not {max_bytes!r}")
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise DiskCacheError(f"cache_dir must be a directory path, not {directory!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DiskCacheError(f"cache_dir {str(self.directory)!r} cannot be created: {exc.strerror}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise DiskCacheError(f"cache_dir {str(self.directory)!r} is not a writable directory")
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._verified: set[tuple[str, int]] = set()  # (digest, size) checked against its address by this object
        self._written = 0
        self.hits = self.misses = self.refetched = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory, self.max_bytes = state["directory"], state["max_bytes"]
        self._init_runtime()

    @staticmethod
    def cacheable(key: str) -> bool:
        """Only content-addressed keys: their bytes are fixed by their name, so a copy never goes stale."""
        return is_content_address(key)

    def _path(self, key: str) -> Path:
        digest = key.rsplit("/", 1)[-1]
        return self.directory / digest[:2] / digest

    def get(self, key: str, start: int = 0, end: int | None = None, *, check: bool = True) -> memoryview | None:
        """A read-only view of bytes ``[start, end)`` of the cached chunk ``key`` (the file mapped, not copied),
        or None (absent, or failed its check and deleted).

        ``check=False``: the caller checks the bytes itself, so they are not
        hashed against their name here (a kept reference table, whose archive
        carries a crc32 per column: its sha256 was ~50 ms of a 1M-row table's
        ~150 ms load before a shard's first batch).

        Why mapped: a hit read the whole file into new bytes, a copy the
        stream then decoded from; later epochs over a cache ran 100-108k
        small samples/s at 16.4-17.3 µs of CPU each against 122-147k at
        12.0-13.7 for the same chunks mapped from a local store.  Safe as
        there (``store/kit/mapping.py``): a cached file is only ever renamed
        into place or unlinked, never changed, so a view stays valid and
        whole while it is held, even past an eviction.
        """
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            with self._lock:
                self.misses += 1
            return None
        try:
            size = os.fstat(fd).st_size
            whole = map_range(fd, 0, size)
        finally:
            os.close(fd)
        digest = path.name
        if check and (digest, size) not in self._verified:
            if hashlib.sha256(whole).hexdigest() != digest:
                self._discard(path)
                return None
            with self._lock:
                self._verified.add((digest, size))
        with contextlib.suppress(FileNotFoundError):  # evicted by another process meanwhile: the view stands
            os.utime(path)  # the LRU clock: now most recently used
        with self._lock:
            self.hits += 1
        return whole if start == 0 and end is None else whole[start:end]

    def discard(self, key: str) -> None:
        """Delete the cached ``key``, whose bytes its caller found damaged (read with ``check=False``)."""
        self._discard(self._path(key))

    def _discard(self, path: Path) -> None:
        with self._lock:
            self.refetched += 1
            self.misses += 1
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Keep a whole chunk (written under a temporary name, then renamed into place); evict when due."""
        size = len(data)
        if size > self.max_bytes:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(exist_ok=True)
            tmp = path.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk makes the cache a no-op, never a failed read
            try:
                tmp.unlink()
            except (OSError, UnboundLocalError):
                pass
            return
        with self._lock:
            self._verified.add((path.name, size))  # written from bytes the caller just fetched
            self._written += size
            due = self._written >= self.max_bytes // 10
            if due:
                self._written = 0
        if due:
            self.evict()

    def evict(self) -> int:
        """Delete least recently used files until the total is under ``LOW_WATER`` of the bound; return bytes freed."""
        files: list[tuple[float, int, str]] = []
        now = time.time()
        for sub in os.scandir(self.directory):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - st.st_mtime > STALE_TMP_S:
                        _unlink(entry.path)
                    continue
                files.append((st.st_mtime, st.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        if total <= self.max_bytes:
            return 0
        freed = 0
        for _, size, path in sorted(files):
            if total - freed <= LOW_WATER * self.max_bytes:
                break
            if _unlink(path):
                freed += size
        return freed

    def nbytes(self) -> int:
        """The bytes the directory holds now (all processes' files)."""
        return sum(e.stat().st_size for s in os.scandir(self.directory) if s.is_dir()
                   for e in os.scandir(s.path) if not e.name.startswith(".tmp-"))

    def __repr__(self) -> str:
        return f"DiskChunkCache({str(self.directory)!r}, max_bytes={self.max_bytes})"


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class DiskCachedBlobs:
    """The read side of a blob store with a :class:`DiskChunkCache` in front: what the stream's fetch stage calls.

    Whole content-addressed chunks are served from the cache and stored there
    on a miss; a byte range is served from a cached chunk, else fetched as a
    range (not cached: a filtered read would otherwise fill the cache with
    fragments).  Misses of one ``get_many`` go to the store in one
    ``get_many``, so its concurrency is kept.
    """

    capabilities = BlobCapabilities()  # no read_into: hits are views of the cached files

    def __init__(self, inner: BlobStore, cache: DiskChunkCache, max_mapped: int = MAPPED_BYTES) -> None:
        self.inner, self.cache = inner, cache
        #: Whole cached files' views: a later epoch slices them instead of mapping each file again (as
        #: ``stream/mapped.py`` keeps a local store's).
        self.views = KeptViews(max_mapped)

    def _hit(self, key: str, start: int, end: int | None) -> memoryview | None:
        """Bytes ``[start, end)`` of ``key`` from a kept view or the cache (None: not cached)."""
        whole = self.views.get(key)
        if whole is None:
            whole = self.cache.get(key)
            if whole is None:
                return None
            self.views.keep(key, whole)
        return whole if start == 0 and end is None else whole[start:end]

    def clear(self) -> None:
        """Let go of the kept views (a closed stream: an evicted file's space is freed once no view holds it)."""
        self.views.clear()

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes | memoryview]:
        """Bytes per request in request order (read-only views for hits); a missing blob raises
        :class:`BlobNotFound` at its turn."""
        requests = list(requests)
        found: list[memoryview | None] = []
        misses: list[BlobRequest] = []
        for req in requests:
            key, start, end = (req, 0, None) if isinstance(req, str) else req
            hit = self._hit(key, start, end) if self.cache.cacheable(key) else None
            found.append(hit)
            if hit is None:
                misses.append(req)
        fetched = self.inner.get_many(misses) if misses else iter(())
        try:
            for req, hit in zip(requests, found):
                if hit is not None:
                    yield hit
                    continue
                data = next(fetched)  # BlobNotFound propagates at this request's turn
                if isinstance(req, str) and self.cache.cacheable(req):
                    self.cache.put(req, data)
                yield data
        finally:
            close = getattr(fetched, "close", None)
            if close is not None:
                close()

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        for data in self.get_many([key if start == 0 and end is None else (key, start, end)]):
            return bytes(data)
        raise BlobNotFound(key)  # pragma: no cover - get_many yields one item or raises


__all__ = ["CACHE_DIR_ENV", "DEFAULT_DISK_CACHE_BYTES", "DiskCacheError", "DiskCachedBlobs", "DiskChunkCache",
           "disk_cache_for"]
