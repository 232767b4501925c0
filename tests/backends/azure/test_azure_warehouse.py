"""The warehouse, the stream and `tensordb demo` with an embedded index and Azure blobs (Azurite)."""

from __future__ import annotations

from azurekit import ACCOUNT_KEY

from tensordb_core.testing.warehouse_checks import check_records, check_warehouse_and_stream, run_cli_demo


def test_warehouse_api_and_stream_on_azure_blobs(tmp_path, azure_uri, azure_key):
    check_warehouse_and_stream(tmp_path, azure_uri, blob_options=azure_key)


def test_records_on_azure_blobs(tmp_path, azure_uri, azure_key):
    check_records(tmp_path, azure_uri, blob_options=azure_key)


def test_demo_with_azure_blobs(tmp_path, azure_uri):
    env = {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_KEY": ACCOUNT_KEY}
    out = run_cli_demo(str(tmp_path / "idx"), azure_uri, env)
    assert ACCOUNT_KEY not in out
