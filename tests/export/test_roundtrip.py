"""Each export read back with its own library equals what the warehouse holds.

npz with ``numpy.load``, Parquet with ``pyarrow.parquet``, WebDataset shards
with the ``webdataset`` package's reader, the Hugging Face dataset with
``datasets.load_from_disk``: arrays equal, labels and tags equal, media bytes
identical to the stored JPEG/PNG files, on (X, y) data and on records.
"""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import webdataset as wds

from tensordb_core.warehouse.export import export_data


def _ragged(values, offsets):
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


# -- npz ---------------------------------------------------------------------------------------------------------

def test_npz_of_xy_data_holds_one_array_per_field(xy, tmp_path):
    summary = export_data(xy.db, tmp_path / "xy.npz", format="npz", page_size=40)
    with np.load(tmp_path / "xy.npz") as z:
        np.testing.assert_array_equal(z["x"], xy.X)
        np.testing.assert_array_equal(z["label"], xy.y)
        assert z["x"].dtype == np.float32 and z["label"].dtype == np.int64
        assert z["split"].tolist() == [r["split"] for r in xy.records]
        np.testing.assert_array_equal(z["n"], np.arange(150))
        assert z["_id"].tolist() == xy.ids
        assert json.loads(z["_schema.json"])["fields"]["x"]["layout"] == "dense"
    assert summary["samples"] == 150


def test_npz_of_records_keeps_media_bytes_and_ragged_fields_as_values_and_offsets(records, tmp_path):
    export_data(records.db, tmp_path / "rec.npz", format="npz", page_size=16)
    with np.load(tmp_path / "rec.npz") as z:
        images = _ragged(z["image"], z["image_offsets"])
        masks = _ragged(z["mask"], z["mask_offsets"])
        raws = _ragged(z["raw"], z["raw_offsets"])
        tokens = _ragged(z["tokens"], z["tokens_offsets"])
        for i, rec in enumerate(records.records):
            assert images[i].tobytes() == rec["image"] and images[i].tobytes()[:2] == b"\xff\xd8"
            assert masks[i].tobytes() == rec["mask"] and masks[i].tobytes()[:4] == b"\x89PNG"
            assert raws[i].tobytes() == rec["raw"]
            np.testing.assert_array_equal(tokens[i], rec["tokens"])
            assert z["tokens_shapes"][i].tolist() == [len(rec["tokens"])]
            assert json.loads(z["box"][i]) == rec["box"]
        np.testing.assert_array_equal(z["emb"], np.stack([r["emb"] for r in records.records]))
        assert z["caption"].tolist() == [r["caption"] for r in records.records]
        assert z["label"].tolist() == [r["label"] for r in records.records]


# -- Parquet -----------------------------------------------------------------------------------------------------

