"""Sample references as columns: what each sample's index document says about its bytes.

Why columns: a stream over millions of samples must permute, shard and plan
reads without a Python object per sample.  :class:`RefTable` keeps what each
sample's document says about its bytes (chunk, offset, length, codec, crc32,
dtype/shape) in compact arrays, parsed once from the index, and
:class:`FrozenRefs` is its numpy snapshot the stream's threads read.  Rows
are in ``_seq`` order, which (with the seed) is all the stream's order
depends on, so every backend yields the same order.  The fetch plan for a
group of rows is stream/plan.py's.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

import numpy as np

from tensordb_core.errors import CodecError
from tensordb_core.format.codec import CODEC_IDS, dtype_from_str, expected_nbytes

#: The index collection holding one document per sample (``warehouse.data`` writes it, the stream reads it).
COLLECTION = "data"
#: The document fields a sample read needs (the projection it asks the index for).
PROJECTION = {"_id": 1, "_seq": 1, "_x": 1, "_y": 1, "label": 1, "_fields": 1}  # _fields: to name a record
#: The same fields as columns (``ReadsColumns``): what :meth:`RefTable.extend_columns` reads.
REF_PATHS = ["_x.key", "_x.offset", "_x.length", "_x.crc32", "_x.codec", "_x.dtype", "_x.shape", "_x.chunk_size",
             "label", "_y", "_fields"]


@dataclass(frozen=True)
class Format:
    """The dtype and shape shared by many samples (stored once per table)."""

    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int


def _ints(code: str = "q") -> array:
    return array(code)


@dataclass
class _Columns:
    """One segment description per row, in compact ``array`` s (8 bytes an int, not a Python object)."""

    off: array = field(default_factory=_ints)
    length: array = field(default_factory=_ints)
    crc: array = field(default_factory=_ints)
    codec: array = field(default_factory=lambda: _ints("b"))
    fmt: array = field(default_factory=_ints)

    def add(self, off: int, length: int, crc: int, codec: int, fmt: int) -> None:
        self.off.append(off)
        self.length.append(length)
        self.crc.append(crc)
        self.codec.append(codec)
        self.fmt.append(fmt)

    def columns(self) -> tuple[array, ...]:
        return self.off, self.length, self.crc, self.codec, self.fmt

    def truncate(self, n: int) -> None:
        for column in self.columns():
            del column[n:]

    def pad_to(self, n: int) -> None:
        """Append rows without a segment (zeros, format -1) up to ``n`` rows (see RefTable's lazy ``_y``)."""
        k = n - len(self.off)
        if k > 0:
            zeros = array("q", bytes(8 * k))
            self.off.extend(zeros)
            self.length.extend(zeros)
            self.crc.extend(zeros)
            self.codec.extend(array("b", bytes(k)))
            self.fmt.extend(array("q", [-1]) * k)


class PackedIds(Sequence[str]):
    """A kept table's ids as their one UTF-8 text, ``sep`` between them (stream/snapshots.py), and where each
    ends: an id is made when the stream asks for it (a window's rows, an error's sample, a record).

    Why: splitting the text into a million ``str`` cost 0.15 s of the 0.33 s a
    1M-row kept table took to load, before a shard's first batch.  Read-only;
    a table that grows past it holds a list again (:meth:`RefTable._own`).
    """

    def __init__(self, text: bytes | memoryview, sep: str, ends: np.ndarray | None = None) -> None:
        """``ends``: where each id ends in ``text`` (an archive keeps them), else found here.  Why kept: finding a
        million ends took 15 ms warm and ~70 in a new loader worker (fresh memory), before a shard's first batch.
        ``text`` may be a read-only view (a mapped kept table's): a copy of a million ids' 24 MB cost ~8 ms of
        such a worker's ~25 ms load (fresh pages), before its first batch."""
        codes = np.frombuffer(text, dtype=np.uint8)
        if len(codes) and int(codes.max()) >= 0x80:  # ASCII (ids are hex or names, mostly) is UTF-8: one C scan
            str(text, "utf-8")  # UTF-8 throughout (raises UnicodeDecodeError, a ValueError): an id is cut out later
        if ends is None:
            ends = np.append(np.flatnonzero(codes == ord(sep)), len(codes))
        elif not (ends.ndim == 1 and len(ends) and int(ends[-1]) == len(codes)):
            raise ValueError("the ends of packed ids do not fit their text")
        self.text, self.sep, self.ends = text, sep, ends

    def __len__(self) -> int:
        return len(self.ends)

    def _start(self, row: int) -> int:
        return int(self.ends[row - 1]) + 1 if row else 0

    @overload
    def __getitem__(self, at: int) -> str: ...

    @overload
    def __getitem__(self, at: slice) -> list[str]: ...

    def __getitem__(self, at: int | slice) -> str | list[str]:
        if isinstance(at, slice):  # one decode and split of the run, as a list (what a table extends by)
            start, stop, step = at.indices(len(self))
            if step != 1:
                return [self[k] for k in range(start, stop, step)]
            return str(self.text[self._start(start):self.ends[stop - 1]], "utf-8").split(self.sep) if (
                stop > start) else []
        row = range(len(self))[at]  # an index error past either end, as a list gives
        return str(self.text[self._start(row):self.ends[row]], "utf-8")

    def __iter__(self) -> Iterator[str]:
        return iter(self[:])

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) and not isinstance(other, str) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


