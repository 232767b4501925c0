"""The training stream: ``(X, y)`` batches of the samples a query selects, fast, resumable and shardable.

::

    stream = db.data_generator({"split": "train"}, batch_size=64, seed=1, epochs=None)
    for X, y in stream:            # numpy arrays; y is None when samples carry no label
        ...
        checkpoint["data"] = stream.state_dict()   # small JSON: resume exactly here later
    stream.close()

What is guaranteed
------------------
* **Order** depends only on the samples' ``_seq`` order, the seed and the epoch
  (chunks are permuted, then samples within a window of ``window_bytes`` of
  chunks: see :mod:`tensordb_core.stream.order`), never on a backend's result
  order or timing: the same seed gives the same batches on every store.
* **Population**: an epoch reads the samples with ``_seq`` up to a bound taken
  when it starts; ``as_of=db.data_snapshot()`` (computed once, passed to every
  rank) fixes it, so ranks that start apart while data arrives agree, and
  ``group="<run id>"`` has the ranks agree through the warehouse on every
  epoch's bound (follow mode included).
* **Shards**: ``shard=(rank, world)`` splits each epoch into ``world``
  disjoint contiguous pieces that together cover it exactly.
* **Resume**: ``state_dict()`` reflects the batches *returned so far* (not
  what was prefetched); passing it back as ``state=`` continues with the next
  sample, also with another ``world`` (pass the state a rank saved; ranks are
  assumed to advance in lockstep, as under DDP).
* **Epochs**: ``epochs=None`` repeats forever.  An epoch's population is fixed
  when it starts; with ``follow=True`` each epoch takes in the samples inserted
  before it started, and after the last epoch the stream keeps yielding new
  samples in insertion order (polling the index every ``poll_s``; a partial
  batch is emitted when the index has nothing new).
* **Errors**: a sample whose chunk is missing or whose bytes fail their crc32
  raises :class:`~tensordb_core.stream.batches.SampleError` naming the document, in
  stream order; with ``on_error="skip"`` it is left out (its batch is shorter)
  and counted in :attr:`Stream.stats`.
* **Threads** stop on ``close()``, at the end of the stream, on an error, or
  when the stream is garbage-collected.

Pipeline, one module per stage: :mod:`~tensordb_core.stream.plan` (sample
references as columns, the fetch plan) -> :mod:`~tensordb_core.stream.fetch`
(reads) -> :mod:`~tensordb_core.stream.decode` (batches) ->
:mod:`~tensordb_core.stream.order` (order, shards, position), joined by
:mod:`~tensordb_core.stream.engine`'s threads.  :func:`read_batch` runs plan,
fetch and decode once, in the caller's thread: ``find_data(...).arrays()``
reads samples through it, so a sample reads the same whoever asks.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from tensordb_core.errors import TensorDBError
from tensordb_core.query.filters import validate_query
from tensordb_core.store.protocols import BlobStore
from tensordb_core.store.scope import StudyScope
from tensordb_core.stream.blocks import head_documents, population
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.config import RecordOptions, StreamConfig
from tensordb_core.stream.counters import Counters
from tensordb_core.stream.decode import Batch, BatchMemory, Decoder, JoinedRows, SampleError, WindowLabels, join_labels
from tensordb_core.stream.disk_cache import DEFAULT_DISK_CACHE_BYTES, DiskChunkCache, disk_cache_for
from tensordb_core.stream.engine import Engine, Phase
from tensordb_core.stream.fetch import fetch_window
from tensordb_core.stream.groups import check_group
from tensordb_core.stream.memo import IndexMemo
from tensordb_core.stream.order import StreamState, advance
from tensordb_core.stream.records import RecordDecoder, RecordTable, check_fields
from tensordb_core.stream.refs import RefTable
from tensordb_core.stream.snapshots import RefSnapshots

#: Stored bytes per shuffle window (chunks read together and mixed): the shuffle buffer's size.  Kept at 32 MiB
#: when samples became LZ4 HC frames, which hold ~30% more samples in it: 24 MiB gave the benchmark's 147 KiB
#: images' first epochs -4-10% (more, smaller windows).  A resumed stream keeps its state's window.
DEFAULT_WINDOW_BYTES = 32 << 20
DEFAULT_PREFETCH = 8
#: Skipped document ids kept in the stats (the count is exact beyond it).
MAX_SKIPPED_IDS = 100


class InvalidStreamArgument(TensorDBError, ValueError):
    """A ``data_generator`` argument is out of range or of the wrong type."""


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of a stream's counters (``stream.stats``).

    ``wait_fetch_s``: time ``next()`` waited for the fetch/assembly stages;
    ``wait_decode_s``: time it waited for a batch still being decoded.  A fast
    consumer mostly waiting on fetch is I/O-bound; on decode, CPU-bound.
    ``io_s``/``decode_s``/``index_s`` are busy times summed over threads.
    """

    samples: int
    batches: int
    skipped: int
    dropped: int
    elapsed_s: float
    samples_per_s: float
    bytes_read: int
    read_bytes_per_s: float
    bytes_decoded: int
    decoded_bytes_per_s: float
    requests: int
    cache_hits: int
    cache_misses: int
    cache_bytes: int
    io_s: float
    decode_s: float
    index_s: float
    wait_fetch_s: float
    wait_decode_s: float
    decode_workers: int
    skipped_ids: tuple[str, ...]
    unpacked_windows: int = 0  # windows whose small lz4 samples were decoded a batch at a time (stream/unpack.py)
    read_threads: int = 0  # threads reading windows (reader.WindowReader)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped_ids"] = list(self.skipped_ids)
        return out


