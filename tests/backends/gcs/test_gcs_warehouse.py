"""The warehouse, the stream and `tensordb demo` with an embedded index and GCS blobs (fake-gcs-server)."""

from __future__ import annotations

from tensordb_core.testing.warehouse_checks import check_records, check_warehouse_and_stream, run_cli_demo


def test_warehouse_api_and_stream_on_gcs_blobs(tmp_path, gcs_uri):
    check_warehouse_and_stream(tmp_path, gcs_uri)


def test_records_on_gcs_blobs(tmp_path, gcs_uri):
    check_records(tmp_path, gcs_uri)


def test_demo_with_gcs_blobs(tmp_path, gcs_uri):
    run_cli_demo(str(tmp_path / "idx"), gcs_uri)
