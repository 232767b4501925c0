"""Sample-reference tables kept in a stream's ``cache_dir`` for the next process (stream/snapshots.py, issue 16).

A stream given ``cache_dir`` keeps its query's reference table there once its
first epoch has read it; the next stream (here: a new stream with a new cache
object, as a new process would make) starts from it without reading the index
(``index_s`` stays 0.0: no index read was timed), gives the same batches, and
reads the index again whenever the kept table could be stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
import tensordb_core.stream.engine as engine_module
from tensordb_core.format.codec import decode_archive, encode_archive
from tensordb_core.stream.disk_cache import DiskChunkCache
from tensordb_core.stream.memo import IndexMemo
from tensordb_core.stream.refs import PackedIds, RefTable
from tensordb_core.stream.snapshots import POINTERS, RefSnapshots

N = 300


def samples(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, 4, 6), dtype=np.uint8)


def stream(db: tdb.TensorDB, cache: Path | None, **kwargs: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]], Any]:
    options = {"batch_size": 16, "seed": 7, "shuffle": True, "window_bytes": 2048, **kwargs}
    if cache is not None:
        options["cache_dir"] = str(cache)
    with db.data_generator({}, **options) as s:
        batches = [(X.copy(), y.copy()) for X, y in s]
        return batches, s.stats


def same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def one_row_table() -> RefTable:
    table = RefTable()
    table.extend([{"_id": "a", "_seq": 1, "label": 0, "_x": {"key": "k", "chunk_size": 9, "offset": 0, "length": 9,
                                                               "codec": "none", "dtype": "|u1", "shape": [9],
                                                               "crc32": 1}}])
    return table


def kept(cache: Path) -> list[Path]:
    return sorted((cache / POINTERS).glob("[0-9a-f]*"))


@pytest.mark.parametrize("epochs", [1, 2])
def test_the_next_stream_starts_from_the_kept_table_and_gives_the_same_batches(tmp_path: Path, epochs: int) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        plain, plain_stats = stream(db, None, epochs=epochs)
        first, first_stats = stream(db, tmp_path / "c", epochs=epochs)
        assert plain_stats.index_s > 0 and first_stats.index_s > 0
        assert len(kept(tmp_path / "c")) == 1
        again, again_stats = stream(db, tmp_path / "c", epochs=epochs)
        assert again_stats.index_s == 0.0  # the kept table: no document read
        same(plain, first)
        same(plain, again)
        sharded = [stream(db, tmp_path / "c", epochs=epochs, shard=(rank, 2))[0] for rank in range(2)]
        cold = [stream(db, None, epochs=epochs, shard=(rank, 2))[0] for rank in range(2)]
        for warm_shard, cold_shard in zip(sharded, cold):
            same(cold_shard, warm_shard)


def test_a_local_store_copies_no_chunk_into_the_cache(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        stream(db, tmp_path / "c")
    chunk_dirs = [p for p in (tmp_path / "c").iterdir() if p.is_dir() and p.name != POINTERS]
    files = [f for d in chunk_dirs for f in d.iterdir()]
    assert len(files) == 1  # the table alone: the chunks are local files already
    table = decode_archive(files[0].read_bytes())
    assert isinstance(table, dict) and "lists" in table and len(table["seq"]) == N


def test_a_relabel_or_a_delete_makes_the_next_stream_read_the_index(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        stream(db, tmp_path / "c")
        assert db.update_data({"label": 5}, {"$set": {"label": 1005}}) == 1
        relabelled, stats = stream(db, tmp_path / "c", shuffle=False)
        assert stats.index_s > 0
        labels = np.concatenate([y for _, y in relabelled])
        assert 1005 in labels.tolist() and 5 not in labels.tolist()
        assert db.delete_data({"label": {"$lt": 10}}) == 9
        after, stats = stream(db, tmp_path / "c", shuffle=False)
        assert stats.index_s > 0
        assert sorted(np.concatenate([y for _, y in after]).tolist()) == [*range(10, N), 1005]
        again, stats = stream(db, tmp_path / "c", shuffle=False)
        assert stats.index_s == 0.0  # the table of the new generation, kept by the stream before
        same(after, again)


def test_samples_imported_since_are_read_from_the_index_after_the_kept_table(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        stream(db, tmp_path / "c")
        db.import_data(samples(50, seed=1), np.arange(N, N + 50), chunk_bytes=1024)
        grown, stats = stream(db, tmp_path / "c", shuffle=False)
        assert stats.index_s > 0  # the 50 new documents, past the kept bound
        assert np.concatenate([y for _, y in grown]).tolist() == list(range(N + 50))
        cold, _ = stream(db, None, shuffle=False)
        same(cold, grown)
        again, stats = stream(db, tmp_path / "c", shuffle=False)
        assert stats.index_s == 0.0
        same(cold, again)


def test_another_warehouse_or_query_never_finds_the_table(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    with tdb.connect(tmp_path / "a", study="s") as a, tdb.connect(tmp_path / "b", study="s") as b:
        a.import_data(samples(), np.arange(N), chunk_bytes=1024)
        b.import_data(samples(seed=3), np.arange(N) + 10_000, chunk_bytes=1024)
        stream(a, cache)
        from_b, stats = stream(b, cache, shuffle=False)  # same study, same query, another index
        assert stats.index_s > 0
        assert np.concatenate([y for _, y in from_b]).tolist() == list(range(10_000, 10_000 + N))
        with a.data_generator({"label": {"$gte": 100}}, batch_size=16, cache_dir=str(cache)) as s:
            assert sum(len(y) for _, y in s) == N - 100 and s.stats.index_s > 0
    assert len(kept(cache)) == 3


def test_a_damaged_or_foreign_file_is_ignored_and_the_index_read(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        cold, _ = stream(db, tmp_path / "c")
        table = next(f for d in (tmp_path / "c").iterdir() if d.is_dir() and d.name != POINTERS for f in d.iterdir())
        data = bytearray(table.read_bytes())
        data[len(data) // 2] ^= 0xFF
        table.write_bytes(bytes(data))
        damaged, stats = stream(db, tmp_path / "c")
        assert stats.index_s > 0  # a column's crc32 failed: deleted and the index read
        assert table.read_bytes() != data  # dropped, and kept anew (the same table: the same name) by that stream
        same(cold, damaged)
        again, stats = stream(db, tmp_path / "c")
        assert stats.index_s == 0.0  # kept anew by the stream that read the index
        same(cold, again)
        (pointer,) = kept(tmp_path / "c")
        pointer.write_text("not json")
        foreign, stats = stream(db, tmp_path / "c")
        assert stats.index_s > 0
        same(cold, foreign)


def test_a_table_evicted_from_the_cache_is_kept_again_by_the_next_stream(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        cold, _ = stream(db, tmp_path / "c")
        table = next(f for d in (tmp_path / "c").iterdir() if d.is_dir() and d.name != POINTERS for f in d.iterdir())
        table.unlink()  # what DiskChunkCache.evict does to the least recently used file
        _, stats = stream(db, tmp_path / "c")
        assert stats.index_s > 0 and table.exists()
        again, stats = stream(db, tmp_path / "c")
        assert stats.index_s == 0.0
        same(cold, again)


def test_records_are_not_kept(tmp_path: Path) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_records([{"tokens": np.arange(i + 1, dtype=np.int32), "label": i} for i in range(40)])
        with db.data_generator({}, batch_size=8, pad={"tokens": 0}, cache_dir=str(tmp_path / "c")) as s:
            assert sum(len(batch["label"]) for batch in s) == 40
    assert kept(tmp_path / "c") == []


def reference_docs(n: int, seq: Callable[[int], int], label: Callable[[int], Any], key: Callable[[int], str]
                   ) -> list[dict[str, Any]]:
    """``n`` plain reference documents of two formats, with these ``_seq`` s, labels and chunk keys."""
    return [{"_id": f"id{i}", "_seq": seq(i), "label": label(i),
             "_x": {"key": key(i), "chunk_size": 999, "offset": 10 * i, "length": 10, "codec": "lz4",
                    "dtype": "<f4" if i % 5 else "|u1", "shape": [2, i % 2 + 1], "crc32": 1000 + i}}
            for i in range(n)]


def same_columns(a: Any, b: Any) -> None:
    """Two frozen tables hold the same references (ids, chunks, formats and every numeric column)."""
    assert list(a.ids) == list(b.ids) and a.chunk_keys == b.chunk_keys and a.formats == b.formats
    for name in ("seq", "chunk", "chunk_sizes", "x_off", "x_len", "x_crc", "x_codec", "x_fmt"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_a_table_round_trips_through_its_parts() -> None:
    table = RefTable()
    table.extend(reference_docs(23, lambda i: i + 1, lambda i: ["a", 2, None][i % 3], lambda i: f"k{i // 4}"))
    parts = table.to_parts()
    assert parts is not None
    back = RefTable.from_parts(*parts)
    same_columns(table.freeze(), back.freeze())
    assert back.labels == table.labels and back.last_seq == 23
    arrays, lists = parts
    with pytest.raises(ValueError):
        RefTable.from_parts({**arrays, "chunk": arrays["chunk"] + 100}, lists)
    with pytest.raises(ValueError):
        RefTable.from_parts(arrays, {**lists, "ids": lists["ids"][:-1]})


def test_a_table_of_another_generation_or_a_shorter_bound_is_not_lent(tmp_path: Path) -> None:
    table = one_row_table()
    snapshots = RefSnapshots(DiskChunkCache(tmp_path / "c"))
    assert snapshots.save("index-1", "key", table, 5, generation=2)
    assert not snapshots.save("index-1", "key", table, 5, generation=2)  # as far read: kept already
    assert snapshots.load("index-1", "key", 3) is None
    assert snapshots.load("index-2", "key", 2) is None
    loaded = snapshots.load("index-1", "key", 2)
    assert loaded is not None and loaded[1] == 5 and loaded[0].ids == ["a"]
    unkeepable = RefTable()
    unkeepable.extend([{"_id": "b", "_seq": 1, "label": 0}])  # no _x: a malformed row only its document describes
    assert not snapshots.save("index-1", "other", unkeepable, 1, generation=0)


@pytest.mark.parametrize("labels", [[3, 1, 2], [0.5, 1.0, -2.0], [True, False, True], ["cat", None, "dog"],
                                    [1, "b", [2, 3]], [None, None, None]])
def test_labels_and_ids_come_back_as_they_were_read(tmp_path: Path, labels: list[Any]) -> None:
    table = RefTable()
    table.extend([{"_id": f"s{i}", "_seq": i + 1, "label": label,
                   "_x": {"key": "k", "chunk_size": 30, "offset": 10 * i, "length": 10, "codec": "none",
                          "dtype": "|u1", "shape": [10], "crc32": i}} for i, label in enumerate(labels)])
    snapshots = RefSnapshots(DiskChunkCache(tmp_path / "c"))
    assert snapshots.save("index", "key", table, 3, generation=0)
    loaded = snapshots.load("index", "key", 0)
    assert loaded is not None
    got = loaded[0].labels  # numbers and bools as a column, made a list where the table grows
    got = got.tolist() if isinstance(got, np.ndarray) else got
    assert got == labels and [type(v) for v in got] == [type(v) for v in labels]
    assert loaded[0].ids == ["s0", "s1", "s2"]
    odd = RefTable()
    odd.extend([{"_id": "a\x00b", "_seq": 1, "label": 0, "_x": {"key": "k", "chunk_size": 30, "offset": 0,
                                                                 "length": 10, "codec": "none", "dtype": "|u1",
                                                                 "shape": [10], "crc32": 0}}])
    assert not snapshots.save("index", "odd", odd, 1, generation=0)  # an id holding the separator: not kept


def _row(seq: int, doc_id: str, label: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_seq": seq, "label": label, "_x": {
        "key": "k", "chunk_size": 90, "offset": 10 * seq, "length": 10, "codec": "none", "dtype": "|u1",
        "shape": [10], "crc32": seq}}


def test_a_kept_tables_ids_and_labels_stay_packed_until_it_grows(tmp_path: Path) -> None:
    """A loaded table's ids are cut from their one text as asked (PackedIds) and its numeric labels stay a
    column; growing makes them lists again, and either form is kept again as it was."""
    table = RefTable()
    ids = ["é0", "s1", "ß-2", "s3"]
    table.extend([_row(i + 1, doc_id, 10 * i) for i, doc_id in enumerate(ids)])
    snapshots = RefSnapshots(DiskChunkCache(tmp_path / "c"))
    assert snapshots.save("index", "key", table, 4, generation=0)
    loaded = snapshots.load("index", "key", 0)
    assert loaded is not None
    kept = loaded[0]
    assert isinstance(kept.ids, PackedIds) and isinstance(kept.labels, np.ndarray)
    packed = kept.ids
    assert (packed[0], packed[2], packed[-1], len(packed)) == ("é0", "ß-2", "s3", 4)
    assert packed[1:3] == ["s1", "ß-2"] and packed[::2] == ["é0", "ß-2"] and packed[3:1] == [] and packed[9:] == []
    assert list(packed) == ids and packed == ids and packed != ids[:3]
    with pytest.raises(IndexError):
        packed[4]
    frozen = kept.freeze()
    assert frozen.ids is packed and frozen.labels.tolist() == [0, 10, 20, 30]
    other = RefSnapshots(DiskChunkCache(tmp_path / "d"))  # kept again while packed: the same text and column
    assert other.save("index", "key", kept, 4, generation=0)
    again = other.load("index", "key", 0)
    assert again is not None and again[0].ids == ids and again[0].labels.tolist() == [0, 10, 20, 30]
    grown = RefTable()
    grown.extend_rows(kept, [(1, 3)])  # rows lent by a kept table: plain lists of plain values
    assert grown.ids == ["s1", "ß-2"] and grown.labels == [10, 20] and type(grown.labels[0]) is int
    kept.extend([_row(5, "s4", 40)])
    assert type(kept.ids) is list and kept.ids == [*ids, "s4"]
    assert kept.labels == [0, 10, 20, 30, 40] and {type(v) for v in kept.labels} == {int}
    assert kept.freeze().labels.tolist() == [0, 10, 20, 30, 40]


def test_a_load_moves_the_pointer_in_the_caches_lru_clock_and_a_memo_saves_a_bound_once(tmp_path: Path) -> None:
    table = one_row_table()
    snapshots = RefSnapshots(DiskChunkCache(tmp_path / "c"))
    assert snapshots.save("index", "key", table, 1, generation=0)
    (pointer,) = kept(tmp_path / "c")
    os.utime(pointer, (1_000_000, 1_000_000))
    assert snapshots.load("index", "key", 0) is not None
    assert pointer.stat().st_mtime > 1_000_000  # a hot table's pointer is not the LRU's first victim
    calls: list[int] = []
    original = snapshots.save
    snapshots.save = lambda *args: calls.append(args[3]) or original(*args)  # type: ignore[method-assign]
    memo = IndexMemo(snapshots)
    borrowed = memo.take("key", 0, "index")
    assert borrowed is not None
    memo.give("key", borrowed[0], borrowed[1], 0, "index")
    memo.give("key", borrowed[0], borrowed[1], 0, "index")
    assert calls == []  # loaded at this bound: nothing to write, no pointer read
    memo.give("key", borrowed[0], 2, 0, "index")
    memo.give("key", borrowed[0], 2, 0, "index")
    assert calls == [2]  # a further bound saved once


def _late(monkeypatch: pytest.MonkeyPatch, misses: int) -> list[int]:
    """Every table on disk loads beside the epoch (no bound loads at once), and is seen only after ``misses``
    asks: the stream switches to it at a chosen point, deterministically.  Returns the positions each stream
    had read from the index when it switched."""
    monkeypatch.setattr(engine_module, "LOAD_AT_ONCE_SEQS", 0)
    original, rest, switched = IndexMemo.load_later, engine_module.Engine._rest_from_earlier, []

    def load_later(self: IndexMemo, *args: Any) -> Any:
        ready, asked = original(self, *args), [0]

        def earlier(wait: bool = False) -> Any:
            asked[0] += 1
            if asked[0] <= misses and not wait:
                return None
            return ready(wait=True)  # loaded by now: the switch comes at this ask

        return earlier

    def spy(self: Any, earlier: Any, epoch: int, seq: int, q: Any, table: Any, done: int, checked: Any) -> bool:
        switched.append(done)
        return rest(self, earlier, epoch, seq, q, table, done, checked)

    monkeypatch.setattr(IndexMemo, "load_later", load_later)
    monkeypatch.setattr(engine_module.Engine, "_rest_from_earlier", spy)
    return switched


@pytest.mark.parametrize("misses", [0, 20, 60])
@pytest.mark.parametrize("epochs", [1, 2])
def test_a_large_kept_table_loads_beside_the_first_windows_and_the_batches_stay_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, misses: int, epochs: int) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        plain, _ = stream(db, None, epochs=epochs)
        cold = [stream(db, None, epochs=epochs, shard=(rank, 2))[0] for rank in range(2)]
        stream(db, tmp_path / "c", epochs=epochs)  # keeps the table
        switched = _late(monkeypatch, misses)
        again, _ = stream(db, tmp_path / "c", epochs=epochs)
        same(plain, again)
        assert len(switched) == 1 and 0 < switched[0] < N  # the rest of the epoch came from the kept table
        for rank in range(2):
            same(cold[rank], stream(db, tmp_path / "c", epochs=epochs, shard=(rank, 2))[0])
        assert len(switched) >= 2  # a shard switches too (unless its piece ended first)
        db.import_data(samples(40, seed=1), np.arange(40))  # past the kept bound: read from the index
        grown, _ = stream(db, tmp_path / "c", epochs=epochs)
        monkeypatch.undo()
        same(stream(db, None, epochs=epochs)[0], grown)


def test_a_kept_tables_columns_are_used_where_they_lie_and_an_older_archive_still_loads(tmp_path: Path) -> None:
    """A loaded table's columns are aligned, read-only views of its archive that the frozen table shares (no
    copy; an unaligned column made numpy copy it on every search); the ids' ends come from the archive.  A
    table kept before (unaligned, no ends) loads the same, and growing makes the columns arrays again."""
    ids = ["é0", "s1", "ß-2", "s3"]
    table = RefTable()
    table.extend([_row(i + 1, doc_id, 10 * i) for i, doc_id in enumerate(ids)])
    cache = DiskChunkCache(tmp_path / "c")
    snapshots = RefSnapshots(cache)
    assert snapshots.save("index", "key", table, 4, generation=0)
    (pointer,) = kept(tmp_path / "c")
    written = json.loads(pointer.read_text())
    view = cache.get(written["digest"], check=False)
    assert view is not None
    arrays = decode_archive(view)
    assert all(a.ctypes.data % 64 == 0 for a in arrays.values())
    assert arrays["id_ends"].tolist() == [3, 6, 11, 14]  # "é0\0s1\0ß-2\0s3" in UTF-8: é and ß take two bytes
    loaded = snapshots.load("index", "key", 0)
    assert loaded is not None
    lent = loaded[0]
    for column in (lent.seq, lent.chunk, lent.chunk_sizes, *lent.x.columns()):
        assert isinstance(column, np.ndarray) and column.flags.aligned
        assert not column.flags.owndata and not column.flags.writeable  # the mapped archive itself
    frozen = lent.freeze()
    assert frozen.seq is lent.seq and frozen.x_off is lent.x.off and frozen.x_codec is lent.x.codec
    assert frozen.span_start.tolist() == [10, 20, 30, 40] and frozen.span_end.tolist() == [20, 30, 40, 50]
    assert frozen.x_format is not None and list(frozen.ids) == ids
    # the same table as an earlier version kept it: no ends, nothing aligned
    older = encode_archive({k: v for k, v in arrays.items() if k != "id_ends"}, codec="none")
    digest = hashlib.sha256(older).hexdigest()
    cache.put(digest, older)
    pointer.write_text(json.dumps({**written, "digest": digest}))
    again = snapshots.load("index", "key", 0)
    assert again is not None and list(again[0].ids) == ids and again[0].last_seq == 4
    np.testing.assert_array_equal(again[0].freeze().x_off, frozen.x_off)
    lent.extend([_row(5, "s4", 40)])  # a kept table that grows holds arrays again
    assert type(lent.seq) is array and type(lent.x.codec) is array and lent.last_seq == 5
    assert lent.freeze().x_off.tolist() == [10, 20, 30, 40, 50] and lent.ids == [*ids, "s4"]
    with pytest.raises(ValueError):
        PackedIds(b"a\x00bc", "\x00", np.array([1, 3]))  # ends that do not fit the text: the table is not used


def test_a_stream_given_no_cache_dir_keeps_its_table_where_the_environment_says(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``$TENSORDB_CACHE_DIR`` is the cache of every stream that names none (stream/disk_cache.disk_cache_for):
    the next stream starts from the kept table; ``cache_dir=False`` and an empty variable keep nothing."""
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        plain, _ = stream(db, None)
        monkeypatch.setenv("TENSORDB_CACHE_DIR", str(tmp_path / "off"))
        off, off_stats = stream(db, None, cache_dir=False)
        assert off_stats.index_s > 0 and not (tmp_path / "off").exists()
        monkeypatch.setenv("TENSORDB_CACHE_DIR", "")
        stream(db, None)
        monkeypatch.setenv("TENSORDB_CACHE_DIR", str(tmp_path / "env"))
        first, first_stats = stream(db, None)
        assert first_stats.index_s > 0 and len(kept(tmp_path / "env")) == 1
        again, again_stats = stream(db, None)
        assert again_stats.index_s == 0.0  # started from the table the environment's cache kept
        for batches in (off, first, again):
            same(plain, batches)
    assert not (tmp_path / "off").exists()


