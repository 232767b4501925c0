"""Shared fixtures: a warehouse on each embedded backend (memory and a local directory)."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import settings

import tensordb_core as tdb

# The default run draws the same examples every time, so a red CI is reproducible and a green one
# means the same thing twice; `--long` (see pytest_configure) explores fresh random examples, and
# what it finds is pinned as a regression test (as test_fuzz_codec's exhaustive byte sweep was).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")

# A stream given no cache_dir uses $TENSORDB_CACHE_DIR (stream/disk_cache.py): a developer's own setting would
# make the suite's streams start from references kept by earlier tests and runs; tests that want it set it.
os.environ.pop("TENSORDB_CACHE_DIR", None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the fault suite's full trial counts (100+ crash trials) instead of the CI profile")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long"):
        settings.load_profile("explore")


#: Which server each marker stands for: the fixtures that start it, and the parameter ids that pick it.
SERVERS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "mongo": ({"mongo_server", "fault_mongo", "mongo_uri", "mongo_port", "mongo_warehouse", "mongo_server_uri"},
              ("mongo", "gridfs")),
    "s3": ({"moto_server", "fault_moto", "s3_uri"}, ("s3",)),
    "gcs": ({"fake_gcs", "gcs_uri", "gcs_endpoint"}, ("gcs",)),
    "azure": ({"azurite", "azure_uri", "azure_endpoint"}, ("azure",)),
}


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a server, so ``-m "not mongo"`` really leaves MongoDB out.

    A test needs a server when one of that server's fixtures is in its fixture
    closure, or when a parameter picks it (fixtures looked up at run time, like
    the fault suite's ``warehouse["mongo"]``, show only there).
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        ids = set(callspec.id.lower().split("-")) if callspec else set()  # ids, not values: a value's repr may recurse
        for marker, (fixtures, words) in SERVERS.items():
            if names & fixtures or ids & set(words):
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(params=["memory", "dir"])
def warehouse_uri(request, tmp_path) -> str:
    """A fresh warehouse URI on each embedded backend."""
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    return str(tmp_path / "warehouse")


@pytest.fixture
def db(warehouse_uri):
    with tdb.connect(warehouse_uri, study="s1") as handle:
        yield handle


#: Samples in :func:`torch_warehouse`.
TORCH_SAMPLES = 120


@pytest.fixture
def torch_warehouse(tmp_path) -> str:
    """A directory warehouse, study ``torch``, of 120 samples (every value of X[i] is i, label i) in chunks of
    512 bytes: many chunks and windows for the torch adapter's tests to shard over loader workers."""
    import numpy as np

    path = str(tmp_path / "wh")
    with tdb.connect(path, study="torch") as db:
        n = TORCH_SAMPLES
        X = (np.arange(n)[:, None] + np.zeros(6)).astype(np.float32).reshape(n, 2, 3)
        db.import_data(X, np.arange(n), chunk_bytes=512)
    return path


@pytest.fixture
def torch_records_warehouse(tmp_path) -> str:
    """A directory warehouse, study ``r``, of 40 sample records (``testing.warehouse_checks.sample_records``: an
    image, tokens, a caption and a label each) in chunks of 4 KiB, for the torch adapter's record tests."""
    from tensordb_core.testing.warehouse_checks import sample_records

    path = str(tmp_path / "records")
    with tdb.connect(path, study="r") as db:
        db.import_records(sample_records(40), chunk_bytes=4096)
    return path
