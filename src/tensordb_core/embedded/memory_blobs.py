"""An in-process blob store: a thread-safe dict of bytes, shared per name.

Why: ``memory://name`` gives tests and notebooks a warehouse with no disk and
no server, and two ``connect("memory://lab")`` calls in one process must see
the same blobs (as two clients of one server would), hence :meth:`MemoryBlobStore.named`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import ClassVar

from tensordb_core.errors import BlobNotFound
from tensordb_core.store.blobkit import check_key, split_request
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import StoreURI


class MemoryBlobStore:
    """Blobs in a dict guarded by a lock; every stored value is an immutable ``bytes`` copy.

    Satisfies :class:`~tensordb_core.store.protocols.BlobStore` and passes the
    conformance suite.  Values are replaced whole under the lock, so a reader
    never sees a partial blob.  Nothing survives the process.
    """

    capabilities = BlobCapabilities()
    _instances: ClassVar[dict[str, MemoryBlobStore]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, uri: StoreURI | None = None) -> None:
        self.uri = uri if uri is not None else StoreURI("memory")
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str, uri: StoreURI | None = None) -> MemoryBlobStore:
        """The process-wide store called ``name`` (created on first use), so every opener shares it."""
        with cls._instances_lock:
            store = cls._instances.get(name)
            if store is None:
                store = cls._instances[name] = cls(uri if uri is not None else StoreURI("memory", path=name))
            return store

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop the shared store called ``name`` (its blobs go once nobody holds it); unknown names are fine."""
        with cls._instances_lock:
            cls._instances.pop(name, None)

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store a copy of the bytes of ``data`` (the caller may reuse its buffer)."""
        check_key(key)
        value = data if isinstance(data, bytes) else memoryview(data).tobytes()
        with self._lock:
            self._blobs[key] = value

    def _value(self, key: str) -> bytes:
        with self._lock:
            value = self._blobs.get(key)
        if value is None:
            raise BlobNotFound(f"no blob {key!r} in {self.uri}")
        return value

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``, clamped like a slice; ``BlobNotFound`` if absent."""
        key, start, end = split_request((key, start, end))
        value = self._value(key)
        return value if start == 0 and (end is None or end >= len(value)) else value[start:end]

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Yield each request's bytes in order (no threads: a dict lookup does not wait on I/O)."""
        for request in requests:
            key, start, end = split_request(request)
            yield self.get(key, start, end)

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._blobs

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a snapshot taken when iteration starts)."""
        with self._lock:
            keys = [k for k in self._blobs if k.startswith(prefix)]
        yield from keys

    def size(self, key: str) -> int:
        check_key(key)
        return len(self._value(key))

    def close(self) -> None:
        """Nothing to release: the blobs stay for other holders of a named store (see :meth:`forget`)."""

    def __repr__(self) -> str:
        return f"MemoryBlobStore({self.uri.redacted()!r}, {len(self._blobs)} blobs)"