def test_an_unusable_cache_dir_is_a_typed_error_naming_where_it_came_from(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tensordb_core.stream.disk_cache import DiskCacheError

    (tmp_path / "a-file").write_text("not a directory")
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(30), np.arange(30), chunk_bytes=1024)
        monkeypatch.setenv("TENSORDB_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
        with pytest.raises(DiskCacheError, match="TENSORDB_CACHE_DIR"):
            db.data_generator({}, batch_size=8)
        with pytest.raises(DiskCacheError, match="names no directory"):
            db.data_generator({}, batch_size=8, cache_dir=True)
        monkeypatch.delenv("TENSORDB_CACHE_DIR")
        with db.data_generator({}, batch_size=8) as s:  # the variable unset: no cache, as before
            assert sum(len(X) for X, _ in s) == 30


def _archive_member(data: bytes, name: str) -> tuple[int, int]:
    """Where the array ``name`` lies in a kept table's archive: (start, length) of its stored bytes."""
    (hlen,) = np.frombuffer(data[4:8], dtype="<u4")
    header = json.loads(data[8:8 + int(hlen)])
    entry = next(e for e in header["arrays"] if e["name"] == name)
    return 8 + int(hlen) + entry["offset"], entry["length"]


def test_the_seq_column_loads_alone_and_is_checked_alone(tmp_path: Path) -> None:
    """What a shard counts its blocks from before the rows load: the kept ``_seq`` column, its crc32 checked."""
    table = RefTable()
    table.extend([{"_id": f"s{i}", "_seq": 3 * i + 1, "label": i, "_x": {
        "key": f"k{i // 3}", "chunk_size": 99, "offset": i, "length": 1, "codec": "none", "dtype": "|u1",
        "shape": [1], "crc32": 0}} for i in range(10)])
    snapshots = RefSnapshots(DiskChunkCache(tmp_path / "c"))
    assert snapshots.save("index", "key", table, 40, generation=2)
    seq, bound = snapshots.load_seqs("index", "key", 2)
    assert seq.tolist() == [3 * i + 1 for i in range(10)] and bound == 40 and seq.dtype == np.int64
    assert snapshots.load_seqs("index", "key", 3) is None and snapshots.load_seqs("index", "other", 2) is None
    memo = IndexMemo(snapshots)
    assert memo.kept_seqs("key", 2, "index").seq.tolist() == seq.tolist() and memo.kept_seqs("key", 2, "x") is None
    (path,) = [f for d in (tmp_path / "c").iterdir() if d.is_dir() and d.name != POINTERS for f in d.iterdir()]
    data = bytearray(path.read_bytes())
    start, _ = _archive_member(bytes(data), "ids")
    data[start] ^= 0xFF  # another column damaged: the seq column still counts; the rows do not load
    path.write_bytes(bytes(data))
    assert snapshots.load_seqs("index", "key", 2)[0].tolist() == seq.tolist()
    assert snapshots.load("index", "key", 2) is None and not path.exists()  # dropped with its pointer
    assert snapshots.save("index", "key", table, 40, generation=2)
    (path,) = [f for d in (tmp_path / "c").iterdir() if d.is_dir() and d.name != POINTERS for f in d.iterdir()]
    data = bytearray(path.read_bytes())
    start, length = _archive_member(bytes(data), "seq")
    data[start + length // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert snapshots.load_seqs("index", "key", 2) is None and kept(tmp_path / "c") == []
    only = decode_archive(encode_archive({"a": np.arange(3), "b": np.ones(2)}, codec="none"), names=("b",))
    assert list(only) == ["b"] and only["b"].tolist() == [1.0, 1.0]


def test_shards_count_their_blocks_from_the_kept_seq_column_not_the_index(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shard's place in the epoch, from a table kept on disk that loads beside the first windows: rank 0
    (whose first window comes before any count) counts from the kept ``_seq`` column, not by the index."""
    from tensordb_core.embedded.sqlite_index import SQLiteIndexStore

    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(samples(), np.arange(N), chunk_bytes=1024)
        cold = [stream(db, None, shard=(rank, 2))[0] for rank in range(2)]
        counted, seqs_read = [], []
        count_blocks, kept_seqs = SQLiteIndexStore.count_blocks, IndexMemo.kept_seqs
        monkeypatch.setattr(SQLiteIndexStore, "count_blocks",
                            lambda self, *a, **k: counted.append(1) or count_blocks(self, *a, **k))
        monkeypatch.setattr(IndexMemo, "kept_seqs", lambda self, *a: seqs_read.append(1) or kept_seqs(self, *a))
        stream(db, tmp_path / "c", shard=(0, 2))  # reads the index (and counts by it), keeps the table
        assert counted
        counted.clear()
        monkeypatch.setattr(engine_module, "LOAD_AT_ONCE_SEQS", 0)  # every kept table loads beside the windows
        for rank in range(2):
            same(cold[rank], stream(db, tmp_path / "c", shard=(rank, 2))[0])
        assert counted == [] and seqs_read  # no index count: the column (rank 0), the loaded table (rank 1)


def test_rows_lent_by_many_ranges_at_once_equal_them_lent_one_by_one() -> None:
    lender = RefTable()
    lender.extend(reference_docs(40, lambda i: 2 * i + 1, lambda i: i % 7, lambda i: f"k{(i * 5) % 6}"))
    parts = lender.to_parts()
    assert parts is not None
    kept_form = RefTable.from_parts(*parts)  # numpy columns, as a kept table's
    ranges = [(0, 3), (7, 7), (9, 20), (33, 40)]
    for source in (lender, kept_form):
        at_once, one_by_one = RefTable(), RefTable()
        at_once.extend_rows(source, ranges)
        for start, end in ranges:
            one_by_one.extend_rows(source, [(start, end)])
        same_columns(at_once.freeze(), one_by_one.freeze())
        assert list(at_once.ids) == [f"id{i}" for s, e in ranges for i in range(s, e)]
        assert at_once.labels == one_by_one.labels == [i % 7 for s, e in ranges for i in range(s, e)]
        with pytest.raises(ValueError, match="ascending"):
            at_once.extend_rows(source, [(36, 38)])  # rows at or below the table's last _seq
        with pytest.raises(ValueError, match="ascending"):
            RefTable().extend_rows(source, [(5, 8), (2, 4)])  # ranges out of _seq order


def test_packed_ids_read_a_mapped_view_and_refuse_text_that_is_not_utf8() -> None:
    text = "a\x00ß-2\x00c".encode()
    ids = PackedIds(memoryview(text), "\x00")
    assert list(ids) == ["a", "ß-2", "c"] and ids[1] == "ß-2" and ids[1:] == ["ß-2", "c"]
    with pytest.raises(ValueError):
        PackedIds(memoryview(b"a\x00\xff"), "\x00")