class RefTable:
    """Columnar references of samples in ``_seq`` order; appendable (follow mode), read through :meth:`freeze`.

    :meth:`of` builds one in any given order instead (a cursor's sort), for a
    one-shot read; only the stream's epochs rely on ``_seq`` order.

    ``bad`` maps a row to the reason its document cannot be read (malformed ``_x``): the row stays, so
    positions and shards do not depend on whether a document is readable; reading it raises or skips like a
    missing chunk.

    ``y`` and ``has_y`` are lazy: they hold rows only up to the last one with a ``_y`` segment (rows past it
    have none).  Why: almost every sample has a scalar label and no ``_y``, and five appends of zeros per
    document were a fifth of building the table, which holds the GIL while a stream's first epoch decodes.
    """

    #: Stored codec names -> the small integers of the codec column (records add the media codecs).
    codec_ids: ClassVar[dict[str, int]] = CODEC_IDS
    #: Rows may come as columns (:meth:`extend_columns`); a record table reads documents.
    reads_columns: ClassVar[bool] = True

    def __init__(self) -> None:
        self.ids: list[str] | PackedIds = []  # PackedIds: a kept table's, until it grows
        self.seq = _ints()
        self.chunk = _ints()
        self.chunk_keys: list[str] = []
        self.chunk_sizes = _ints()
        self._chunk_index: dict[str, int] = {}
        self.formats: list[Format] = []
        self._format_index: dict[tuple[str, tuple[int, ...]], int] = {}
        self.x = _Columns()
        self.y = _Columns()
        self.has_y = _ints("b")
        self.labels: list[Any] | np.ndarray = []  # ndarray: a kept table's numeric labels, until it grows
        self.bad: dict[int, str] = {}
        self._frozen: FrozenRefs | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, docs: Iterable[Mapping[str, Any]]) -> RefTable:
        """A table with one row per document, in the order given (no ``_seq`` order or bound applies)."""
        table = cls()
        for doc in docs:
            seq = doc.get("_seq")
            table._append(doc, seq if isinstance(seq, int) else 0)  # informative only: nothing orders by it here
        return table

    @property
    def last_seq(self) -> int:
        return int(self.seq[-1]) if len(self.seq) else 0

    def extend(self, docs: Iterable[Mapping[str, Any]], *, max_seq: int | None = None) -> int:
        """Append documents (in ``_seq`` order, above :attr:`last_seq`, at most ``max_seq``); return how many."""
        added = 0
        self._own()
        for doc in docs:
            seq = int(doc["_seq"])
            if seq <= self.last_seq or (max_seq is not None and seq > max_seq):
                continue
            self._append(doc, seq)
            added += 1
        if added:
            self._frozen = None
        return added

    def extend_columns(self, cols: Mapping[str, list[Any]]) -> bool:
        """Append rows read as columns of :data:`REF_PATHS` (in ``_seq`` order, above :attr:`last_seq`).

        All or nothing: False, with nothing appended, when a row needs the
        per-document path (a record, a ``_y`` label, a reference of unusual or
        malformed shape, which that path marks ``bad``); the caller then
        appends those rows' documents with :meth:`extend`.  Why columns: a
        row costs ~0.6 µs of Python here (1.1 µs when each row was checked by
        a Python statement), where a document's dict cost ~2 µs here and ~5 µs
        to parse (see ``IndexCapabilities.columns``).
        """
        seqs = cols["_seq"]
        if not seqs:
            return True
        if not self.reads_columns or seqs[0] <= self.last_seq:
            return False
        keys, sizes, dtypes, shapes = cols["_x.key"], cols["_x.chunk_size"], cols["_x.dtype"], cols["_x.shape"]
        numbers = (cols["_x.offset"], cols["_x.length"], cols["_x.crc32"])
        # Checks and conversions by C loops (map, count, array), not a Python statement per row: this runs per
        # document.  Numbers need no type check: array("q") refuses what int() would convert differently.
        n = len(seqs)
        if cols["_y"].count(None) < n or cols["_fields"].count(None) < n or set(map(type, keys)) != {str}:
            return False
        first_size = dict(zip(reversed(keys), reversed(sizes)))  # each chunk's size where it first appears
        if not set(map(type, first_size.values())) <= {int, type(None)}:
            return False
        known = len(self.formats)
        try:
            off, length, crc = (array("q", c) for c in numbers)
            codec = cols["_x.codec"]
            codecs = (array("b", [self.codec_ids[codec[0]]]) * n if codec.count(codec[0]) == n
                      else array("b", map(self.codec_ids.__getitem__, codec)))
            fmts = None if min(off) < 0 or min(length) < 0 else self._column_formats(dtypes, shapes)
        except (KeyError, TypeError, ValueError, OverflowError, CodecError):
            fmts = None
        if fmts is None:  # nothing appended: not even a format met before the refusal (its number would move)
            del self.formats[known:]
            self._format_index = {k: i for k, i in self._format_index.items() if i < known}
            return False
        self._own()
        for key in dict.fromkeys(keys):  # in order of first appearance, as documents number them
            size = first_size[key]
            self._chunk_of(key, size if size is not None else -1)
        self.ids += cols["_id"]
        self.seq += array("q", seqs)
        self.labels += cols["label"]
        self.chunk += array("q", map(self._chunk_index.__getitem__, keys))
        x = self.x
        x.off += off
        x.length += length
        x.crc += crc
        x.codec += codecs
        x.fmt += fmts
        self._frozen = None
        return True

    @property
    def lends_rows(self) -> bool:
        """Whether :meth:`extend_rows` may copy rows out of this table: plain references only (no record, no
        ``_y`` label, no malformed row, each of which :meth:`extend` alone describes)."""
        return type(self).reads_columns and not self.bad and not self.has_y

    def extend_rows(self, other: RefTable, ranges: Sequence[tuple[int, int]]) -> None:
        """Append rows ``[start, end)`` of ``other`` for each of ``ranges`` (:attr:`lends_rows`; in ``_seq`` order,
        above :attr:`last_seq`).

        Why: a fresh epoch reads the index block by block, each window into a
        table of its own (stream/blocks.py); the epoch's whole table is those
        blocks in ``_seq`` order, so it is copied from them rather than read
        from the index again (a second pass over every document, ~8 µs each,
        that held the GIL against the next epoch's first windows).  Chunks and
        formats are numbered by first appearance, as reading the documents in
        ``_seq`` order numbers them, so the epoch order is the same either way.
        Why many ranges at once: a window of 512 blocks taken from a kept
        table block by block cost ~32 ms of Python holding the GIL in a new
        loader worker, just after its first batch, whose hand-off to the
        loader (a thread of that worker) waited for it; numpy takes every
        column's rows in one pass.
        """
        ranges = [(start, end) for start, end in ranges if end > start]
        if not ranges:
            return
        if not (self.reads_columns and other.lends_rows):
            raise ValueError("extend_rows copies plain references only (see lends_rows)")
        starts, ends = (np.array(bounds, dtype=np.int64) for bounds in zip(*ranges))
        sizes = ends - starts
        rows = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        seq = _numpy(other.seq)[rows]
        if int(seq[0]) <= self.last_seq or bool(np.any(np.diff(seq) <= 0)):
            raise ValueError(f"rows from _seq {int(seq[0])} do not follow _seq {self.last_seq} in ascending order")
        self._own()
        # other's chunk and format numbers -> this table's, each numbered here on its first appearance
        theirs, their_fmts = _numpy(other.chunk)[rows], _numpy(other.x.fmt)[rows]
        chunks = np.zeros(len(other.chunk_keys), dtype=np.int64)
        for c in _first_seen(theirs):
            chunks[c] = self._chunk_of(other.chunk_keys[c], int(other.chunk_sizes[c]))
        format_keys = {index: key for key, index in other._format_index.items()}
        formats = np.zeros(len(other.formats), dtype=np.int64)
        for f in _first_seen(their_fmts):
            formats[f] = self._format_of(*format_keys[f])
        labels = other.labels
        for start, end in ranges:  # a kept table's ids: one decode and split per range
            self.ids += other.ids[start:end]
            if not isinstance(labels, np.ndarray):
                self.labels += labels[start:end]
        if isinstance(labels, np.ndarray):
            self.labels += labels[rows].tolist()
        _append_column(self.seq, seq)
        _append_column(self.chunk, chunks[theirs])
        x, ox = self.x, other.x
        for mine, given in zip((x.off, x.length, x.crc, x.codec), (ox.off, ox.length, ox.crc, ox.codec)):
            _append_column(mine, _numpy(given)[rows])
        _append_column(x.fmt, formats[their_fmts])
        self._frozen = None

    def _own(self) -> None:
        """Make the columns, ids and labels ones this table may grow (a kept table's numpy columns made arrays,
        its :class:`PackedIds` and label column lists, once)."""
        if type(self.ids) is not list:
            self.ids = list(self.ids)
        if isinstance(self.labels, np.ndarray):
            self.labels = self.labels.tolist()
        if isinstance(self.seq, np.ndarray):
            self.seq, self.chunk, self.chunk_sizes = (_growable(c) for c in (self.seq, self.chunk, self.chunk_sizes))
            x = self.x
            x.off, x.length, x.crc, x.codec, x.fmt = (_growable(c) for c in x.columns())

    def become(self, other: RefTable) -> None:
        """Hold ``other``'s rows (this table empty): its very columns, not a copy; ``other`` is not used after."""
        if len(self) or type(self) is not type(other):
            raise ValueError("only an empty table of the same kind becomes another")
        vars(self).update(vars(other))

    def to_parts(self) -> tuple[dict[str, np.ndarray], dict[str, list[Any]]] | None:
        """This table as numpy columns and plain lists (stream/snapshots.py keeps them on disk), or None when
        some row only its document describes (:attr:`lends_rows`)."""
        if not self.lends_rows:
            return None
        x = self.x
        columns = {"seq": self.seq, "chunk": self.chunk, "chunk_sizes": self.chunk_sizes, "off": x.off,
                   "length": x.length, "crc": x.crc, "codec": x.codec, "fmt": x.fmt}
        arrays = {name: _numpy(c) for name, c in columns.items()}
        formats = [[dtype, list(shape), index] for (dtype, shape), index in self._format_index.items()]
        return arrays, {"ids": self.ids, "labels": self.labels, "chunk_keys": self.chunk_keys, "formats": formats}

    @classmethod
    def from_parts(cls, arrays: Mapping[str, np.ndarray], lists: Mapping[str, list[Any]]) -> RefTable:
        """The table :meth:`to_parts` gave, chunks and formats numbered as they were (the same epoch order); raises
        ValueError or KeyError on parts that do not fit together."""
        table = cls()
        for dtype, shape, index in sorted(lists["formats"], key=lambda f: f[2]):
            if table._format_of(dtype, tuple(shape)) != index:
                raise ValueError("the formats of a reference table are not numbered 0, 1, ...")
        table.chunk_keys = list(lists["chunk_keys"])
        table._chunk_index = {key: i for i, key in enumerate(table.chunk_keys)}
        ids, labels = lists["ids"], lists["labels"]
        table.ids = ids if isinstance(ids, PackedIds) else list(ids)
        table.labels = labels if isinstance(labels, np.ndarray) else list(labels)
        # the columns as given, not copied (a kept table's: read-only views of its mapped archive), until the
        # table grows (_own); FrozenRefs shares them.  Why: copying a million rows' columns into arrays here,
        # and again into numpy when frozen, took ~40-200 ms of fresh memory in a new loader worker.
        x = table.x
        table.seq, table.chunk, table.chunk_sizes, x.off, x.length, x.crc, x.codec, x.fmt = (
            np.require(arrays[name], np.int8 if name == "codec" else np.int64, ["C", "A"])  # unaligned: copied
            for name in ("seq", "chunk", "chunk_sizes", "off", "length", "crc", "codec", "fmt"))
        n = len(table.ids)
        if len(table.labels) != n or any(len(c) != n for c in (table.seq, table.chunk, *table.x.columns())) or len(
                table.chunk_sizes) != len(table.chunk_keys) or n and (int(np.max(arrays["chunk"])) >= len(
                    table.chunk_keys) or int(np.max(arrays["fmt"])) >= len(table.formats)):
            raise ValueError("the parts of a reference table do not fit together")
        return table

    def _column_formats(self, dtypes: list[Any], shapes: list[Any]) -> array | None:
        """The format index of each row (None: a dtype that is not a str or a shape that is not a list).

        The common block has one format: two ``list.count`` calls find it.
        """
        n = len(dtypes)
        if dtypes.count(dtypes[0]) == n and shapes.count(shapes[0]) == n:
            if type(dtypes[0]) is not str or type(shapes[0]) is not list:
                return None
            return array("q", [self._format_of(dtypes[0], tuple(shapes[0]))]) * n
        if set(map(type, dtypes)) != {str} or set(map(type, shapes)) != {list}:
            return None
        return array("q", [self._format_of(d, tuple(s)) for d, s in zip(dtypes, shapes)])

    def _chunk_of(self, key: str, size: int) -> int:
        """The number of chunk ``key`` (``size`` bytes, -1 unknown), given here on its first appearance."""
        chunk = self._chunk_index.get(key)
        if chunk is None:
            chunk = self._chunk_index[key] = len(self.chunk_keys)
            self.chunk_keys.append(key)
            self.chunk_sizes.append(size)
        return chunk

    def _format_of(self, dtype: str, shape: tuple[Any, ...]) -> int:
        fmt = self._format_index.get((dtype, shape))  # as stored: one dict probe
        return fmt if fmt is not None else self._format(dtype, tuple(int(d) for d in shape))

    def _append(self, doc: Mapping[str, Any], seq: int) -> None:
        row = len(self.ids)
        self.ids.append(str(doc.get("_id")))
        self.seq.append(seq)
        self.labels.append(doc.get("label"))
        x, y = doc.get("_x"), doc.get("_y")
        try:
            if type(x) is not dict and not isinstance(x, Mapping):  # (the type test first: isinstance on an ABC is slow)
                raise CodecError("it is a record: read it with find_data(...).records(), or a stream of records"
                                 if "_fields" in doc
                                 else "it is not a data sample (no _x blob reference)")
            key = str(x["key"])
            chunk = self._chunk_index.get(key)
            if chunk is None:
                chunk = self._chunk_index[key] = len(self.chunk_keys)
                self.chunk_keys.append(key)
                size = x.get("chunk_size")
                self.chunk_sizes.append(int(size) if size is not None else -1)
            self._add_segment(self.x, x)
            if y:
                if not isinstance(y, Mapping) or str(y.get("key")) != key:
                    raise CodecError("its _y label lives in another blob than _x (the stream reads one chunk per sample)")
                self.y.pad_to(row)
                self._add_segment(self.y, y)
                self.has_y.extend(array("b", bytes(row - len(self.has_y))))
                self.has_y.append(True)
            self.chunk.append(chunk)
        except (KeyError, TypeError, ValueError, OverflowError, CodecError) as exc:
            self.bad[row] = f"malformed sample reference: {exc}"
            self.x.truncate(row)  # a segment appended before the failure does not stay
            self._add_segment(self.x, None)
            self.y.truncate(row)
            del self.has_y[row:]
            self.chunk.append(-1)

    def _add_segment(self, cols: _Columns, seg: Mapping[str, Any] | None) -> None:
        """Append one segment's columns (the per-document hot path: no helper calls, one dict probe per field)."""
        if seg is None:
            cols.off.append(0)
            cols.length.append(0)
            cols.crc.append(0)
            cols.codec.append(0)
            cols.fmt.append(-1)
            return
        codec = self.codec_ids.get(seg["codec"])
        if codec is None:
            raise CodecError(f"unknown codec {seg['codec']!r}")
        off, length = int(seg["offset"]), int(seg["length"])
        if off < 0 or length < 0:
            raise CodecError(f"negative offset or length ({off}, {length})")
        dtype, shape = seg["dtype"], seg["shape"]
        fmt = self._format_index.get((dtype, tuple(shape)))  # as stored: one dict probe per sample
        if fmt is None:
            fmt = self._format(str(dtype), tuple(int(d) for d in shape))
        crc = int(seg["crc32"])
        cols.off.append(off)  # appended only once every field parsed: a bad segment leaves no partial row
        cols.length.append(length)
        cols.crc.append(crc)
        cols.codec.append(codec)
        cols.fmt.append(fmt)

    def _format(self, dtype: str, shape: tuple[int, ...]) -> int:
        key = (dtype, shape)
        index = self._format_index.get(key)
        if index is None:
            dt = dtype_from_str(dtype)
            index = self._format_index[key] = len(self.formats)
            self.formats.append(Format(dt, shape, expected_nbytes(dt, shape)))
        return index

    def freeze(self) -> FrozenRefs:
        """Numpy columns of every row so far (cached until the next :meth:`extend`)."""
        if self._frozen is None:
            self._frozen = FrozenRefs(self)
        return self._frozen


