"""Shared fixtures: a warehouse on each embedded backend (memory and a local directory)."""

from __future__ import annotations

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the fault suite's full trial counts (100+ crash trials) instead of the CI profile")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long"):
        settings.load_profile("explore")


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
