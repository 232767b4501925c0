"""The GridFS blob store: the blob conformance suite plus what is GridFS-specific.

GridFS specifics checked here: the files are standard GridFS (another driver's
GridFS API reads them), ranged reads fetch only the chunks they overlap, an
overwrite leaves exactly one revision, and concurrent duplicate puts converge.
"""

from __future__ import annotations

import threading

import gridfs
import pytest

from tensordb_core.errors import BackendError, BackendUnavailable, BlobNotFound
from tensordb_core.store.blobkit import content_key
from tensordb_core.testing import BlobStoreSuite
from tensordb_core.testing.blob_suite import payload
from tensordb_mongo import GridFSBlobStore

pytestmark = pytest.mark.mongo

CHUNK = 4096  # small chunks so a few KiB already span several chunk documents


class TestGridFSConformance(BlobStoreSuite):
    # list() reads a server cursor: the first reply holds 101 documents, the rest come by getMore.
    list_page_past = 250

    @pytest.fixture
    def blob_store(self, mongo_uri):
        store = GridFSBlobStore(mongo_uri)
        yield store
        store.close()


@pytest.fixture
def small_chunks(mongo_uri):
    store = GridFSBlobStore(mongo_uri, chunk_size_bytes=CHUNK)
    yield store
    store.close()


def test_blobs_are_standard_gridfs_files(small_chunks, raw_db):
    data = payload(3 * CHUNK + 10, seed=1)
    key = "lab/" + content_key(data)
    small_chunks.put(key, data)
    other_driver = gridfs.GridFSBucket(raw_db, bucket_name="blobs")
    assert other_driver.open_download_stream_by_name(key).read() == data
    files = list(raw_db["blobs.files"].find())
    assert [(f["filename"], f["length"], f["chunkSize"]) for f in files] == [(key, len(data), CHUNK)]
    assert raw_db["blobs.chunks"].count_documents({"files_id": files[0]["_id"]}) == 4
    # and what another tool uploads, TensorDB reads
    other_driver.upload_from_stream("from/elsewhere", b"written by mongofiles")
    assert small_chunks.get("from/elsewhere") == b"written by mongofiles"


def test_ranged_reads_fetch_only_the_chunks_they_overlap(small_chunks, raw_db):
    data = payload(5 * CHUNK, seed=2)
    small_chunks.put("r", data)
    for start, end in [(0, 1), (CHUNK - 3, CHUNK + 3), (2 * CHUNK, 3 * CHUNK), (4 * CHUNK + 7, None), (10, 4 * CHUNK)]:
        assert small_chunks.get("r", start, end) == data[start:end]
    file_id = raw_db["blobs.files"].find_one({"filename": "r"})["_id"]
    raw_db["blobs.chunks"].delete_one({"files_id": file_id, "n": 0})  # damage chunk 0 only
    assert small_chunks.get("r", 2 * CHUNK + 5, 3 * CHUNK + 5) == data[2 * CHUNK + 5 : 3 * CHUNK + 5]
    assert small_chunks.get("r", CHUNK, None) == data[CHUNK:]
    with pytest.raises(BackendError, match="missing chunks"):
        small_chunks.get("r", 0, 10)  # a read that needs chunk 0 reports the damage instead of short data


def test_overwrite_leaves_one_revision_and_delete_removes_chunks(small_chunks, raw_db):
    for i in range(3):
        small_chunks.put("name", payload(2 * CHUNK + i, seed=10 + i))
    assert small_chunks.get("name") == payload(2 * CHUNK + 2, seed=12)
    assert raw_db["blobs.files"].count_documents({"filename": "name"}) == 1
    assert raw_db["blobs.chunks"].count_documents({}) == 3
    small_chunks.delete("name")
    assert raw_db["blobs.files"].count_documents({}) == 0 and raw_db["blobs.chunks"].count_documents({}) == 0