class FrozenRefs:
    """An immutable numpy snapshot of a :class:`RefTable` (what threads read)."""

    records = False  # (X, y) samples; stream.records.FrozenRecords says True
    media = False

    def __init__(self, table: RefTable) -> None:
        n = len(table)
        self.n = n
        self.ids = table.ids if isinstance(table.ids, PackedIds) else list(table.ids)  # PackedIds never grow
        self.seq = _numpy(table.seq, copy=True)  # copies: the table's arrays keep growing (numpy ones never do)
        self.chunk = _numpy(table.chunk, copy=True)
        self.chunk_keys = list(table.chunk_keys)
        self.chunk_sizes = _numpy(table.chunk_sizes, copy=True)
        self.formats = list(table.formats)
        self.bad = dict(table.bad)
        self.x_off, self.x_len, self.x_crc, self.x_codec, self.x_fmt = _arrays(table.x)
        self.y_off, self.y_len, self.y_crc, self.y_codec, self.y_fmt = _arrays(table.y, n)
        self.has_y = np.zeros(n, dtype=bool)
        self.has_y[: len(table.has_y)] = np.array(table.has_y, dtype=bool)
        self.any_y = bool(self.has_y.any()) if n else False
        x_end = self.x_off + self.x_len
        if self.any_y:
            y_end = self.y_off + self.y_len
            self.span_start = np.where(self.has_y, np.minimum(self.x_off, self.y_off), self.x_off)
            self.span_end = np.where(self.has_y, np.maximum(x_end, y_end), x_end)
        else:  # the common case, in one pass (a million rows frozen before a shard's first batch)
            self.span_start, self.span_end = self.x_off, x_end
        self.labels = label_array(table.labels)
        #: Rows whose input segment passed its crc32 in this process (see fetch._precheck): later epochs
        #: over this snapshot skip the check.  Written by the threads that check (a window's reader, the
        #: decoders), each setting its own rows True only, so their writes never undo one another.
        self.verified = np.zeros(n, dtype=bool)
        #: The one input format of every row, when there is one (the common case: no per-batch check needed).
        self.x_format = self.formats[int(self.x_fmt[0])] if n and not self.bad and self.x_fmt[0] >= 0 and bool(
            (self.x_fmt == self.x_fmt[0]).all()) else None

    def span_bytes(self, rows: np.ndarray) -> np.ndarray:
        return self.span_end[rows] - self.span_start[rows]


