"""``tensordb copy`` across backends: embedded → MongoDB+GridFS → MongoDB+S3 → embedded, all identical.

Real servers on loopback: the mongoeco wire server (launched by the Mongo
backend tests' own launcher) and moto_server for S3 (the S3 tests' kit).
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tensordb_core as tdb
from serverkit import mongo_kit
from tensordb_core.cli.main import main
from tensordb_core.warehouse.copying import copy_warehouse
from test_copy import assert_same_study, make_study

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.mongo, pytest.mark.s3]


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mongo_base() -> Iterator[tuple[str, int]]:
    kit = mongo_kit()
    server = kit.launch("mongoeco-copy")
    try:
        yield f"mongodb://127.0.0.1:{server.port}", kit.TEST_WRITE_BATCH
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_base() -> Iterator[str]:
    kit = _load("s3kit_for_copy", HERE / "backends" / "s3" / "s3kit.py")
    server = kit.start_moto("moto-copy")
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        kit.admin_client(endpoint).create_bucket(Bucket=kit.BUCKET)
        yield f"s3://{kit.BUCKET}/copy-{uuid.uuid4().hex[:8]}?endpoint_url={endpoint}&region={kit.REGION}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> None:
    """Credentials for the CLI the way a user gives them (the environment), and nothing from ~/.aws."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copy-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copy-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_round_trip_through_gridfs_and_s3(tmp_path, mongo_base, s3_base, aws_env, capsys):
    base, batch = mongo_base
    origin, back = str(tmp_path / "origin"), str(tmp_path / "back")
    gridfs = f"{base}/copy_a_{uuid.uuid4().hex[:8]}?directConnection=true&write_batch_size={batch}"
    on_s3 = f"{base}/copy_b_{uuid.uuid4().hex[:8]}?directConnection=true&write_batch_size={batch}"
    make_study(origin)
    make_study(origin, "bystander", seed=3)  # another study in the same warehouse stays behind

    first = copy_warehouse(origin, gridfs, study="s1")  # embedded -> Mongo + GridFS
    assert first.copied["data"] == 40
    assert_same_study(origin, gridfs)

    # Mongo + GridFS -> Mongo + S3, through the command line as a user would.
    assert main(["copy", gridfs, on_s3, "--study", "s1", "--dst-blobs", s3_base]) == 0
    assert "data: 40 copied" in capsys.readouterr().out
    assert_same_study(gridfs, on_s3, dst_blobs=s3_base)

    assert main(["copy", on_s3, back, "--study", "s1", "--src-blobs", s3_base]) == 0  # S3 -> embedded
    capsys.readouterr()
    blobs = assert_same_study(origin, back)
    assert blobs == first.blobs_copied

    # Idempotent at every hop: nothing left to copy.
    again = copy_warehouse(on_s3, back, study="s1", src_blobs=s3_base)
    assert again.documents_copied == 0 and again.blobs_copied == 0
    with tdb.connect(back, "bystander") as db:  # the other study never left the origin
        assert len(db.find_data()) == 0 and db.find_parameter_docs() == []