def test_parquet_of_xy_data_has_a_tensor_column_and_row_groups(xy, tmp_path):
    export_data(xy.db, tmp_path / "xy.parquet", format="parquet", page_size=40, row_group_size=64)
    meta = pq.ParquetFile(tmp_path / "xy.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [64, 64, 22]
    table = pq.read_table(tmp_path / "xy.parquet")
    assert str(table.schema.field("x").type.extension_name) == "arrow.fixed_shape_tensor"
    np.testing.assert_array_equal(table.column("x").combine_chunks().to_numpy_ndarray(), xy.X)
    np.testing.assert_array_equal(table.column("label").to_numpy(), xy.y)
    assert table.column("split").to_pylist() == [r["split"] for r in xy.records]
    assert table.column("_id").to_pylist() == xy.ids


def test_parquet_of_records_keeps_media_bytes_in_binary_columns(records, tmp_path):
    export_data(records.db, tmp_path / "rec.parquet", format="parquet", page_size=16)
    table = pq.read_table(tmp_path / "rec.parquet")
    assert json.loads(table.schema.field("image").metadata[b"tensordb"]) == {"kind": "image", "codec": "jpeg"}
    rows = table.to_pylist()
    for row, rec in zip(rows, records.records, strict=True):
        assert row["image"] == rec["image"] and row["mask"] == rec["mask"] and row["raw"] == rec["raw"]
        assert row["tokens"] == rec["tokens"].tolist() and row["tokens_shape"] == [len(rec["tokens"])]
        assert (row["label"], row["caption"], json.loads(row["box"])) == (rec["label"], rec["caption"], rec["box"])
    np.testing.assert_array_equal(table.column("emb").combine_chunks().to_numpy_ndarray(),
                                  np.stack([r["emb"] for r in records.records]))


# -- WebDataset --------------------------------------------------------------------------------------------------

def test_webdataset_of_xy_data_has_npy_cls_and_json_members_in_numbered_shards(xy, tmp_path):
    export_data(xy.db, tmp_path / "xy", format="webdataset", page_size=40, shard_samples=60)
    shards = sorted(p.name for p in (tmp_path / "xy").iterdir())
    assert shards == ["xy-000000.tar", "xy-000001.tar", "xy-000002.tar"]
    reader = wds.WebDataset([str(tmp_path / "xy" / s) for s in shards], shardshuffle=False).decode()
    samples = list(reader)
    assert [s["__key__"] for s in samples] == xy.ids
    np.testing.assert_array_equal(np.stack([s["x.npy"] for s in samples]), xy.X)
    assert [s["cls"] for s in samples] == xy.y.tolist()
    assert [s["json"] for s in samples] == [{"label": r["label"], "n": r["n"], "split": r["split"]}
                                            for r in xy.records]


def test_webdataset_of_records_keeps_jpeg_and_png_files_byte_for_byte(records, tmp_path):
    export_data(records.db, tmp_path / "rec", format="webdataset", page_size=16, shard_bytes=20_000)
    shards = sorted(str(p) for p in (tmp_path / "rec").iterdir())
    assert len(shards) > 1  # cut by bytes
    samples = list(wds.WebDataset(shards, shardshuffle=False))
    assert len(samples) == len(records.records)
    for s, rec in zip(samples, records.records, strict=True):
        assert s["image.jpg"] == rec["image"] and s["mask.png"] == rec["mask"]
        assert s.get("raw.bin", b"") == rec["raw"]
        np.testing.assert_array_equal(np.load(__import__("io").BytesIO(s["tokens.npy"])), rec["tokens"])
        tags = json.loads(s["json"])
        assert tags == {"box": rec["box"], "caption": rec["caption"], "label": rec["label"], "split": "train"}
        assert int(s["cls"]) == rec["label"]


# -- Hugging Face datasets ---------------------------------------------------------------------------------------

def test_hf_dataset_of_xy_data_has_array_features(xy, tmp_path):
    export_data(xy.db, tmp_path / "xy", format="hf", page_size=40)
    ds = datasets.load_from_disk(str(tmp_path / "xy"))
    assert isinstance(ds.features["x"], datasets.Array2D) and ds.features["x"].shape == (4, 3)
    assert ds.num_rows == 150 and ds["_id"][:] == xy.ids
    rows = ds.with_format("numpy")[:]
    np.testing.assert_array_equal(rows["x"], xy.X)
    np.testing.assert_array_equal(rows["label"], xy.y)
    assert list(rows["split"]) == [r["split"] for r in xy.records]


def test_hf_dataset_of_records_stores_images_encoded_under_an_image_feature(records, tmp_path):
    export_data(records.db, tmp_path / "rec", format="hf", page_size=16)
    ds = datasets.load_from_disk(str(tmp_path / "rec"))
    assert isinstance(ds.features["image"], datasets.Image)
    first = ds[0]["image"]  # decoded by datasets on read
    assert first.size == (24, 16) and first.format == "JPEG"
    raw = ds.cast_column("image", datasets.Image(decode=False)).cast_column("mask", datasets.Image(decode=False))
    for row, rec in zip(raw, records.records, strict=True):
        assert row["image"]["bytes"] == rec["image"] and row["mask"]["bytes"] == rec["mask"]
        assert row["raw"] == rec["raw"] and row["tokens"] == rec["tokens"].tolist()
        assert (row["label"], row["caption"], json.loads(row["box"])) == (rec["label"], rec["caption"], rec["box"])
        np.testing.assert_array_equal(np.asarray(row["emb"], np.float32), rec["emb"])


# -- query and fields --------------------------------------------------------------------------------------------

def test_a_query_and_fields_export_only_those_samples_and_fields(xy, tmp_path):
    summary = export_data(xy.db, tmp_path / "test.parquet", {"split": "test"}, format="parquet",
                          fields=["x", "label"], page_size=7)
    table = pq.read_table(tmp_path / "test.parquet")
    assert table.column_names == ["_id", "x", "label"] and summary["samples"] == 30
    np.testing.assert_array_equal(table.column("x").combine_chunks().to_numpy_ndarray(), xy.X[::5])
    np.testing.assert_array_equal(table.column("label").to_numpy(), xy.y[::5])


def test_progress_counts_every_exported_sample(xy, tmp_path):
    seen = []
    export_data(xy.db, tmp_path / "xy.npz", format="npz", page_size=64, progress=seen.append)
    assert seen == [64, 64, 22]
