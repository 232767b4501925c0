"""Helpers every blob store shares: key checks, range requests, bounded concurrent fetch.

Why here: each backend's ``get_many`` is "run my single-request ``get`` on a
bounded thread pool and yield in request order"; writing that once keeps the
in-flight bound, ordering and error propagation identical everywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from tensordb_core.errors import IntegrityError, InvalidQuery
from tensordb_core.store.protocols import BlobRequest

_KEY_RE = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")

T = TypeVar("T")
R = TypeVar("R")


class InvalidBlobKey(InvalidQuery):
    """A blob key with characters or segments no backend can store safely."""


def check_key(key: str) -> str:
    """Return ``key`` if it is safe on every backend (no ``..``, no leading ``/``), else raise."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidBlobKey(f"invalid blob key {key!r}: use [A-Za-z0-9._-] segments joined by '/'")
    return key


def content_key(data: bytes | bytearray | memoryview) -> str:
    """The content address of ``data``: its sha256 in hex."""
    return hashlib.sha256(data).hexdigest()


#: A content address: the sha256 of a blob's bytes, in hex (the last segment of its key).
_CONTENT_ADDRESS = re.compile(r"^[0-9a-f]{64}$")


def is_content_address(key: str) -> bool:
    """True when ``key``'s last segment is a sha256 digest: its bytes are fixed by its name, so every copy or
    revision of it holds the same bytes and a put of it is repeatable."""
    return isinstance(key, str) and _CONTENT_ADDRESS.match(key.rsplit("/", 1)[-1]) is not None


def verify_content(key: str, data: bytes | bytearray | memoryview) -> None:
    """Raise :class:`IntegrityError` unless ``data`` hashes to the content address ``key``."""
    digest = key.rsplit("/", 1)[-1]
    if len(digest) == 64 and content_key(data) != digest:
        raise IntegrityError(f"blob {key} does not match its content address (corrupted in storage?)")


def split_request(request: BlobRequest) -> tuple[str, int, int | None]:
    """Normalise a request to ``(key, start, end)``; ``end=None`` means to the end."""
    if isinstance(request, str):
        return check_key(request), 0, None
    key, start, end = request
    if start < 0 or (end is not None and end < start):
        raise InvalidQuery(f"invalid byte range [{start}, {end}) for blob {key!r}")
    return check_key(key), int(start), None if end is None else int(end)


#: Threads of the process-wide fetch pool every ``get_many`` shares (each call still bounds its own in-flight requests).
SHARED_FETCH_THREADS = 64
_shared_pool: ThreadPoolExecutor | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def shared_fetch_pool() -> ThreadPoolExecutor:
    """The process's one fetch pool, made on first use (and again in a forked child, whose threads are gone).

    Why one pool: a pool per ``get_many`` call started and joined up to
    ``max_workers`` threads for every fetch batch (every stream window); the
    threads now live as long as the process.  Only single requests run on it,
    never a call that waits on the pool itself, so sharing cannot deadlock.
    """
    global _shared_pool, _shared_pid
    with _shared_lock:
        if _shared_pool is None or _shared_pid != os.getpid():
            _shared_pool = ThreadPoolExecutor(max_workers=SHARED_FETCH_THREADS, thread_name_prefix="tensordb-fetch")
            _shared_pid = os.getpid()
        return _shared_pool


def ordered_concurrent_map(fn: Callable[[T], R], items: Iterable[T], max_in_flight: int) -> Iterator[R]:
    """Apply ``fn`` to ``items`` on up to ``max_in_flight`` threads, yielding results in input order.

    At most ``max_in_flight`` calls are pending at once (back-pressure: a slow
    consumer stops new requests).  An exception is raised when its item's turn
    comes; pending work is cancelled when the consumer stops early.  The
    threads are the process's shared fetch pool (:func:`shared_fetch_pool`).
    """
    if max_in_flight <= 1:
        yield from map(fn, items)
        return
    pool = shared_fetch_pool()
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= max_in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
