"""The ``tensordb`` command: demo, plugins, find, logs, jobs, check, gc.

Every command takes ``--uri`` (default ``$TENSORDB_URI`` or ``./warehouse``),
``--blobs`` and ``--study``; URIs are printed redacted, errors are one line
naming what to fix (exit status 2), never a traceback for a ``TensorDBError``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import InvalidQuery, TensorDBError
from .registry import list_schemes
from .uri import redact


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (dict, list)):
            return json.dumps(v, separators=(",", ":"))[:60]
        return "-" if v is None else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict) and k in ("metrics",):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _query(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidQuery(f"the query must be JSON, e.g. '{{\"split\": \"train\"}}': {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidQuery("the query must be a JSON object")
    return value


def _connect(args: argparse.Namespace):
    from .warehouse import connect

    return connect(args.uri, args.study, blobs=args.blobs)


def cmd_plugins(args: argparse.Namespace) -> int:
    rows = [{"scheme": s.scheme, "index": "yes" if s.index else "", "blobs": "yes" if s.blobs else "",
             "plugin": s.source, "install": s.install_hint, "description": s.description} for s in list_schemes()]
    print(_table(rows, ["scheme", "index", "blobs", "plugin", "description"]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.uri_pos or args.uri or "./tensordb-demo", args.blobs, workers=args.workers,
                      epochs=args.epochs)
    return 0 if result["best_test_acc"] is not None else 1


def cmd_find(args: argparse.Namespace) -> int:
    from .warehouse import connect

    with connect(args.uri, args.study, blobs=args.blobs) as db:
        scope_db = db.all_studies() if args.all_studies else db
        docs = list(scope_db.index.find(args.collection, scope_db.scope.query(_query(args.query)),
                                        limit=args.limit, sort=[("_seq", -1)] if args.newest else None))
        rows = [_flatten({k: v for k, v in d.items() if k not in ("_x", "_y", "_blob")}) for d in docs]
        columns = sorted({c for r in rows for c in r}, key=lambda c: (c.startswith("_") and c != "_id", c))
        print(_table(rows, columns[:12]) if rows else "no documents match")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with _connect(args) as db:
        docs = db.find_logs(args.kind, _query(args.query), limit=args.limit)
        print(_table([_flatten(d) for d in docs], ["kind", "step", "run", *sorted(
            {k for d in docs for k in _flatten(d) if k.startswith("metrics.")})]) if docs else "no logs")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _connect(args) as db:
        docs = db.find_jobs(_query(args.query), limit=args.limit)
        rows = [{**d, "errors": len(d.get("errors") or []), "result": d.get("result")} for d in docs]
        print(_table(rows, ["_id", "status", "attempts", "worker", "spec", "result", "errors"]) if rows else "no jobs")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .maintenance import check

    with _connect(args) as db:
        report = check(db.index, db.blobs, verify=not args.no_verify, grace_s=args.grace)
    print(f"documents referencing blobs: {report.documents}; blobs stored: {report.blobs}")
    for collection, doc_id, key in report.dangling:
        print(f"DANGLING  {collection} {doc_id} -> missing blob {key}")
    for key in report.corrupted:
        print(f"CORRUPTED {key} (bytes do not match the content address)")
    print(f"orphan blobs (no document references them): {len(report.orphans)}"
          + ("  — run `tensordb gc` to remove them" if report.orphans else ""))
    if report.pending:
        print(f"blobs of writes still in progress: {len(report.pending)}")
    print("OK" if report.ok else "PROBLEMS FOUND")
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace) -> int:
    from .maintenance import gc

    with _connect(args) as db:
        doomed = gc(db.index, db.blobs, grace_s=args.grace, dry_run=args.dry_run)
    print(f"{'would delete' if args.dry_run else 'deleted'} {len(doomed)} orphan blob(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensordb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--uri", default=os.environ.get("TENSORDB_URI"),
                       help="warehouse URI or directory (default $TENSORDB_URI or ./warehouse)")
        p.add_argument("--blobs", default=os.environ.get("TENSORDB_BLOBS"), help="blob store URI (optional)")
        p.add_argument("--study", default=os.environ.get("TENSORDB_STUDY", "digits-mlp"))

    p = sub.add_parser("plugins", help="list installed backend schemes and the plugins serving them")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("demo", help="run the whole lifecycle on scikit-learn's digits")
    common(p)
    p.add_argument("uri_pos", nargs="?", metavar="URI", help="warehouse (default ./tensordb-demo)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=12)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("find", help="list documents matching a JSON query")
    common(p)
    p.add_argument("query", nargs="?", help='JSON query, e.g. \'{"split": "train"}\'')
    p.add_argument("--collection", default="data", choices=["data", "models", "params", "jobs", "logs"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--newest", action="store_true", help="newest first")
    p.add_argument("--all-studies", action="store_true", help="search every study (read-only)")
    p.set_defaults(func=cmd_find)

    p = sub.add_parser("logs", help="show train/valid/test logs")
    common(p)
    p.add_argument("kind", nargs="?", choices=["train", "valid", "test"])
    p.add_argument("--query")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("jobs", help="show the job queue")
    common(p)
    p.add_argument("query", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("check", help="find dangling references, orphan and corrupted blobs (whole warehouse)")
    common(p)
    p.add_argument("--no-verify", action="store_true", help="skip re-hashing every referenced blob")
    p.add_argument("--grace", type=float, default=3600.0, help="seconds a write intent protects its blob")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("gc", help="delete orphan blobs (never one a document or a running writer references)")
    common(p)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--grace", type=float, default=3600.0, help="seconds a write intent protects its blob")
    p.set_defaults(func=cmd_gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TensorDBError as exc:
        print(f"tensordb: error: {redact(str(exc)) if '://' in str(exc) else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