def data_stream(
    scope: StudyScope,
    query: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    epochs: int | None = 1,
    follow: bool = False,
    shard: tuple[int, int] = (0, 1),
    transform: Callable[[np.ndarray], Any] | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    cache_bytes: int | ChunkCache = 0,
    on_error: str = "raise",
    drop_last: bool = False,
    state: Mapping[str, Any] | StreamState | None = None,
    window_bytes: int | None = None,
    decode_workers: int | None = None,
    read_threads: int | None = None,
    cpus: int | None = None,
    poll_s: float = 1.0,
    verify: bool = True,
    as_of: int | None = None,
    group: str | None = None,
    fields: Sequence[str] | None = None,
    decode: bool = True,
    pad: Mapping[str, Any] | None = None,
    weights: str | Callable[[Mapping[str, Any]], float] | None = None,
    index_memo: IndexMemo | None = None,
    cache_dir: str | os.PathLike[str] | DiskChunkCache | bool | None = None,
    disk_cache_bytes: int = DEFAULT_DISK_CACHE_BYTES,
    batch_memory: BatchMemory | None = None,
) -> Stream:
    """Start streaming ``(X, y)`` batches (or dict batches of records) of the samples matching ``query``.

    Record data (``db.import_records``) streams as dicts: fields of one shape
    and dtype stacked into one array, ragged fields as a list of arrays (or,
    for a field in ``pad={"tokens": 0}``, one padded array plus a
    ``tokens_length`` array), numbers as arrays, strings and other JSON values
    as lists.  ``fields=[...]`` reads only those fields (and fetches only their
    bytes); ``decode=False`` yields media fields as their stored JPEG/PNG
    bytes.  ``transform`` then gets each record's dict.  A stream is a record
    stream when any of ``fields``/``decode=False``/``pad`` is given or when the
    first matching document is a record; ``(X, y)`` data streams as tuples.

    ``weights`` draws each epoch *with replacement*: as many draws as the
    epoch has samples, sample ``i`` with probability ``w_i / sum(w)``, where
    ``w_i`` is the sample's field ``weights`` (a name) or ``weights(doc)`` (a
    callable over the whole document; class balancing:
    ``lambda d: 1 / counts[d["label"]]``).  The draws depend only on the seed,
    the epoch and the population, so they are the same on every rank, after
    a resume (pass the same ``weights``) and on every backend; shards split
    them like any epoch.  Follow mode's tail (past the last epoch) is not weighted.

    ``transform(x)`` runs on each decoded sample (on a decode thread) before
    batching; ``x`` is read-only, return a new array.  ``prefetch`` batches are
    decoded ahead; ``cache_bytes`` (or a shared :class:`~tensordb_core.stream.cache.ChunkCache`)
    keeps recently read chunk bytes across epochs.  ``decode_workers`` defaults
    to the CPU count (at most 4), and to one thread for small samples (under
    32 KiB stored) decoded one by one, as raw ones are (small lz4 samples are
    decoded a batch at a time; see :func:`tensordb_core.stream.decode.auto_decode_workers`);
    ``read_threads`` (default 2) read and check windows, two at once so
    that one is read while the other is decoded.  ``cpus`` (default: the
    machine's) is what both defaults are sized for: the torch adapter's
    loader workers with at most a CPU each pass 1, which reads on one thread
    and decodes on one, or on two where small lz4 samples are decoded a batch
    at a time (the second overlaps a batch's Python with the other's lz4).
    ``window_bytes`` (stored bytes; :data:`DEFAULT_WINDOW_BYTES`, or a resumed
    ``state``'s own) is the shuffle buffer: each batch mixes samples of one
    window, whose stored bytes are held (mapped or read) until its batches are
    decoded.
    ``verify=False`` skips the crc32 check.  ``as_of`` fixes the population to
    samples with ``_seq <= as_of`` (from :meth:`TensorDB.data_snapshot`): DDP
    ranks started at different moments while data is being imported must pass
    the same value, or each would shard a different population.  ``group``
    (a name every rank passes, e.g. the run id) makes them agree through the
    warehouse instead, for every epoch, follow mode included
    (:mod:`tensordb_core.stream.groups`).
    ``index_memo`` (a :class:`~tensordb_core.stream.memo.IndexMemo`) starts
    from the sample references an earlier stream of this process read and
    reads only documents inserted since (the torch adapter's workers use one).
    ``cache_dir`` keeps, in that local directory, at most ``disk_cache_bytes``
    (least recently used evicted), shared by every stream, loader worker and
    process given the same directory: the chunks read from a remote blob
    store, so later epochs make no requests
    (:mod:`tensordb_core.stream.disk_cache`), and, on every backend, the
    query's sample references, so the next stream or process starts its
    first epoch without reading the index
    (:mod:`tensordb_core.stream.snapshots`).  Not given (None), it is
    ``$TENSORDB_CACHE_DIR`` where that is set and not empty; ``False``: no
    disk cache whatever the environment says.
    ``batch_memory(shape, dtype)`` lends the array an ``(X, y)`` batch's ``X``
    is decoded into (None: a fresh one; called on decode threads): the torch
    adapter's loader workers decode straight into the shared memory the main
    process maps, so a batch crosses without a copy.
    See the module docs for the guarantees.
    """
    q = validate_query(query)
    rank, world = _check_shard(shard)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    _check_int("prefetch", prefetch, 1)
    if window_bytes is not None:
        _check_int("window_bytes", window_bytes, 1)
    if epochs is not None:
        _check_int("epochs", epochs, 1)
    _check_on_error(on_error)
    if transform is not None and not callable(transform):
        raise InvalidStreamArgument("transform must be a function of one array (or None)")
    if decode_workers is not None:
        _check_int("decode_workers", decode_workers, 1)
    if read_threads is not None:
        _check_int("read_threads", read_threads, 1)
    if cpus is not None:
        _check_int("cpus", cpus, 1)
    if as_of is not None:
        _check_int("as_of", as_of, 0)
    if group is not None:
        check_group(group)
    if not isinstance(poll_s, (int, float)) or poll_s <= 0:
        raise InvalidStreamArgument(f"poll_s must be a positive number of seconds, not {poll_s!r}")
    if isinstance(cache_bytes, ChunkCache):
        cache: ChunkCache | None = cache_bytes
    else:
        _check_int("cache_bytes", cache_bytes, 0)
        cache = ChunkCache(cache_bytes) if cache_bytes else None
    if state is None:
        window_bytes = DEFAULT_WINDOW_BYTES if window_bytes is None else window_bytes
        start = StreamState(q, seed, bool(shuffle), window_bytes)
    else:  # its own window unless one is given: a state saved under an older default resumes as saved
        start = state if isinstance(state, StreamState) else StreamState.from_dict(state)
        window_bytes = start.window_bytes if window_bytes is None else window_bytes
        start.check_matches(q, seed, bool(shuffle), window_bytes)
    if as_of is not None and start.epoch_seq is None:
        start = start.with_position(epoch_seq=int(as_of))
    elif as_of is not None and start.epoch_seq != as_of:
        raise InvalidStreamArgument(f"as_of={as_of} contradicts the state's epoch population (_seq <= "
                                    f"{start.epoch_seq}): resume from the state alone")
    records, head = _record_options(scope, q, fields, decode, pad)
    if batch_memory is not None and not callable(batch_memory):
        raise InvalidStreamArgument("batch_memory must be a function of (shape, dtype) (or None)")
    if weights is not None and not (callable(weights) or isinstance(weights, str) and weights):
        raise InvalidStreamArgument(f"weights must be a field name or a function of a document, not {weights!r}")
    cfg = StreamConfig(q, batch_size, bool(shuffle), seed, epochs, bool(follow), rank, world, transform, prefetch,
                       on_error, bool(drop_last), window_bytes, decode_workers, float(poll_s), bool(verify),
                       group=group, records=records, weights=weights, read_threads=read_threads,
                       batch_memory=batch_memory, cpus=cpus)
    if index_memo is not None and not isinstance(index_memo, IndexMemo):
        raise InvalidStreamArgument(f"index_memo must be an IndexMemo or None, not {type(index_memo).__name__}")
    _check_int("disk_cache_bytes", disk_cache_bytes, 1)
    disk = disk_cache_for(cache_dir, int(disk_cache_bytes))
    if disk is not None and index_memo is None:
        index_memo = IndexMemo(RefSnapshots(disk))
    elif disk is not None and index_memo is not None and index_memo.snapshots is None:
        index_memo.snapshots = RefSnapshots(disk)  # a loader worker's memo: the first stream given the directory
    return Stream(scope, cfg, start, cache, index_memo, disk, head)


