"""Bytes altered in storage are caught on read: whole blobs by content address, samples by CRC-32.

Each backend's stored bytes are changed behind the warehouse's back — a file
on disk, an object rewritten on the S3 server, a GridFS chunk document edited
in MongoDB — and every read path must raise ``IntegrityError`` (the stream's
names the document), ``tensordb check`` must list the blob, and a stream with
``on_error="skip"`` must leave out exactly the damaged sample.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from s3kit import BUCKET, REGION, admin_client

import tensordb_core as tdb
from tensordb_core.errors import IntegrityError
from tensordb_core.store.retrying import unwrap
from tensordb_core.warehouse.maintenance import check

pytestmark = pytest.mark.timeout(120)
Corrupt = Callable[[str, int], None]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]


@pytest.fixture(params=["file", "s3", "gridfs"])
def damaged_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[tdb.TensorDB, Corrupt]]:
    """A warehouse and ``corrupt(key, offset)``, which flips one stored byte without the warehouse knowing."""
    if request.param == "file":
        db = tdb.connect(tmp_path / "w", "s")

        def corrupt(key: str, at: int) -> None:
            with open(unwrap(db.blobs).path_of(key), "r+b") as f:
                f.seek(at)
                byte = f.read(1)
                f.seek(at)
                f.write(bytes([byte[0] ^ 0x5A]))

    elif request.param == "s3":
        port = request.getfixturevalue("fault_moto")
        endpoint = f"http://127.0.0.1:{port}"
        db = tdb.connect(f"sqlite:///{tmp_path}/idx.sqlite", "s", blobs=f"s3://{BUCKET}/c-{uuid.uuid4().hex}",
                         blob_options={"endpoint_url": endpoint, "region": REGION, "aws_access_key_id": "k",
                                       "aws_secret_access_key": "s"})
        s3 = admin_client(endpoint)

        def corrupt(key: str, at: int) -> None:
            name = unwrap(db.blobs).prefix + key
            body = s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
            s3.put_object(Bucket=BUCKET, Key=name, Body=flip(body, at))

    else:
        uri = request.getfixturevalue("mongo_warehouse")
        db = tdb.connect(uri, "s")
        import pymongo

        raw = pymongo.MongoClient(uri.split("?")[0].rsplit("/", 1)[0] + "/?directConnection=true")
        request.addfinalizer(raw.close)
        mongo = raw[uri.split("?")[0].rsplit("/", 1)[1]]

        def corrupt(key: str, at: int) -> None:
            bucket = unwrap(db.blobs).bucket_name
            files = list(mongo[f"{bucket}.files"].find({"filename": key}))
            assert len(files) == 1
            size = files[0]["chunkSize"]
            chunk = mongo[f"{bucket}.chunks"].find_one({"files_id": files[0]["_id"], "n": at // size})
            data = flip(bytes(chunk["data"]), at % size)
            mongo[f"{bucket}.chunks"].update_one({"_id": chunk["_id"]}, {"$set": {"data": data}})

    yield db, corrupt
    db.close()


def test_an_altered_parameter_archive_is_an_integrity_error(damaged_db) -> None:
    db, corrupt = damaged_db
    good = db.save_parameters({"w": np.arange(64, dtype=np.float32)}, metrics={"acc": 0.5})
    bad = db.save_parameters({"w": np.ones(64, dtype=np.float32)}, metrics={"acc": 0.9})
    doc = db.find_parameter_docs({"_id": bad})[0]
    corrupt(doc["_blob"]["key"], doc["_blob"]["size"] - 10)
    with pytest.raises(IntegrityError, match="content address"):
        db.load_parameters(doc)
    with pytest.raises(IntegrityError):
        db.best_parameters("acc")
    np.testing.assert_array_equal(db.load_parameters(db.find_parameter_docs({"_id": good})[0])["w"], np.arange(64))
    assert check(db.index, db.blobs).corrupted == [doc["_blob"]["key"]]


def test_an_altered_sample_is_an_integrity_error_naming_its_document(damaged_db) -> None:
    db, corrupt = damaged_db
    X = np.random.default_rng(0).standard_normal((20, 32)).astype(np.float32)
    db.import_data(X, np.arange(20), chunk_bytes=10 * X[0].nbytes)
    docs = list(db.find_data())
    victim = docs[13]
    seg = victim["_x"]
    corrupt(seg["key"], seg["offset"] + seg["length"] // 2)

    with pytest.raises(IntegrityError, match=victim["_id"]):
        db.find_data().arrays()
    with pytest.raises(IntegrityError, match=victim["_id"]):
        for _ in db.data_generator({}, batch_size=4, shuffle=False, epochs=1):
            pass
    stream = db.data_generator({}, batch_size=4, shuffle=False, epochs=1, on_error="skip")
    kept = np.concatenate([xb for xb, _ in stream])
    np.testing.assert_array_equal(kept, np.delete(X, 13, axis=0))
    assert check(db.index, db.blobs).corrupted == [seg["key"]]
    # samples of the same chunk that were not touched still read back when asked for alone
    np.testing.assert_array_equal(db.find_data({"_id": docs[12]["_id"]}).arrays()[0], X[12:13])
