"""The embedded blob store: one file per blob under a root directory.

Layout (public: other tools may read it)
----------------------------------------
* A key whose last segment is a content address (64 lowercase hex digits) is
  fanned out so no directory grows past ~65k entries::

      <root>/ab12…64hex             -> <root>/@ab/@12/ab12…64hex
      <root>/chunks/ab12…64hex      -> <root>/chunks/@ab/@12/ab12…64hex

  Fan-out directories start with ``@``, a character no key may contain, so
  they never collide with a key segment and the mapping is one-to-one.
* Every other key keeps its path: ``runs/7/model.json`` -> ``<root>/runs/7/model.json``.
* Temporary files are named ``.~tmp-…`` (``~`` is not a key character) and
  ``list`` never shows them.

Because a path cannot be both a file and a directory, ``a/b`` and ``a/b/c``
cannot both be keys here: the second ``put`` raises
:class:`~tensordb_core.store.blobkit.InvalidBlobKey` and the first stays intact
(the store declares ``BlobCapabilities(key_as_prefix=False)``).

Durability (``fsync``, on by default)
-------------------------------------
A put writes a temporary file in the target directory, fsyncs it, renames it
over the key's path and fsyncs the directory, so after a crash a key holds
either nothing or its whole blob — which the warehouse relies on, since it
writes a blob *before* the index document that points at it.  Measured on the
2-core CI VM (ext4): a 4 MiB put takes 11 ms without fsync, 13 ms with the
file fsync and 17 ms with the directory fsync too; a 100-byte put goes from
0.05 to 0.5 ms.  Samples are packed into multi-MiB chunks, so the default
costs a chunk import well under 2x; pass ``fsync=False`` (or ``?fsync=false``
in the URI) for scratch stores where losing the last writes on power loss is fine.

Mapped reads (``BlobCapabilities.map``)
---------------------------------------
:meth:`FileBlobStore.map` returns a read-only ``mmap`` view of a blob, so the
stream decodes raw-stored samples straight out of the page cache instead of
copying each chunk into a read buffer first.  It is safe because a file here
is never changed in place: ``put`` writes a temporary file and renames it over
the key's path, and ``delete`` (garbage collection) unlinks it; either way a
mapping keeps the old inode, whole, until the last view of it is gone.  The
mapping is clamped to the file's size when it is made (a short file gives a
short view, as ``get`` does, and the reader's length check raises the typed
error), so no access can fault past the end (SIGBUS).  Only a process that
truncates a chunk file in place, which nothing in TensorDB does, could break
that.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from typing import NoReturn

from tensordb_core.errors import BackendError, BlobNotFound, PermissionDenied, TensorDBError
from tensordb_core.store.blobkit import (
    InvalidBlobKey,
    check_key,
    is_content_address,
    ordered_concurrent_map,
    split_request,
)
from tensordb_core.store.kit.mapping import map_range, pread_exact
from tensordb_core.store.kit.options import Option, OptionSet, flag, whole
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import StoreURI

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FANOUT_DIR = re.compile(r"@[0-9a-f]{2}")
_SEGMENT = re.compile(r"[A-Za-z0-9._\-]+")
_PARTIAL = re.compile(r"[A-Za-z0-9._\-]*")
TEMP_PREFIX = ".~tmp-"
_BINARY = getattr(os, "O_BINARY", 0)
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR)
#: The store's options (keywords, else the URI's query): parsed by the kit's one option parser.
OPTIONS = OptionSet(
    "file blob store option",
    [
        Option("fsync", True, flag()),  # make each put durable before it returns
        Option("max_workers", 8, whole(1)),  # threads get_many reads on; 1 reads inline
    ],
)


class FileBlobStore:
    """Blobs as files under ``root``; satisfies :class:`~tensordb_core.store.protocols.BlobStore`.

    Options (keyword arguments, else the URI's query options of the same name):

    * ``fsync`` (default True): make each put durable before it returns (see the module docs).
    * ``max_workers`` (default 8): threads ``get_many`` reads on; 1 reads inline.

    Declares ``read_into``: :meth:`read_into` fills a caller's buffer without
    an intermediate ``bytes`` (the stream decodes out of pooled buffers); and
    ``map``: :meth:`map` returns a read-only view of the file's pages (see the
    module docs for why a view stays valid).
    """

    capabilities = BlobCapabilities(read_into=True, key_as_prefix=False, map=True)

    def __init__(
        self,
        root: str | os.PathLike[str],
        uri: StoreURI | None = None,
        *,
        fsync: bool | str | None = None,
        max_workers: int | str | None = None,
        shared: Iterable[str] = (),
    ) -> None:
        """Open (creating if needed) the store under ``root``; ``shared``: see ``SQLiteIndexStore``."""
        self.root = os.path.abspath(os.fspath(root))
        self.uri = uri if uri is not None else StoreURI("file", path=self.root)
        settings = OPTIONS.parse(self.uri, {"fsync": fsync, "max_workers": max_workers}, shared=shared)
        self.fsync: bool = settings["fsync"]
        self.max_workers: int = settings["max_workers"]
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            self._raise(exc, "", "creating the store root")

    # -- key <-> path ------------------------------------------------------------------------------

    def path_of(self, key: str) -> str:
        """The file that holds ``key`` (whether or not it exists); the layout is in the module docs."""
        parts = check_key(key).split("/")
        last = parts[-1]
        if _HEX64.fullmatch(last):
            parts[-1:] = ["@" + last[:2], "@" + last[2:4], last]
        return os.path.join(self.root, *parts)

    # -- writes ------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write atomically (temp file + rename); a content address already stored with this size is kept."""
        path = self.path_of(key)
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        view = view.cast("B")
        if is_content_address(key) and self._stored_size(path) == view.nbytes:
            return  # same address, same length: the same bytes (verify_content catches disk rot on read)
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        try:
            created = self._makedirs(directory)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o666)
            try:
                written = 0
                while written < view.nbytes:
                    written += os.write(fd, view[written:])
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self.fsync:
                for changed in {directory, *(os.path.dirname(d) for d in created)}:
                    _fsync_dir(changed)
        except OSError as exc:
            _remove_quietly(tmp)
            if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY):
                raise InvalidBlobKey(
                    f"blob key {key!r} conflicts with an existing key in {self.uri}: on a file store 'a/b' and "
                    "'a/b/c' cannot both exist; choose keys where no key is a directory of another"
                ) from exc
            self._raise(exc, key, "writing")

    def _makedirs(self, directory: str) -> list[str]:
        """Create ``directory`` and missing parents; return the ones this call created (to fsync their parents)."""
        missing: list[str] = []
        current = directory
        while current != self.root and not os.path.isdir(current):
            missing.append(current)
            current = os.path.dirname(current)
        created = []
        for path in reversed(missing):
            try:
                os.mkdir(path)
                created.append(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise
        return created

    def delete(self, key: str) -> None:
        """Remove the blob's file; a missing key (or a directory of other keys) is not an error.

        Empty directories are kept: removing them could race a concurrent put into them.
        """
        path = self.path_of(key)
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno in (*_NOT_THERE, errno.EISDIR) or (exc.errno == errno.EPERM and os.path.isdir(path)):
                return
            self._raise(exc, key, "deleting")

    # -- reads -------------------------------------------------------------------------------------

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` clamped to the size (slice semantics), read with ``pread``."""
        key, start, end = split_request((key, start, end))
        return self._read(key, start, end)

    def _read(self, key: str, start: int, end: int | None) -> bytes:
        fd = self._open(key)
        try:
            size = self._regular_size(fd, key)
            stop = size if end is None else min(end, size)
            return pread_exact(fd, stop - start, start) if start < stop else b""
        finally:
            os.close(fd)

    def read_into(self, key: str, start: int, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with the blob's bytes from ``start``; return how many were read (:class:`ReadsInto`).

        Fewer than ``len(buffer)`` bytes are read only at the end of the blob (0 when
        ``start`` is at or past it).  Saves a copy when the caller owns a preallocated
        buffer.
        """
        key, start, _ = split_request((key, start, None))
        target = memoryview(buffer).cast("B")
        fd = self._open(key)
        try:
            self._regular_size(fd, key)
            done = 0
            while done < target.nbytes:
                if hasattr(os, "preadv"):
                    n = os.preadv(fd, [target[done:]], start + done)
                else:  # pragma: no cover - platforms without preadv
                    chunk = pread_exact(fd, target.nbytes - done, start + done)
                    n = len(chunk)
                    target[done : done + n] = chunk
                if n == 0:
                    break
                done += n
            return done
        except OSError as exc:
            self._raise(exc, key, "reading")
        finally:
            os.close(fd)

    def map(self, key: str, start: int = 0, end: int | None = None) -> memoryview:
        """A read-only view of bytes ``[start, end)`` (clamped to the size, as :meth:`get`) without copying them.

        Maps the file with ``MAP_POPULATE`` where the OS has it: the pages are in the
        page cache after a first read, and populating them in one call is cheaper than
        a page fault per 4 KiB as the decoder walks them.  The mapping never reaches
        past the file's size as measured now, so a short file yields a short view
        (never SIGBUS); and since files are replaced by rename and removed by unlink,
        never rewritten, the view stays valid and unchanged while it is held.  Where
        the file system cannot map a file, the bytes are read instead.
        """
        key, start, end = split_request((key, start, end))
        fd = self._open(key)
        try:
            size = self._regular_size(fd, key)
            return map_range(fd, start, size if end is None else min(end, size))
        except OSError as exc:
            self._raise(exc, key, "reading")
        finally:
            os.close(fd)

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Read whole blobs and ranges on up to ``max_workers`` threads, yielding in request order."""
        checked = (split_request(r) for r in requests)
        return ordered_concurrent_map(lambda r: self._read(*r), checked, self.max_workers)

    def exists(self, key: str) -> bool:
        return self._stored_size(self.path_of(key), key) is not None

    def size(self, key: str) -> int:
        found = self._stored_size(self.path_of(key), key)
        if found is None:
            raise BlobNotFound(f"no blob {key!r} in {self.uri}")
        return found

    def _stored_size(self, path: str, key: str = "") -> int | None:
        """The size of the regular file at ``path``, None where there is none."""
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno in _NOT_THERE:
                return None
            self._raise(exc, key, "reading")
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _open(self, key: str) -> int:
        try:
            return os.open(self.path_of(key), os.O_RDONLY | _BINARY)
        except OSError as exc:
            self._raise(exc, key, "reading")

    def _regular_size(self, fd: int, key: str) -> int:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a directory of other keys is not a blob
            raise BlobNotFound(f"no blob {key!r} in {self.uri}")
        return st.st_size

    # -- listing -----------------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (a plain string prefix, as in S3), walking only matching folders.

        Temporary files and anything whose name is not a key are skipped.  Keys
        written or deleted during the walk may or may not appear.
        """
        head, slash, partial = prefix.rpartition("/")
        if (slash and not _is_key(head)) or not _PARTIAL.fullmatch(partial):
            return  # no valid key can start with this prefix
        start_dir = os.path.join(self.root, *head.split("/")) if slash else self.root
        # stack of (directory, key so far, partial last-segment filter, fan-out level 0/1/2)
        stack: list[tuple[str, str, str, int]] = [(start_dir, head + slash, partial, 0)]
        while stack:
            directory, key_dir, want, level = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:
                if exc.errno in _NOT_THERE:
                    continue
                self._raise(exc, key_dir, "listing")
            for entry in entries:
                name = entry.name
                is_dir = entry.is_dir()
                if level < 2 and is_dir and _FANOUT_DIR.fullmatch(name):
                    hex2 = name[1:]
                    lo = 2 * level
                    if hex2[: max(0, len(want) - lo)] == want[lo : lo + 2]:
                        stack.append((entry.path, key_dir, want, level + 1))
                elif level == 0 and is_dir and _is_segment(name) and name.startswith(want):
                    stack.append((entry.path, f"{key_dir}{name}/", "", 0))
                elif not is_dir and name.startswith(want) and _is_segment(name):
                    is_address = _HEX64.fullmatch(name) is not None
                    if is_address == (level == 2) and (level == 0 or self.path_of(key_dir + name) == entry.path):
                        yield key_dir + name

    def sweep_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files a crashed writer left behind (older than ``older_than_s``); return the count."""
        cutoff = time.time() - older_than_s
        removed = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    if name.startswith(TEMP_PREFIX) and os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    def __repr__(self) -> str:
        return f"FileBlobStore({self.root!r}, fsync={self.fsync})"

    # -- errors ------------------------------------------------------------------------------------

    def _raise(self, exc: OSError, key: str, doing: str) -> NoReturn:
        """Translate an ``OSError`` into the typed hierarchy (always raises, chained to ``exc``)."""
        where = f"blob {key!r} in {self.root}" if key else self.root
        code = exc.errno
        error: TensorDBError
        if code in _NOT_THERE or code == errno.EISDIR:
            error = BlobNotFound(f"no blob {key!r} in {self.uri}")
        elif code in (errno.EACCES, errno.EPERM):
            error = PermissionDenied(f"permission denied {doing} {where}: check the owner and mode of {self.root}")
        elif code == errno.EROFS:
            error = PermissionDenied(f"{self.root} is on a read-only file system; cannot finish {doing} {where}")
        elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            error = BackendError(
                f"no space left on the device holding {self.root} while {doing} {where}: "
                "free some space or move the store to a larger disk"
            )
        elif code == errno.ENAMETOOLONG:
            error = InvalidBlobKey(f"blob key {key!r} is too long for the file system under {self.root}")
        else:
            error = BackendError(f"{doing} {where} failed: {exc.strerror or exc}")
        raise error from exc


def _is_segment(name: str) -> bool:
    return _SEGMENT.fullmatch(name) is not None and name not in (".", "..")


def _is_key(text: str) -> bool:
    try:
        check_key(text)
    except InvalidBlobKey:
        return False
    return True


def _fsync_dir(path: str) -> None:
    """Make a rename or mkdir in ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    if os.name == "nt":  # pragma: no cover
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
