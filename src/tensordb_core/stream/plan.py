"""The fetch plan for a group of sample references: which blob requests read them.

A *plan* turns a set of rows into blob requests: a whole chunk where the rows
cover a good part of it (:data:`DENSE_FRACTION`), else byte ranges of nearby
rows merged into one request (:data:`COALESCE_GAP`).  Why chunks: one object
per sample costs a request (~1 ms of client CPU on an object store) per
sample; a chunk of a few MiB costs one.  The stream plans each shuffle window
this way, and ``find_data(...).arrays()`` plans its whole result the same way
(:meth:`~tensordb_core.stream.refs.RefTable.of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from tensordb_core.stream.refs import FrozenRefs

#: Fetch the whole chunk when the selected bytes cover at least this fraction of it.
DENSE_FRACTION = 0.25
#: Ranged reads closer than this many bytes are merged into one request.
COALESCE_GAP = 64 * 1024
#: The same two rules for stores that read ranges locally (``read_into``: a file): a request costs a
#: pread, not a round trip, so bytes decide.  A 10% filter over 6 KiB samples read 9.7x the selected
#: bytes with the remote rules (gaps of ~50 KiB all merged) and ~1.0x with these.
LOCAL_DENSE_FRACTION = 0.67
LOCAL_COALESCE_GAP = 4 * 1024


@dataclass(frozen=True)
class FetchPlan:
    """Blob requests for some rows, and for each row which request holds it and that request's start offset."""

    requests: list[tuple[str, int, int | None]]  # (chunk key, start, end); end None = whole chunk
    req_of: np.ndarray  # per row (in the caller's order): index into ``requests``, -1 for a bad row
    base_of: np.ndarray  # per row: the byte offset in the chunk where its request starts
    lengths: list[int]  # expected bytes per request (-1 when unknown: whole chunk without a recorded size)

    def joined(self, min_fill: float) -> FetchPlan:
        """The same rows with each chunk's ranges read as one covering range where they fill ``min_fill`` of it.

        Why: for a store that maps files (``BlobCapabilities.map``) a request
        is a mapping (open, mmap, close: ~15 µs of system calls) while a byte
        between two ranges costs only its page-table entry, so a window of
        scattered rows (a loader worker's share of a window: every other
        sample) is cheaper as one view per chunk.  ``min_fill`` bounds the
        pages mapped but not asked for, which a cold file reads from disk.
        """
        reqs = self.requests
        out: list[tuple[str, int, int | None]] = []
        lengths: list[int] = []
        new_of = np.empty(len(reqs), dtype=np.int64)
        i = 0
        while i < len(reqs):
            j = i + 1
            while j < len(reqs) and reqs[j][0] == reqs[i][0]:
                j += 1
            if j - i > 1:  # several ranges of one chunk (a whole-chunk request is its chunk's only one)
                low, high = reqs[i][1], max(int(end) for _k, _s, end in reqs[i:j])  # type: ignore[arg-type]
                if sum(self.lengths[i:j]) >= min_fill * (high - low):
                    new_of[i:j] = len(out)
                    out.append((reqs[i][0], low, high))
                    lengths.append(high - low)
                    i = j
                    continue
            for k in range(i, j):
                new_of[k] = len(out)
                out.append(reqs[k])
                lengths.append(self.lengths[k])
            i = j
        return self if len(out) == len(reqs) else self._regrouped(out, lengths, new_of)

    def spanning(self, spans: Mapping[str, tuple[int, int | None]]) -> FetchPlan:
        """The same rows with every request of each chunk in ``spans`` made its one request there (start, end;
        end None: the whole chunk), which holds them (:mod:`tensordb_core.stream.carry`: a later window takes
        the rest).  A whole chunk's length is not known here (-1): such plans are not read into buffers."""
        out: list[tuple[str, int, int | None]] = []
        lengths: list[int] = []
        new_of = np.empty(len(self.requests), dtype=np.int64)
        placed: dict[str, int] = {}
        for i, (key, start, end) in enumerate(self.requests):
            if key not in spans:
                new_of[i] = len(out)
                out.append((key, start, end))
                lengths.append(self.lengths[i])
                continue
            if key not in placed:
                placed[key] = len(out)
                low, high = spans[key]
                out.append((key, low, high))
                lengths.append(-1 if high is None else high - low)
            new_of[i] = placed[key]
        return self._regrouped(out, lengths, new_of)

    def with_requests(self, own: np.ndarray, requests: list[tuple[str, int, int | None]],
                      request_of: np.ndarray) -> FetchPlan:
        """This plan, made for the rows at ``own`` (a mask), with ``requests`` added for the others: row ``i``
        not ``own`` is read by ``requests[request_of[i]]``."""
        n = len(own)
        req_of, base_of = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64)
        req_of[own], base_of[own] = self.req_of, self.base_of
        if requests:
            other = ~own
            req_of[other] = len(self.requests) + request_of[other]
            base_of[other] = np.asarray([start for _k, start, _e in requests], dtype=np.int64)[request_of[other]]
        lengths = self.lengths + [-1 if end is None else end - start for _k, start, end in requests]
        return FetchPlan(self.requests + requests, req_of, base_of, lengths)

    def _regrouped(self, requests: list[tuple[str, int, int | None]], lengths: list[int],
                   new_of: np.ndarray) -> FetchPlan:
        """This plan's rows over ``requests``, where ``new_of[i]`` is the new request holding old request ``i``."""
        good = self.req_of >= 0
        req_of = np.where(good, new_of[np.maximum(self.req_of, 0)], -1)
        starts = np.asarray([start for _k, start, _e in requests], dtype=np.int64)
        base_of = np.where(good, starts[np.maximum(req_of, 0)], 0)
        return FetchPlan(requests, req_of, base_of, lengths)