#: Samples decoded at a time by :func:`read_batch` (and at most :data:`READ_WINDOW_BYTES` of stored bytes):
#: bounds the per-sample Python objects (documents, ids, labels) and chunk bytes held besides the result.
READ_WINDOW_ROWS = 8192
READ_WINDOW_BYTES = 64 << 20


def read_batch(blobs: BlobStore, docs: Iterable[Mapping[str, Any]], *, on_error: str = "raise",
               verify: bool = True, expected: int = 0) -> Batch:
    """Every sample of ``docs`` (sample documents) as one batch, in the order given.

    What ``find_data(...).arrays()`` returns.  One read path: the stream's own
    planner (whole chunks where dense, else coalesced ranges, each window in
    one ``get_many``), fetcher and decoder, run in the calling thread.
    Samples of one dtype and shape are decoded straight into the batch array;
    samples of several shapes raise (stream them with ``batch_size=1``).  An
    unreadable sample (missing chunk, malformed reference, failed crc32)
    raises :class:`SampleError` naming its document; with ``on_error="skip"``
    it is left out and listed in ``Batch.errors``.

    Why windows: building one reference table for the whole result held a
    Python id, label and document per sample, and every chunk's bytes, at
    once (515 MB for 300k samples of 16 bytes).  Documents are read
    :data:`READ_WINDOW_ROWS` at a time, decoded, and copied into one output
    array sized from ``expected`` (the caller's count; it grows if more
    come), so memory is the result plus one window.  The result is the one
    a single table would give, labels' dtype included (see :func:`~tensordb_core.stream.decode.join_labels`).
    """
    _check_on_error(on_error)
    docs = iter(docs)
    counters = Counters()
    decoder = Decoder(transform=None, on_error=on_error, verify=verify, stats=counters)
    xs = JoinedRows(expected)
    labels: list[WindowLabels] = []
    errors: list[SampleError] = []
    while True:
        refs = RefTable.of(_window_of(docs)).freeze()
        if refs.n == 0 and labels:
            break
        window = fetch_window(blobs, refs, np.arange(refs.n, dtype=np.int64), None, counters, verify=verify)
        batch = decoder.decode([(window, 0, refs.n)])
        xs.add(batch.X)
        errors.extend(batch.errors)
        labels.append(WindowLabels(refs, batch))
        if refs.n == 0:
            break
    return Batch(xs.result(), join_labels(labels), len(errors), errors)


