"""The SQLite index's table cache: a thread queries a table only once the transaction creating it committed."""

from __future__ import annotations

import threading

from tensordb_core.embedded.sqlite_index import SQLiteIndexStore


def test_a_table_created_in_an_open_transaction_is_not_queried_by_other_threads(tmp_path):
    """Another thread's connection cannot see a table before its creating transaction commits: until then
    a find there finds nothing (it used to be told the table existed and fail with "no such table")."""
    store = SQLiteIndexStore(tmp_path / "i.sqlite")
    seen: list[object] = []
    with store._write("insert") as conn:
        store._create(conn, "fresh")
        reader = threading.Thread(target=lambda: seen.append(_attempt(lambda: list(store.find("fresh", {})))))
        reader.start()
        reader.join()
    assert seen == [[]]
    store.insert_many("fresh", [{"_id": "a", "v": 1}])
    assert [d["_id"] for d in store.find("fresh", {})] == ["a"]


def _attempt(read):
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - the test compares what the reader saw
        return exc