def run_bounds(values: np.ndarray) -> list[int]:
    """``[0, ..., len(values)]``: where each run of equal consecutive ``values`` starts, then the end; with
    ``pairwise``, each run's ``[start, end)`` (a window's requests, an epoch's windows)."""
    return [0, *(np.flatnonzero(values[1:] != values[:-1]) + 1).tolist(), len(values)]


def plan_fetch(refs: FrozenRefs, rows: np.ndarray, *, local: bool = False, exact: bool = True,
               whole_chunks: bool = False) -> FetchPlan:
    """Group ``rows`` by chunk; whole chunks where dense, else coalesced byte ranges (``local``: the file rules).

    ``exact``: a chunk whose rows coalesce into one range is read as that
    range even where dense.  Why: a window of the block order holds one
    contiguous run of a chunk's samples, and the chunk's other part belongs to
    another window, which read the whole chunk again (the first epoch read
    1.3-1.6x its bytes).  One request either way; the whole chunk only saves
    requests where the rows are scattered.  Off for a cache keyed by request,
    which hits more often on whole chunks.

    ``whole_chunks``: every chunk touched is read whole (where its size is
    known), for a cache: what it keeps is then what any later window asks
    for, whichever of a chunk's samples that window holds.
    """
    dense_fraction, coalesce_gap = (LOCAL_DENSE_FRACTION, LOCAL_COALESCE_GAP) if local else (
        DENSE_FRACTION, COALESCE_GAP)
    n = len(rows)
    req_of = np.full(n, -1, dtype=np.int64)
    base_of = np.zeros(n, dtype=np.int64)
    chunks = refs.chunk[rows]
    good = np.flatnonzero(chunks >= 0)
    if not len(good):
        return FetchPlan([], req_of, base_of, [])
    starts = refs.span_start[rows[good]]
    ends = refs.span_end[rows[good]]
    gchunks = chunks[good]
    order = np.lexsort((starts, gchunks))
    s, e, c = starts[order], ends[order], gchunks[order]
    # Per chunk: selected bytes vs the chunk's size decides whole-chunk vs ranges.
    uniq, first = np.unique(c, return_index=True)
    selected = np.add.reduceat(e - s, first)
    sizes = refs.chunk_sizes[uniq]
    dense_chunk = (sizes >= 0) & (whole_chunks | (selected >= dense_fraction * sizes))
    per_chunk = np.diff(np.append(first, len(c)))
    new_group = np.ones(len(c), dtype=bool)
    same_chunk = near = np.zeros(0, dtype=bool)
    if len(c) > 1:
        # Running end within each chunk (spans overlap when labels sit after the inputs).
        bounds = np.append(first, len(c))
        run_end = np.concatenate([np.maximum.accumulate(e[a:b]) for a, b in pairwise(bounds)])
        same_chunk = c[1:] == c[:-1]
        near = s[1:] - run_end[:-1] <= coalesce_gap
        if exact and not whole_chunks:  # chunks whose rows make one coalesced range: read the range
            ranges = np.add.reduceat(np.r_[True, ~(same_chunk & near)].astype(np.int64), first)
            dense_chunk &= ranges > 1
    elif exact and not whole_chunks:
        dense_chunk[:] = False
    dense = np.repeat(dense_chunk, per_chunk)
    if len(c) > 1:
        new_group[1:] = ~(same_chunk & (dense[1:] | near))
    group_id = np.cumsum(new_group) - 1
    heads = np.flatnonzero(new_group)
    g_start = np.minimum.reduceat(s, heads)
    g_end = np.maximum.reduceat(e, heads)
    requests: list[tuple[str, int, int | None]] = []
    lengths: list[int] = []
    g_base = np.empty(len(heads), dtype=np.int64)
    for g, head in enumerate(heads.tolist()):
        key = refs.chunk_keys[int(c[head])]
        if dense[head]:
            requests.append((key, 0, None))
            lengths.append(int(refs.chunk_sizes[int(c[head])]))
            g_base[g] = 0
        else:
            requests.append((key, int(g_start[g]), int(g_end[g])))
            lengths.append(int(g_end[g] - g_start[g]))
            g_base[g] = g_start[g]
    placed = good[order]
    req_of[placed] = group_id
    base_of[placed] = g_base[group_id]
    return FetchPlan(requests, req_of, base_of, lengths)
