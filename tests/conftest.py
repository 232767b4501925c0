"""Shared fixtures: a warehouse on each embedded backend (memory and a local directory)."""

from __future__ import annotations

import uuid

import pytest

import tensordb_core as tdb


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the fault suite's full trial counts (100+ crash trials) instead of the CI profile")


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
