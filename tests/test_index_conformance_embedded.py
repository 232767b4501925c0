"""The embedded index stores pass the index-store conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.testing import IndexStoreSuite


class TestMemoryIndexStore(IndexStoreSuite):
    @pytest.fixture
    def index_store(self) -> Iterator[MemoryIndexStore]:
        store = MemoryIndexStore.named("")
        yield store
        store.close()
