"""Records: import (streamed, validated per chunk), query JSON fields like tags, read dicts, stream dict batches."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import CodecError, InvalidDocument
from tensordb_core.format.checksums import crc32
from tensordb_core.format.media import encode_image
from tensordb_core.stream.batches import SampleError
from tensordb_core.testing.warehouse_checks import check_records, sample_records


def test_the_shared_records_check_passes_on_the_embedded_store(tmp_path):
    check_records(tmp_path, None)


def test_a_generator_streams_through_in_chunks(db):
    made = []

    def gen():
        for i in range(40):
            made.append(i)
            yield {"v": np.random.default_rng(i).integers(0, 255, 1000, dtype=np.uint8), "i": i}

    seen_during = []
    orig = db.scope.blobs.put

    def spy(key, data):  # chunks are written as the input streams; the documents are committed at the end
        if not key.startswith("_tensordb/"):
            seen_during.append(len(made))
        return orig(key, data)

    db.scope.blobs.put = spy
    ids = db.import_records(gen(), chunk_bytes=5000)
    assert len(ids) == 40 and len(seen_during) > 4
    assert seen_during[0] < 40  # the first chunk was written before the generator was exhausted
    assert [r["i"] for r in db.find_data({"i": {"$gte": 38}}).records()] == [38, 39]


def test_json_fields_are_queried_like_tags(db):
    db.import_records(sample_records(12), tags={"split": "a"})
    cur = db.find_data({"caption": {"$in": ["caption 3", "caption 7", "caption 8"]}, "label": 3})
    assert [r["caption"] for r in cur.records()] == ["caption 3", "caption 7"]


def test_encode_stores_jpeg_and_png_and_arrays_as_segments(db):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (24, 32), dtype=np.uint8)
    (rid,) = db.import_records([{"image": image, "mask": mask, "f": np.ones((2, 3), np.float32)}],
                               encode={"image": "jpeg:95", "mask": "png"})
    doc = next(iter(db.find_data({"_id": rid})))
    codecs = {k: v["codec"] for k, v in doc["_fields"].items()}
    assert codecs["image"] == "jpeg" and codecs["mask"] == "png" and codecs["f"] in ("lz4", "none")
    (rec,) = db.find_data({"_id": rid}).records()
    np.testing.assert_array_equal(rec["mask"], mask)  # png is lossless
    assert rec["image"].shape == image.shape and np.abs(rec["image"].astype(int) - image).mean() < 20
    np.testing.assert_array_equal(rec["f"], np.ones((2, 3), np.float32))


def test_encoded_media_is_stored_byte_for_byte_with_its_header_shape(db):
    gray = encode_image(np.arange(60, dtype=np.uint8).reshape(6, 10), "jpeg", 90)
    (rid,) = db.import_records([{"img": tdb.Encoded(gray, "jpeg")}])
    doc = next(iter(db.find_data({"_id": rid})))
    seg = doc["_fields"]["img"]
    assert (seg["codec"], seg["dtype"], seg["shape"]) == ("jpeg", "|u1", [6, 10])
    assert db.scope.get_blob(doc["_chunk"]["key"])[seg["offset"]: seg["offset"] + seg["length"]] == gray
    assert db.find_data().records(decode=False) == [{"img": gray}]


def test_xy_samples_read_as_the_two_field_case(db):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    db.import_data(X, [1, 0, 1, 0])
    recs = db.find_data().records()
    assert [r["label"] for r in recs] == [1, 0, 1, 0]
    np.testing.assert_array_equal(np.stack([r["x"] for r in recs]), X)
    with db.data_generator(batch_size=4, shuffle=False) as s:
        Xb, _ = next(s)  # (X, y) data keeps streaming as tuples
    np.testing.assert_array_equal(Xb, X)
    with db.data_generator(batch_size=4, shuffle=False, fields=["x"]) as s:
        np.testing.assert_array_equal(next(s)["x"], X)


def test_stream_batches_stack_equal_shapes_list_ragged_and_pad_on_request(db):
    db.import_records(sample_records(10))
    with db.data_generator(batch_size=10, shuffle=False) as s:
        b = next(s)
    assert isinstance(b["image"], list) and b["image"][0].shape == (16, 24, 3)
    assert isinstance(b["tokens"], list) and b["label"].tolist() == [i % 4 for i in range(10)]
    assert b["caption"][0] == "caption 0" and b["raw"][1] == b"\x01"
    with db.data_generator(batch_size=10, shuffle=False, pad={"tokens": -1, "image": 0}) as s:
        b = next(s)
    assert b["tokens"].shape == (10, 5) and b["tokens_length"].tolist() == [1 + i % 5 for i in range(10)]
    assert b["tokens"][0, 1] == -1 and b["image"].shape == (10, 24, 24, 3)
    with db.data_generator(batch_size=1, shuffle=False, pad={"tokens": -1}) as s:
        one = next(s)  # a batch whose token lists happen to agree in shape still says their lengths
    assert one["tokens"].shape == (1, 1) and one["tokens_length"].tolist() == [1]


def test_projection_fetches_only_the_selected_fields_bytes(db):
    big = [{"blob": np.random.default_rng(i).integers(0, 255, 200_000, dtype=np.uint8), "small": np.arange(3) + i,
            "i": i} for i in range(6)]
    db.import_records(big, chunk_bytes=10 << 20)
    with db.data_generator(batch_size=6, shuffle=False) as s:
        next(s)
        everything = s.stats.bytes_read
    with db.data_generator(batch_size=6, shuffle=False, fields=["small", "i"]) as s:
        b = next(s)
        projected = s.stats.bytes_read
    assert sorted(b) == ["i", "small"] and b["small"][5].tolist() == [5, 6, 7]
    assert everything > 1_000_000 and projected < 1000


def test_decode_false_yields_the_stored_bytes_and_transform_gets_the_dict(db):
    recs = sample_records(4)
    db.import_records(recs)
    with db.data_generator(batch_size=4, shuffle=False, decode=False, fields=["image"]) as s:
        assert next(s)["image"] == [r["image"].data for r in recs]
    with db.data_generator(batch_size=4, shuffle=False, transform=lambda r: {"h": r["image"].shape[0]}) as s:
        assert next(s)["h"].tolist() == [16, 20, 24, 16]


def test_stream_order_resume_and_shards_hold_for_records(db):
    db.import_records(({"i": i, "v": np.full(100, i, np.uint16)} for i in range(50)), chunk_bytes=1000)
    kw = {"batch_size": 7, "seed": 3, "shuffle": True, "window_bytes": 3000}
    with db.data_generator({}, epochs=1, **kw) as s:
        full = [b["i"].tolist() for b in s]
    with db.data_generator({}, epochs=1, **kw) as s:
        first = [next(s)["i"].tolist() for _ in range(3)]
        state = s.state_dict()
    with db.data_generator({}, epochs=1, state=state, **kw) as s:
        rest = [b["i"].tolist() for b in s]
    assert first + rest == full
    shards = []
    for rank in range(3):
        with db.data_generator({}, epochs=1, shard=(rank, 3), **kw) as s:
            shards += [i for b in s for i in b["i"].tolist()]
    assert sorted(shards) == list(range(50))


@pytest.mark.parametrize("record, encode, error, words", [
    ({"a": object()}, None, InvalidDocument, "unsupported value type object"),
    ({"a": np.zeros(3, dtype=object)}, None, CodecError, "dtype object"),
    ({"a": np.zeros((4, 4), np.float32)}, {"a": "jpeg"}, CodecError, "jpeg stores uint8"),
    ({"a": "text"}, {"a": "png"}, CodecError, "not an image array"),
    ({"_a": 1}, None, InvalidDocument, "field names"),
    ({"a": b"junk" * 10}, None, None, None),
])
def test_bad_records_are_typed_errors_naming_record_and_field_and_write_nothing(db, record, encode, error, words):
    good = {"a": np.zeros((4, 4), np.uint8)} if error is not None else record
    records = [{"a": np.ones((4, 4), np.uint8)}, good, record]
    if error is None:
        assert len(db.import_records(records)) == 3
        return
    with pytest.raises(error) as info:
        db.import_records(records, encode=encode)
    message = str(info.value)
    assert "record 2, field '" in message and words in message
    assert len(db.find_data()) == 0  # validated before the chunk was written
    assert list(db.blobs.list()) == []


def test_an_unknown_codec_in_encode_is_refused_before_reading_any_record(db):
    def never():
        raise AssertionError("no record may be read")
        yield {}

    with pytest.raises(CodecError, match="unknown codec 'webp'"):
        db.import_records(never(), encode={"a": "webp"})
    with pytest.raises(CodecError, match="quality"):
        db.import_records([], encode={"a": "png:5"})


def test_encoded_checks_its_codec_and_header():
    with pytest.raises(CodecError, match="unknown media codec"):
        tdb.Encoded(b"x", "gif")
    with pytest.raises(CodecError, match="record 0, field 'img'"), tdb.connect("memory://enc-bad", study="s") as db:
        db.import_records([{"img": tdb.Encoded(b"\xff\xd8not a jpeg", "jpeg")}])


def test_a_corrupt_jpeg_on_read_names_sample_and_field_and_skip_counts_it(db):
    ids = db.import_records(sample_records(6))
    doc = next(iter(db.find_data({"_id": ids[2]})))
    seg = doc["_fields"]["image"]
    chunk = bytearray(db.scope.get_blob(doc["_chunk"]["key"]))
    start = seg["offset"] + seg["length"] // 2
    chunk[start: start + 40] = b"\x00" * 40  # damage the entropy-coded data, keep the length
    with db.scope.writing_blobs() as put:
        key = put(bytes(chunk))
    # A matching crc32, so only the JPEG decoder can notice the damage.
    fields = {**doc["_fields"], "image": {**seg, "crc32": crc32(bytes(chunk[seg["offset"]: seg["offset"] + seg["length"]]))}}
    db.scope.index.update_many("data", {"_id": ids[2]}, {"$set": {"_fields": fields, "_chunk": {**doc["_chunk"], "key": key}}})
    with pytest.raises(SampleError) as info:
        db.find_data().records()
    assert ids[2] in str(info.value) and "'image'" in str(info.value)
    assert len(db.find_data().records(on_error="skip")) == 5
    with db.data_generator(batch_size=6, shuffle=False, on_error="skip") as s:
        b = next(s)
        assert len(b["caption"]) == 5 and s.stats.skipped == 1 and s.stats.skipped_ids == (ids[2],)


def test_a_transform_returning_tuples_yields_a_list_and_arrays_refuses_records(db):
    db.import_records(sample_records(3))
    with db.data_generator(batch_size=3, shuffle=False, transform=lambda r: (r["label"], r["caption"])) as s:
        assert next(s) == [(0, "caption 0"), (1, "caption 1"), (2, "caption 2")]
    with pytest.raises(SampleError, match=r"records\(\)"):
        db.find_data().arrays()
