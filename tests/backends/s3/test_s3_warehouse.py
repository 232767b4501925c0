"""The warehouse, the stream and `tensordb demo` with an embedded index and S3 blobs (moto server)."""

from __future__ import annotations

from s3kit import OPEN_CREDENTIALS

from tensordb_core.testing.warehouse_checks import check_records, check_warehouse_and_stream, run_cli_demo


def test_warehouse_api_and_stream_on_s3_blobs(tmp_path, s3_uri):
    check_warehouse_and_stream(tmp_path, s3_uri, blob_options=dict(OPEN_CREDENTIALS))


def test_records_on_s3_blobs(tmp_path, s3_uri):
    check_records(tmp_path, s3_uri, blob_options=dict(OPEN_CREDENTIALS))


def test_demo_with_s3_blobs(tmp_path, s3_uri):
    env = {"AWS_ACCESS_KEY_ID": OPEN_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": OPEN_CREDENTIALS["aws_secret_access_key"]}
    out = run_cli_demo(str(tmp_path / "idx"), s3_uri, env)
    assert OPEN_CREDENTIALS["aws_secret_access_key"] not in out