def _window_of(docs: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The next documents of ``docs``, up to :data:`READ_WINDOW_ROWS` or :data:`READ_WINDOW_BYTES` (never one more)."""
    nbytes = 0
    for rows, doc in enumerate(docs, start=1):
        yield doc
        x = doc.get("_x")
        length = x.get("length") if isinstance(x, Mapping) else None
        nbytes += length if isinstance(length, int) and length > 0 else 0
        if rows >= READ_WINDOW_ROWS or nbytes >= READ_WINDOW_BYTES:
            return


def _record_options(scope: StudyScope, query: Mapping[str, Any], fields: Any, decode: Any,
                    pad: Any) -> tuple[RecordOptions | None, list[Mapping[str, Any]] | None]:
    """The record options of a record stream, None for an ``(X, y)`` stream (see :func:`data_stream`); and the
    population's first documents when they were read to decide (the engine's first layout reuses them)."""
    selected = check_fields(fields)
    if not isinstance(decode, bool):
        raise InvalidStreamArgument(f"decode must be True or False, not {decode!r}")
    if pad is not None and (not isinstance(pad, Mapping) or not all(isinstance(k, str) for k in pad)):
        raise InvalidStreamArgument(f"pad must be a dict of field -> fill value, not {pad!r}")
    options = RecordOptions(None if selected is None else tuple(selected), decode, dict(pad) if pad else None)
    if selected is None and decode and pad is None:
        head = head_documents(scope, query)
        return (None if not head or "_x" in head[0] else options), head
    return options, None


def read_records(blobs: BlobStore, docs: Iterable[Mapping[str, Any]], *, fields: Sequence[str] | None = None,
                 decode: bool = True, on_error: str = "raise", verify: bool = True) -> list[dict[str, Any]]:
    """Every document of ``docs`` as a record dict, in the order given: what ``find_data(...).records()`` returns.

    The same planner, fetcher and decoder as the stream's record batches, run
    once in the calling thread; an undecodable record raises
    :class:`SampleError` naming it and the field (``on_error="skip"`` leaves it out).
    """
    _check_on_error(on_error)
    refs = RecordTable.of_records(docs, check_fields(fields)).freeze()
    counters = Counters()
    window = fetch_window(blobs, refs, np.arange(refs.n, dtype=np.int64), None, counters, verify=verify)
    decoder = RecordDecoder(transform=None, on_error=on_error, verify=verify, stats=counters, decode=decode,
                            collated=False)
    return decoder.decode([(window, 0, refs.n)]).records


def _check_on_error(on_error: Any) -> None:
    if on_error not in ("raise", "skip"):
        raise InvalidStreamArgument(f"on_error must be 'raise' or 'skip', not {on_error!r}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise InvalidStreamArgument(f"{name} must be an integer >= {minimum}, not {value!r}")


def _check_shard(shard: Any) -> tuple[int, int]:
    try:
        rank, world = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InvalidStreamArgument(f"shard must be (rank, world), not {shard!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise InvalidStreamArgument(f"shard (rank={rank}, world={world}) needs 0 <= rank < world")
    return rank, world


class Stream(Iterator[Any]):
    """An iterator of ``(X, y)`` numpy batches (dicts for records) with :meth:`state_dict`, :attr:`stats`, :meth:`close`.

    Use one stream from one thread (the training loop's); its stages run on
    their own threads.  A context manager: ``with db.data_generator(...) as s:``.
    """

    def __init__(self, scope: StudyScope, cfg: StreamConfig, state: StreamState, cache: ChunkCache | None,
                 memo: IndexMemo | None = None, disk: DiskChunkCache | None = None,
                 head: list[Mapping[str, Any]] | None = None) -> None:
        self.config = cfg
        self._start = state
        self._cache = cache
        self._phase: Phase | None = None
        self._consumed = 0
        self._samples = self._batches = self._skipped = 0
        self._skipped_ids: list[str] = []
        self._wait_fetch = self._wait_decode = 0.0
        self._began = time.perf_counter()
        self._ended: float | None = None
        self._closed = False
        self._engine = Engine(scope, cfg, state, cache, memo, disk, head)
        self._finalizer = weakref.finalize(self, self._engine.shutdown, False)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        engine = self._engine
        while not self._closed:
            began = time.perf_counter()
            item = engine.out.get()
            self._wait_fetch += time.perf_counter() - began
            if item is None:
                break
            kind, payload, consumed = item
            if kind == "batch":
                began = time.perf_counter()
                try:
                    batch = payload.result()
                except BaseException:
                    self.close()
                    raise
                finally:
                    self._wait_decode += time.perf_counter() - began
                self._consumed = consumed
                self._skipped += batch.skipped
                self._skipped_ids.extend(e.doc_id for e in batch.errors[: MAX_SKIPPED_IDS - len(self._skipped_ids)])
                n = len(batch)
                if n == 0:
                    continue  # every sample of this batch was skipped
                self._samples += n
                self._batches += 1
                return batch.value()
            if kind == "start":
                self._phase, self._consumed = payload, 0
            elif kind == "end":  # its phase has the count an epoch streamed from index blocks did not know
                self._phase, self._consumed = payload, consumed
            elif kind == "done":
                self.close()
            elif kind == "error":
                self.close()
                raise payload
        raise StopIteration

    @property
    def epoch(self) -> int | None:
        """The epoch of the batch returned last (None before the first batch, and in follow mode's tail)."""
        return None if self._phase is None else self._phase.epoch

    @property
    def snapshot(self) -> dict[str, int] | None:
        """The data this stream's current epoch reads: ``{"last_seq", "count"}`` (None before it starts)."""
        phase = self._phase
        if phase is None or phase.epoch is None:
            return None
        count = phase.count if phase.count is not None else population(self._engine.scope, self.config.query, phase.seq)
        return {"last_seq": phase.seq, "count": count}

    # -- position ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where this stream is, as a small JSON-serializable dict (pass it back as ``state=``)."""
        return self._state().to_dict()

    def _state(self) -> StreamState:
        start, cfg, phase = self._start, self.config, self._phase
        if phase is None:
            return start
        if phase.epoch is None:
            return start.with_position(epoch=start.epoch, epoch_seq=None, remaining=None, tail_after=phase.seq,
                                       tail_position=phase.tail_base + self._consumed * cfg.world)
        if phase.count is None and cfg.world == 1:  # streaming from index blocks: the count is not known yet
            return start.with_position(epoch=phase.epoch, epoch_seq=phase.seq, remaining=((self._consumed, None),),
                                       tail_after=None, tail_position=0)
        # rank 0 of a shard streams its first window before the count (stream/blocks.py): asked here, then
        ranges = phase.ranges if phase.count is not None else [(0, population(self._engine.scope, cfg.query, phase.seq))]
        left = advance(ranges, cfg.world, self._consumed)
        if left:
            return start.with_position(epoch=phase.epoch, epoch_seq=phase.seq, remaining=tuple(left),
                                       tail_after=None, tail_position=0)
        following = phase.epoch + 1
        if cfg.epochs is not None and following >= cfg.epochs and cfg.follow:
            return start.with_position(epoch=following, epoch_seq=None, remaining=None, tail_after=phase.seq,
                                       tail_position=0)
        return start.with_position(epoch=following, epoch_seq=None if cfg.follow else phase.seq, remaining=None,
                                   tail_after=None, tail_position=0)

    # -- observability -----------------------------------------------------------------------------------

    @property
    def stats(self) -> StreamStats:
        c = self._engine.counters.snapshot()
        elapsed = (self._ended or time.perf_counter()) - self._began
        cache = self._cache.stats() if self._cache is not None else None
        rate = (lambda v: v / elapsed if elapsed > 0 else 0.0)
        return StreamStats(
            samples=self._samples,
            batches=self._batches,
            skipped=self._skipped,
            dropped=int(c.get("dropped", 0)),
            elapsed_s=elapsed,
            samples_per_s=rate(self._samples),
            bytes_read=int(c.get("bytes_read", 0)),
            read_bytes_per_s=rate(c.get("bytes_read", 0)),
            bytes_decoded=int(c.get("bytes_decoded", 0)),
            decoded_bytes_per_s=rate(c.get("bytes_decoded", 0)),
            requests=int(c.get("requests", 0)),
            cache_hits=cache.hits if cache else 0,
            cache_misses=cache.misses if cache else 0,
            cache_bytes=cache.bytes if cache else 0,
            io_s=c.get("io_s", 0.0),
            decode_s=c.get("decode_s", 0.0),
            index_s=c.get("index_s", 0.0),
            wait_fetch_s=self._wait_fetch,
            wait_decode_s=self._wait_decode,
            decode_workers=int(c.get("decode_workers", 0)),
            skipped_ids=tuple(self._skipped_ids),
            unpacked_windows=int(c.get("unpacked_windows", 0)),
            read_threads=int(c.get("read_threads", 0)),
        )

    @property
    def cache(self) -> ChunkCache | None:
        return self._cache

    # -- lifecycle ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads and wait for them (idempotent)."""
        if not self._closed:
            self._closed = True
            self._ended = time.perf_counter()
        self._finalizer.detach()
        if threading.current_thread() not in self._engine.threads:
            self._engine.shutdown(wait=True)
        else:  # pragma: no cover - close() from a stage's own thread
            self._engine.shutdown(wait=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self.config
        return (f"Stream(query={cfg.query!r}, batch_size={cfg.batch_size}, shard=({cfg.rank}, {cfg.world}), "
                f"{'closed' if self._closed else 'open'})")


__all__ = ["DEFAULT_WINDOW_BYTES", "Batch", "InvalidStreamArgument", "SampleError", "Stream", "StreamStats", "data_stream",
           "read_batch", "read_records"]
