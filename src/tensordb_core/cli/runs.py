"""``tensordb runs``: list and filter a study's runs (status, params, latest metrics) from the shell.

The filter is the same portable JSON query as ``db.search_runs``, e.g.
``tensordb runs '{"params.lr": {"$lt": 0.1}, "status": "finished"}' --sort metrics.valid_acc:-1``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from tensordb_core.cli.common import open_warehouse, parse_query, table
from tensordb_core.errors import InvalidQuery


def parse_sort(specs: Sequence[str] | None) -> list[tuple[str, int]] | None:
    """``["metrics.acc:-1", "params.lr"]`` → ``[("metrics.acc", -1), ("params.lr", 1)]``."""
    out = []
    for spec in specs or ():
        field, _, direction = spec.partition(":")
        if not field or direction not in ("", "1", "-1", "asc", "desc"):
            raise InvalidQuery(f"--sort takes FIELD or FIELD:-1 (descending), not {spec!r}")
        out.append((field, -1 if direction in ("-1", "desc") else 1))
    return out or None


def format_runs(docs: Sequence[dict[str, Any]], *, max_columns: int = 8) -> str:
    """One row per run: id, name, status, start time, then the params and latest metrics that vary most often."""
    if not docs:
        return "no runs match"
    params = sorted({f"params.{k}" for d in docs for k in d.get("params") or {}})
    metrics = sorted({f"metrics.{k}" for d in docs for k in d.get("metrics") or {}})
    extra = (params + metrics)[:max_columns]
    rows = []
    for d in docs:
        row = {"id": d["_id"], "name": d.get("name"), "status": d.get("status"),
               "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(d["started"])) if d.get("started") else None}
        for column in extra:
            group, _, key = column.partition(".")
            row[column] = (d.get(group) or {}).get(key)
        rows.append(row)
    return table(rows, ["id", "name", "status", "started", *extra])


def cmd_runs(args: argparse.Namespace) -> int:
    query = parse_query(args.query, '{"status": "finished"}') or None
    with open_warehouse(args) as db:
        docs = db.search_runs(query, sort=parse_sort(args.sort), limit=args.limit)
    if args.json:
        print(json.dumps(docs, indent=1, sort_keys=True))
    else:
        print(format_runs(docs))
    return 0


def add_runs_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``runs`` subcommand (wired into :func:`tensordb_core.cli.main.build_parser`)."""
    p = sub.add_parser("runs", help="list and filter runs (params, status, metrics) with a JSON query")
    common(p)
    p.add_argument("query", nargs="?", help='JSON query, e.g. \'{"params.lr": {"$lt": 0.1}, "status": "finished"}\'')
    p.add_argument("--sort", action="append", metavar="FIELD[:-1]",
                   help="sort key, repeatable (e.g. metrics.valid_acc:-1); newest first by default")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print the run documents as JSON")
    p.set_defaults(func=cmd_runs)
