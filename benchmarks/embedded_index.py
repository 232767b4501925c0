"""The embedded SQLite index against plain SQLite: import rate and a tag/range query (issue 16).

Run from the repository root::

    .venv/bin/python benchmarks/embedded_index.py            # 200,000 documents, ~1 minute on 2 cores
    .venv/bin/python benchmarks/embedded_index.py --docs 50000

Rows (best of ``--repeat``):

1. ``import``: ``SQLiteIndexStore.insert_many`` of sample-shaped documents
   (``label``, ``part`` and an ``_x`` reference like the ones ``import_data``
   writes) in batches of 5,000, against ``executemany`` of the same JSON
   into a bare ``(id, doc)`` table (the floor: no checks, no ids).
2. ``query``: ``{"label": {"$gte": 990}, "part": 3}`` through ``find``
   against the raw scan ``SELECT id, doc FROM t WHERE json_extract(doc,
   '$.label') >= 990 AND json_extract(doc, '$.part') = 3`` with every row
   parsed (``json.loads``), so both return documents; then the same after
   ``create_index([("label", 1)])`` on the store.

Targets (issue 16): import >= 50k documents/s; the query >= 0.5x the raw scan.
Results go to ``benchmarks/results/embedded_index.json``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import machine, write_json

from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.store.protocols import new_id

RESULTS = Path(__file__).resolve().parent / "results" / "embedded_index.json"
QUERY = {"label": {"$gte": 990}, "part": 3}
RAW = ("SELECT id, doc FROM raw WHERE json_extract(doc, '$.label') >= 990 AND json_extract(doc, '$.part') = 3 "
       "ORDER BY seq")


def documents(n: int) -> list[dict[str, Any]]:
    """Sample documents as ``import_data`` writes them (a tag, a label, a chunk reference)."""
    return [{"_id": new_id(), "label": i % 1000, "part": i % 7, "ds": "bench",
             "_x": {"key": "chunks/" + "ab" * 32, "offset": 12_288 * (i % 300), "length": 6_100, "codec": "lz4",
                    "dtype": "|u1", "shape": [3, 64, 64], "crc32": 123456789 + i, "chunk_size": 3_686_400}}
            for i in range(n)]


def best(repeat: int, fn: Any) -> tuple[float, Any]:
    took, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        took = min(took, time.perf_counter() - t)
    return took, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    docs = documents(args.docs)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tensordb-index-bench-") as work:
        def import_store() -> SQLiteIndexStore:
            path = Path(work) / f"idx-{time.perf_counter_ns()}.db"
            store = SQLiteIndexStore(path)
            for k in range(0, len(docs), 5000):
                store.insert_many("data", docs[k:k + 5000])
            return store

        took, store = best(args.repeat, import_store)
        rows.append({"row": "import: SQLiteIndexStore.insert_many", "docs": args.docs, "docs_per_s": args.docs / took})
        bodies = [(d["_id"], json.dumps({k: v for k, v in d.items() if k != "_id"}, separators=(",", ":")))
                  for d in docs]

        def import_raw() -> sqlite3.Connection:
            conn = sqlite3.connect(Path(work) / f"raw-{time.perf_counter_ns()}.db")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE raw (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, doc TEXT)")
            for k in range(0, len(bodies), 5000):
                with conn:
                    conn.executemany("INSERT INTO raw (id, doc) VALUES (?, ?)", bodies[k:k + 5000])
            return conn

        took_raw, conn = best(args.repeat, import_raw)
        rows.append({"row": "import: raw SQLite executemany", "docs": args.docs, "docs_per_s": args.docs / took_raw})
        took_raw_q, want = best(args.repeat, lambda: [json.loads(doc) for _, doc in conn.execute(RAW)])
        rows.append({"row": "query: raw json_extract scan", "matches": len(want), "seconds": took_raw_q})
        took_q, got = best(args.repeat, lambda: list(store.find("data", QUERY)))
        assert len(got) == len(want), (len(got), len(want))
        rows.append({"row": "query: find", "matches": len(got), "seconds": took_q, "vs_raw": took_raw_q / took_q})
        store.create_index("data", [("label", 1)])
        took_qi, got = best(args.repeat, lambda: list(store.find("data", QUERY)))
        assert len(got) == len(want)
        rows.append({"row": "query: find, label indexed", "matches": len(got), "seconds": took_qi,
                     "vs_raw": took_raw_q / took_qi})
        store.close()
        conn.close()
    for r in rows:
        extra = ", ".join(f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v:,}" for k, v in r.items() if k != "row")
        print(f"{r['row']:<42} {extra}")
    result = {"benchmark": "embedded_index", "docs": args.docs, "repeat": args.repeat, "machine": machine(),
              "rows": rows}
    out = write_json(args.out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
