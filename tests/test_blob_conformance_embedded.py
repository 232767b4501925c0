"""The embedded blob stores against the conformance suite, plus what only the file store promises."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tensordb_core.embedded.file_blobs import TEMP_PREFIX, FileBlobStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore
from tensordb_core.errors import BackendError, IntegrityError, InvalidURI, PermissionDenied
from tensordb_core.store.blobkit import InvalidBlobKey, content_key, verify_content
from tensordb_core.store.uri import StoreURI, parse_uri
from tensordb_core.testing.blob_suite import BlobStoreSuite, payload


class TestFileBlobStoreConformance(BlobStoreSuite):
    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> Iterator[FileBlobStore]:
        store = FileBlobStore(tmp_path / "blobs")  # the default fsync=True: the configuration users get
        yield store
        store.close()


class TestMemoryBlobStoreConformance(BlobStoreSuite):
    @pytest.fixture
    def blob_store(self) -> Iterator[MemoryBlobStore]:
        store = MemoryBlobStore()
        yield store
        store.close()


# -- the file store's own promises ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def files_under(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_content_addresses_fan_out_and_generic_keys_keep_their_path(store: FileBlobStore) -> None:
    data = b"chunk bytes"
    digest = content_key(data)
    store.put(digest, data)
    store.put("chunks/" + digest, data)
    store.put("runs/7/model.json", b"{}")
    store.put(digest[:2], b"a generic key named like a fan-out folder")
    assert files_under(store.root) == sorted(
        [
            f"@{digest[:2]}/@{digest[2:4]}/{digest}",
            f"chunks/@{digest[:2]}/@{digest[2:4]}/{digest}",
            "runs/7/model.json",
            digest[:2],
        ]
    )
    assert sorted(store.list()) == sorted([digest, "chunks/" + digest, "runs/7/model.json", digest[:2]])
    assert store.get(digest[:2]) == b"a generic key named like a fan-out folder"
    assert store.path_of("chunks/" + digest) == os.path.join(
        store.root, "chunks", f"@{digest[:2]}", f"@{digest[2:4]}", digest
    )


def test_a_generic_key_that_looks_like_a_fanned_out_path_stays_distinct(store: FileBlobStore) -> None:
    digest = content_key(b"x")
    lookalike = f"{digest[:2]}/{digest[2:4]}/{digest}"  # its last segment is an address: it fans out again
    store.put(digest, b"x")
    store.put(lookalike, b"y")
    assert store.get(digest) == b"x" and store.get(lookalike) == b"y"
    assert sorted(store.list()) == sorted([digest, lookalike])


def test_files_out_of_place_or_not_keys_are_not_listed(store: FileBlobStore) -> None:
    digest = content_key(b"z")
    store.put("keep", b"1")
    Path(store.root, digest).write_bytes(b"z")  # an address outside its fan-out folders: get() would miss it
    Path(store.root, "@00").mkdir()
    Path(store.root, "@00", "@11").mkdir()
    Path(store.root, "@00", "@11", digest).write_bytes(b"z")  # wrong fan-out folders for this address
    Path(store.root, "bad name").write_bytes(b"")
    Path(store.root, TEMP_PREFIX + "leftover").write_bytes(b"partial")
    assert list(store.list()) == ["keep"]


def test_atomic_writes_leave_no_temporary_files(store: FileBlobStore) -> None:
    for i in range(20):
        store.put(f"t/{i}", payload(10_000, seed=i))
        store.put(content_key(payload(10, seed=i)), payload(10, seed=i))
    store.put("t/0", b"replaced")
    with pytest.raises(InvalidBlobKey):
        store.put("t/0/below", b"conflict")  # a failed put cleans up too
    assert not [f for f in files_under(store.root) if TEMP_PREFIX in f]


def test_a_failed_write_is_typed_and_cleaned_up(store: FileBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", disk_full)
        with pytest.raises(BackendError, match="no space left"):
            store.put("full/blob", b"data")
    assert not store.exists("full/blob")
    assert files_under(store.root) == []


def test_corruption_on_disk_is_caught_by_verify_content(store: FileBlobStore) -> None:
    data = payload(4096, seed=1)
    key = "chunks/" + content_key(data)
    store.put(key, data)
    with open(store.path_of(key), "r+b") as f:
        f.seek(100)
        f.write(b"\xff" if data[100] != 0xFF else b"\x00")
    corrupted = store.get(key)
    with pytest.raises(IntegrityError):
        verify_content(key, corrupted)
    store.put(key, data)  # same address and size: trusted, not rewritten ...
    assert store.get(key) == corrupted
    store.delete(key)  # ... so repair is delete, then put
    store.put(key, data)
    verify_content(key, store.get(key))


def test_generic_keys_are_rewritten_even_with_the_same_size(store: FileBlobStore) -> None:
    store.put("state", b"aaaa")
    store.put("state", b"bbbb")
    assert store.get("state") == b"bbbb"


def _denied(store: FileBlobStore, action: Callable[[FileBlobStore], Any]) -> str:
    """Run ``action(store)`` without the right to write ``store.root``; return the error class name.

    As root (CI containers) permission bits do not apply, so a forked child drops to ``nobody``.
    """

    def attempt() -> str:
        try:
            action(store)
        except PermissionDenied as exc:
            assert isinstance(exc, PermissionError)
            return "PermissionDenied"
        except Exception as exc:  # noqa: BLE001 - reported to the parent by name
            return type(exc).__name__
        return "no error"

    os.chmod(store.root, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.geteuid() != 0:
            return attempt()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_end)
            try:
                os.setgid(65534)
                os.setuid(65534)
                result = attempt()
            except BaseException as exc:  # noqa: BLE001
                result = f"child failed: {exc!r}"
            os.write(write_end, result.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            result = pipe.read().decode()
        os.waitpid(pid, 0)
        return result
    finally:
        os.chmod(store.root, stat.S_IRWXU)


def test_permission_errors_are_typed(store: FileBlobStore) -> None:
    store.put("mine/secret", b"s")
    os.chmod(store.path_of("mine/secret"), 0)
    assert _denied(store, lambda s: s.put("new/blob", b"x")) == "PermissionDenied"
    assert _denied(store, lambda s: s.put("later", b"x")) == "PermissionDenied"
    assert _denied(store, lambda s: s.get("mine/secret")) == "PermissionDenied"
    assert store.exists("mine/secret") and not store.exists("later")


def test_options_from_arguments_and_uri(tmp_path: Path) -> None:
    quick = FileBlobStore(tmp_path / "a", uri=parse_uri(f"file://{tmp_path}?fsync=false&max_workers=1"))
    assert quick.fsync is False and quick.max_workers == 1
    quick.put("k", b"v")
    assert list(quick.get_many(["k", ("k", 0, 1)])) == [b"v", b"v"]
    assert FileBlobStore(tmp_path / "b", fsync=False).fsync is False
    assert FileBlobStore(tmp_path / "c").fsync is True
    assert FileBlobStore(tmp_path / "c").uri == StoreURI("file", path=str(tmp_path / "c"))
    with pytest.raises(InvalidURI):
        FileBlobStore(tmp_path / "d", max_workers="many")
    with pytest.raises(InvalidURI):
        FileBlobStore(tmp_path / "d", max_workers=0)


def test_sweep_removes_only_stale_temporary_files(store: FileBlobStore) -> None:
    store.put("k", b"v")
    stale = Path(store.root, TEMP_PREFIX + "old")
    fresh = Path(store.root, TEMP_PREFIX + "new")
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    assert store.sweep_temp_files() == 1
    assert not stale.exists() and fresh.exists() and store.get("k") == b"v"


# -- the memory store's sharing ----------------------------------------------------------------------


def test_named_memory_stores_are_shared_per_name() -> None:
    a = MemoryBlobStore.named("blob-test-shared")
    try:
        assert MemoryBlobStore.named("blob-test-shared") is a
        assert MemoryBlobStore.named("blob-test-other") is not a
        a.put("k", b"v")
        assert MemoryBlobStore.named("blob-test-shared").get("k") == b"v"
        assert a.uri.scheme == "memory"
    finally:
        MemoryBlobStore.forget("blob-test-shared")
        MemoryBlobStore.forget("blob-test-other")
    assert MemoryBlobStore.named("blob-test-shared") is not a
    MemoryBlobStore.forget("blob-test-shared")


def test_the_embedded_plugin_opens_these_stores(tmp_path: Path) -> None:
    from tensordb_core import open_blobs

    files = open_blobs(f"file://{tmp_path}")
    assert isinstance(files, FileBlobStore) and files.root == str(tmp_path / "blobs")
    files.put("k", b"v")
    assert open_blobs(str(tmp_path)).get("k") == b"v"  # a plain path is the same embedded store
    try:
        shared = open_blobs("memory://blob-test-plugin")
        assert isinstance(shared, MemoryBlobStore) and open_blobs("memory://blob-test-plugin") is shared
    finally:
        MemoryBlobStore.forget("blob-test-plugin")
