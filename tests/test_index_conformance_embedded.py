"""The embedded index stores pass the index-store conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.testing import IndexStoreSuite


class TestMemoryIndexStore(IndexStoreSuite):
    @pytest.fixture
    def index_store(self) -> Iterator[MemoryIndexStore]:
        store = MemoryIndexStore.named("")
        yield store
        store.close()


class TestSQLiteIndexStore(IndexStoreSuite):
    @pytest.fixture
    def index_store(self, tmp_path: Path) -> Iterator[SQLiteIndexStore]:
        store = SQLiteIndexStore(tmp_path / "index.sqlite", page_size=16)
        yield store
        store.close()