def _arrays(cols: _Columns, n: int | None = None) -> tuple[np.ndarray, ...]:
    """The columns as numpy arrays; with ``n``, ``n`` rows (those past the columns' end have no segment)."""
    out = tuple(_numpy(c, copy=True) for c in cols.columns())
    k = len(cols.off)
    if n is None or n == k:
        return out
    padded = tuple(np.zeros(n, dtype=a.dtype) for a in out)
    padded[4][k:] = -1
    for full, part in zip(padded, out):
        full[:k] = part[:n]
    return padded


def _numpy(column: array | np.ndarray, copy: bool = False) -> np.ndarray:
    """A column as numpy (int8 codecs, int64 else): a table's own ``array`` viewed (``copy``: copied, as it may
    grow), a kept table's numpy column as it is (it never grows: :meth:`RefTable._own` replaces it)."""
    if isinstance(column, np.ndarray):
        return column
    dtype = np.int8 if column.typecode == "b" else np.int64
    return np.array(column, dtype=dtype) if copy else np.frombuffer(column, dtype=dtype)


def _growable(column: np.ndarray) -> array:
    return array("b" if column.dtype == np.int8 else "q", column.tobytes())


def _append_column(column: array, values: array | np.ndarray) -> None:
    if isinstance(values, np.ndarray):
        column.frombytes(values.tobytes())
    else:
        column += values


def _first_seen(values: np.ndarray) -> list[int]:
    """The distinct ``values`` in order of first appearance."""
    distinct, first = np.unique(values, return_index=True)
    return distinct[np.argsort(first)].tolist()


def label_array(labels: list[Any] | np.ndarray) -> np.ndarray | None:
    """Scalar labels as one array (numeric when they all are); ``None`` when no sample has one."""
    if isinstance(labels, np.ndarray):  # a kept table's label column: numbers or bools, never grown
        return labels
    kinds = set(map(type, labels))  # the common cases by one C pass (a window's table is frozen per window)
    if kinds <= {int, float} and kinds or kinds == {bool} or kinds == {str}:
        return np.asarray(labels)
    if all(v is None for v in labels):
        return None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels) or all(
            isinstance(v, bool) for v in labels) or all(isinstance(v, str) for v in labels):  # their subclasses
        return np.asarray(labels)
    out = np.empty(len(labels), dtype=object)
    out[:] = labels
    return out