def test_concurrent_puts_of_one_key_converge_on_one_file(small_chunks, raw_db):
    threads = 6
    barrier = threading.Barrier(threads)
    blobs = [payload(CHUNK + 100, seed=20 + t) for t in range(threads)]

    def put(t: int) -> None:
        barrier.wait()
        small_chunks.put("contended", blobs[t])

    workers = [threading.Thread(target=put, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert small_chunks.get("contended") in blobs
    assert raw_db["blobs.files"].count_documents({"filename": "contended"}) == 1
    file_id = raw_db["blobs.files"].find_one()["_id"]
    assert raw_db["blobs.chunks"].count_documents({"files_id": {"$ne": file_id}}) == 0  # no orphaned chunks


def test_existing_content_address_is_not_rewritten(small_chunks, raw_db):
    data = payload(1000, seed=30)
    key = content_key(data)
    small_chunks.put(key, data)
    first = raw_db["blobs.files"].find_one({"filename": key})
    small_chunks.put(key, memoryview(data))
    assert raw_db["blobs.files"].find_one({"filename": key}) == first  # same file document, not a new upload


def test_a_content_key_is_looked_up_once_and_other_writers_are_still_seen(small_chunks, mongo_uri, monkeypatch):
    """A stream reads a chunk blob by many ranges: its revision is resolved once, yet a delete or re-put by
    another store (another process) is seen at the next read."""
    data = payload(3 * CHUNK, seed=50)
    key = "lab/" + content_key(data)
    small_chunks.put(key, data)
    small_chunks.put("plain", b"first")
    asked: list[str] = []
    real = GridFSBlobStore._newest
    monkeypatch.setattr(GridFSBlobStore, "_newest", lambda self, k: asked.append(k) or real(self, k))
    assert small_chunks.get(key, 0, 10) == data[:10]
    assert small_chunks.get(key, CHUNK, 2 * CHUNK) == data[CHUNK : 2 * CHUNK]
    assert list(small_chunks.get_many([(key, 5, 9), key])) == [data[5:9], data]
    assert asked == [key]  # one lookup for five reads
    small_chunks.get("plain")
    small_chunks.get("plain")
    assert asked.count("plain") == 2  # any other key may be overwritten with other bytes: resolved each time
    other = GridFSBlobStore(mongo_uri, chunk_size_bytes=CHUNK)
    try:
        other.delete(key)
        with pytest.raises(BlobNotFound):
            small_chunks.get(key, 0, 10)
        other.put(key, data)  # a new revision: the remembered one is gone
        assert small_chunks.get(key, 5, 20) == data[5:20]
        other.put("plain", b"second")
        assert small_chunks.get("plain") == b"second"
    finally:
        other.close()


def test_bucket_and_chunk_size_are_settings(mongo_uri, raw_db):
    store = GridFSBlobStore(mongo_uri + "&bucket=arrays&chunk_size_bytes=65536")
    try:
        store.put("x", payload(100_000, seed=40))
        assert raw_db["arrays.files"].find_one({"filename": "x"})["chunkSize"] == 65536
        assert raw_db["arrays.chunks"].count_documents({}) == 2
        assert "blobs.files" not in raw_db.list_collection_names()
    finally:
        store.close()
    with pytest.raises(BlobNotFound):
        GridFSBlobStore(mongo_uri).get("x")  # another bucket is another namespace


def test_a_failed_upload_leaves_no_chunks(small_chunks, raw_db, monkeypatch):
    from pymongo.collection import Collection
    from pymongo.errors import AutoReconnect

    real_insert_one = Collection.insert_one

    def drop_connection_on_file_document(self, document, *args, **kwargs):
        if self.name == "blobs.files":  # chunks are written; the connection dies before the file document
            raise AutoReconnect("connection reset by peer")
        return real_insert_one(self, document, *args, **kwargs)

    monkeypatch.setattr(Collection, "insert_one", drop_connection_on_file_document)
    with pytest.raises(BackendUnavailable):
        small_chunks.put("doomed", payload(3 * CHUNK, seed=50))
    monkeypatch.undo()
    assert not small_chunks.exists("doomed")
    assert raw_db["blobs.chunks"].count_documents({}) == 0  # the chunks already written were removed
    small_chunks.put("doomed", b"second try")
    assert small_chunks.get("doomed") == b"second try"
