"""`tensordb demo` against MongoDB + GridFS, and the stream over GridFS matching the embedded order."""

from __future__ import annotations

from tensordb_core.testing.warehouse_checks import check_records, check_warehouse_and_stream, run_cli_demo


def test_warehouse_api_and_stream_on_mongo_and_gridfs(tmp_path, mongo_uri):
    check_warehouse_and_stream(tmp_path, None, index=mongo_uri)


def test_records_on_mongo_and_gridfs(tmp_path, mongo_uri):
    check_records(tmp_path, None, index=mongo_uri)


def test_demo_on_mongo(mongo_uri):
    run_cli_demo(mongo_uri)
