"""The ``tensordb`` command: a warehouse from the shell (demo, find, logs, jobs, runs, status, compare, worker, copy, ...).

Every command takes ``--uri`` (default ``$TENSORDB_URI`` or ``./warehouse``),
``--blobs`` and ``--study``; URIs are printed redacted, errors are one line
naming what to fix (exit status 2), never a traceback for a ``TensorDBError``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from tensordb_core.cli.common import (
    DRIVER_TIMEOUT_S,
    flatten_metrics,
    non_negative_number,
    open_warehouse,
    parse_query,
    plain_name,
    port,
    positive_int,
    positive_number,
    seconds,
    shown_line,
    table,
    target,
)
from tensordb_core.cli.helptext import package_version, plain, summary
from tensordb_core.cli.progress import progress
from tensordb_core.errors import InvalidQuery, TensorDBError
from tensordb_core.store.registry import list_schemes
from tensordb_core.store.uri import redact_text


def cmd_plugins(args: argparse.Namespace) -> int:
    from tensordb_core.cli.plugins import scheme_rows

    print(table(scheme_rows(list_schemes()), ["scheme", "index", "blobs", "usable", "plugin", "description"]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tensordb_core.cli.demo import run_demo
    from tensordb_core.store.scope import check_study

    check_study(args.study)  # the demo writes its own studies, but a malformed --study is still an error
    result = run_demo(target(args.uri_pos or args.uri or "./tensordb-demo", args.timeout), args.blobs,
                      workers=args.workers,
                      epochs=args.epochs)
    return 0 if result["best_test_acc"] is not None else 1


def cmd_find(args: argparse.Namespace) -> int:
    query = parse_query(args.query)
    with open_warehouse(args) as db:
        scope_db = db.all_studies() if args.all_studies else db
        scoped = scope_db.scope.query(query)
        docs = list(scope_db.index.find(args.collection, scoped, limit=args.limit,
                                        sort=[("_seq", -1)] if args.newest else None))
        total = scope_db.index.count(args.collection, scoped) if args.limit and len(docs) >= args.limit else len(docs)
        rows = [flatten_metrics({k: v for k, v in d.items() if k not in ("_x", "_y", "_blob")}) for d in docs]
        columns = sorted({c for r in rows for c in r}, key=lambda c: (c.startswith("_") and c != "_id", c))
        print(table(rows, columns[:12]) + shown_line(len(rows), total) if rows else "no documents match")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from tensordb_core.warehouse.logs import COLLECTION as LOGS

    query = parse_query(args.query)
    with open_warehouse(args) as db:
        docs = db.find_logs(args.kind, query, limit=args.limit)
        total = len(docs)
        if args.limit and total >= args.limit:
            total = db.index.count(LOGS, db.scope.query({"$and": [{"kind": args.kind} if args.kind else {}, query]}))
        print(table([flatten_metrics(d) for d in docs], ["kind", "step", "run", *sorted(
            {k for d in docs for k in flatten_metrics(d) if k.startswith("metrics.")})]) + shown_line(len(docs), total)
              if docs else "no logs")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    query = parse_query(args.query)
    with open_warehouse(args) as db:
        docs = db.find_jobs(query, limit=args.limit)
        total = db.index.count("jobs", db.scope.query(query)) if args.limit and len(docs) >= args.limit else len(docs)
        rows = [{**d, "errors": len(d.get("errors") or []), "result": d.get("result")} for d in docs]
        print(table(rows, ["_id", "status", "attempts", "worker", "spec", "result", "errors"]) + shown_line(len(rows), total)
              if rows else "no jobs")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tensordb_core.warehouse.maintenance import check

    with open_warehouse(args) as db, progress("checking", None, unit="blobs") as advance:
        report = check(db.index, db.blobs, verify=not args.no_verify, grace_s=args.grace, progress=advance)
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
    from tensordb_core.warehouse.maintenance import gc

    with open_warehouse(args) as db, progress("collecting", None, unit="chunks and blobs") as advance:
        doomed = gc(db.index, db.blobs, grace_s=args.grace, dry_run=args.dry_run, force=args.force, progress=advance)
    print(f"{'would delete' if args.dry_run else 'deleted'} {len(doomed)} orphan blob(s)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from tensordb_core.loop.roles import BuildPolicy
    from tensordb_core.loop.worker import WorkerOptions, run_worker

    opts = WorkerOptions(
        poll_s=args.poll, heartbeat_s=args.heartbeat, name=args.name,
        policy=BuildPolicy(allow_import=args.allow_import, trusted=args.trusted),
        progress=lambda m: print(f"[{args.role}] {m}", flush=True),
        job_query=parse_query(args.jobs), lease_s=args.lease, until_idle=args.until_idle,
        test_query=parse_query(args.test_query) or {"split": "test"}, prefix=args.prefix, score_lease_s=args.score_lease,
        metric=args.metric, mode=args.mode, min_improvement=args.min_improvement,
        http_port=args.http_port, http_host=args.http_host, probe_query=parse_query(args.probe_query))
    with open_warehouse(args, create=True) as db:
        print(f"[{args.role}] {db!r}", flush=True)
        handled = run_worker(db, args.role, opts)
    print(f"[{args.role}] stopped cleanly ({handled} handled)", flush=True)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from tensordb_core.cli.compare import compare_runs, format_rows, plot_runs

    with open_warehouse(args) as db:
        metric, rows = compare_runs(db, metric=args.metric, mode=args.mode)
        print(format_rows(metric, rows))
        if args.plot:
            plot_runs(db, args.plot, metric=metric, mode=args.mode)
            print(f"learning curves of {len(rows)} run(s) written to {args.plot}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from tensordb_core.warehouse.copying import copy_warehouse

    with progress("copying", None, unit="documents") as advance:
        report = copy_warehouse(target(args.src, args.timeout), target(args.dst, args.timeout),
                                study=None if args.all_studies else args.study, src_blobs=args.src_blobs,
                                dst_blobs=args.dst_blobs, verify=not args.no_verify, page=args.page, progress=advance,
                                log=(lambda m: print(m, flush=True)) if args.verbose else None)
    print(report.summary())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from tensordb_core.cli.status import format_status, study_status

    with open_warehouse(args) as db:
        status = study_status(db, metric=args.metric, mode=args.mode)
    print(json.dumps(status, indent=1, default=str) if args.json else format_status(status))
    return 0


def cmd_import_images(args: argparse.Namespace) -> int:
    from tensordb_core.cli.import_images import import_images, parse_tags, scan

    if not args.study:
        raise InvalidQuery("import-images needs --study (or $TENSORDB_STUDY): the study the images go into")
    tags = parse_tags(args.tags)
    found = scan(args.dir)
    bar = nullcontext(None) if args.quiet else progress("importing", len(found.files), unit="files")
    with open_warehouse(args, create=True) as db, bar as advance:
        summary = import_images(db, found, tags=tags, on_error=args.on_error, limit=args.limit,
                                chunk_bytes=int(args.chunk_mb * (1 << 20)) if args.chunk_mb else None,
                                progress=advance, commit_files=args.commit_every)
    print(json.dumps(summary.as_dict()) if args.json else summary.line())
    return 0


def one_line(message: str, longest: int = 120) -> str:
    """An error as one readable line: newlines folded, any run of ``longest``+ characters without a space (a
    5,000-character path or study echoed back) cut to its start and its length."""
    folded = " ".join(message.split())
    return re.sub(rf"\S{{{longest + 1},}}", lambda m: f"{m[0][:60]}...({len(m[0])} characters)", folded)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensordb", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tensordb {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--uri", default=os.environ.get("TENSORDB_URI"),
                       help="warehouse URI or directory (default $TENSORDB_URI or ./warehouse)")
        p.add_argument("--blobs", default=os.environ.get("TENSORDB_BLOBS"), help="blob store URI (optional)")
        p.add_argument("--study", default=os.environ.get("TENSORDB_STUDY", "digits-mlp"))
        timeout_option(p)

    def timeout_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=seconds, metavar="SECONDS",
                       help="MongoDB: seconds to wait for a server before giving up (default: the URI's "
                       f"serverSelectionTimeoutMS, else {DRIVER_TIMEOUT_S:g})")

    p = sub.add_parser("plugins", help="list backend schemes, whether each one's client library is installed "
                       "(else the extra to install), and the plugins serving them")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("demo", help="run the whole lifecycle on scikit-learn's digits")
    common(p)
    p.add_argument("uri_pos", nargs="?", metavar="URI", help="warehouse (default ./tensordb-demo)")
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--epochs", type=positive_int, default=12)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("find", help="list documents matching a JSON query")
    common(p)
    p.add_argument("query", nargs="?", help='JSON query, e.g. \'{"split": "train"}\'')
    p.add_argument("--collection", default="data", choices=["data", "models", "params", "jobs", "logs"],
                   help="the collection to search (default: data)")
    p.add_argument("--limit", type=int, default=20, help="rows to show, 0 for all (default: 20)")
    p.add_argument("--newest", action="store_true", help="newest first")
    p.add_argument("--all-studies", action="store_true", help="search every study (read-only)")
    p.set_defaults(func=cmd_find)

    p = sub.add_parser("logs", help="show train/valid/test logs")
    common(p)
    p.add_argument("kind", nargs="?", choices=["train", "valid", "test"])
    p.add_argument("--query", help='JSON query on the log documents, e.g. \'{"run": "..."}\'')
    p.add_argument("--limit", type=int, default=50, help="rows to show, 0 for all (default: 50)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("jobs", help="show the job queue")
    common(p)
    p.add_argument("query", nargs="?", help='JSON query, e.g. \'{"status": "running"}\'')
    p.add_argument("--limit", type=int, default=50, help="rows to show, 0 for all (default: 50)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("check", help="find dangling references, orphan and corrupted blobs (whole warehouse)")
    common(p)
    p.add_argument("--no-verify", action="store_true", help="skip re-hashing every referenced blob")
    p.add_argument("--grace", type=non_negative_number, default=3600.0,
                   help="seconds a write intent protects its blob")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("gc", help="delete orphan blobs (never one a document or a running writer references)")
    common(p)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--grace", type=non_negative_number, default=3600.0,
                   help="seconds a write intent protects its blob")
    p.add_argument("--force", action="store_true",
                   help="collect even when other indexes share the blob store (deletes their blobs too)")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("worker", help="run a trainer, evaluator or deployer until SIGTERM")
    common(p)
    p.add_argument("--role", required=True, choices=["trainer", "evaluator", "deployer"])
    p.add_argument("--name", type=plain_name, help="worker name shown in jobs and status (default role@host:pid)")
    p.add_argument("--poll", type=seconds, default=1.0, help="seconds between polls when idle")
    p.add_argument("--heartbeat", type=seconds, default=5.0, help="seconds between worker heartbeats")
    p.add_argument("--allow-import", action="store_true",
                   help="let architectures name builders as 'package.module:function' (imports that module)")
    p.add_argument("--trusted", action="store_true",
                   help="execute architectures stored as Python code (only for code you wrote or reviewed)")
    p.add_argument("--jobs", help="trainer: extra JSON query on the jobs it takes")
    p.add_argument("--lease", type=seconds, default=120.0, help="trainer: job lease in seconds")
    p.add_argument("--until-idle", action="store_true",
                   help="trainer: exit when no job is queued; evaluator: exit when nothing is left to score")
    p.add_argument("--test-query", help='evaluator: held-out data (default \'{"split": "test"}\')')
    p.add_argument("--prefix", default="test", help="evaluator: metric name prefix (test -> test_acc)")
    p.add_argument("--score-lease", type=seconds, default=600.0,
                   help="evaluator: seconds another evaluator waits before taking over a claim whose holder died")
    p.add_argument("--metric", default="test_acc", help="deployer: metric that picks the best model")
    p.add_argument("--mode", choices=["max", "min"], default="max")
    p.add_argument("--min-improvement", type=non_negative_number, default=0.0, help="deployer: swap only when this much better")
    p.add_argument("--http-port", type=port, help="deployer: serve POST /predict on this port (0: any free port)")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--probe-query", help="deployer: data a new model must predict before it is served "
                   "(default: any sample of the study)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("compare", help="compare the runs of a study (table, and learning curves with --plot)")
    common(p)
    p.add_argument("--metric", default="acc", help="ranking metric (default acc: valid_acc, else test_acc, else any *_acc)")
    p.add_argument("--mode", choices=["max", "min"], default="max")
    p.add_argument("--plot", metavar="OUT.png", help="write every run's learning curves (needs tensordb[plot])")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("copy", help="copy a study (documents and blobs) between any two backends")
    p.add_argument("src", metavar="SRC_URI")
    p.add_argument("dst", metavar="DST_URI")
    p.add_argument("--study", default=os.environ.get("TENSORDB_STUDY"), help="the study (default: every study)")
    p.add_argument("--all-studies", action="store_true", help="copy every study even if TENSORDB_STUDY is set")
    p.add_argument("--src-blobs", help="source blob store URI (default: the source's own)")
    p.add_argument("--dst-blobs", help="destination blob store URI (default: the destination's own)")
    p.add_argument("--no-verify", action="store_true", help="do not read blobs back from the destination")
    p.add_argument("--page", type=positive_int, default=200, help="documents per batch")
    p.add_argument("-v", "--verbose", action="store_true")
    timeout_option(p)
    p.set_defaults(func=cmd_copy)

    from tensordb_core.cli.migrate import add_parser as add_migrate_parser

    add_migrate_parser(sub)  # tensordb migrate tensorlayer SRC_URI --to DST_URI

    from tensordb_core.cli.runs import add_runs_parser

    add_runs_parser(sub, common)

    from tensordb_core.cli.lifecycle import add_lifecycle_parser

    add_lifecycle_parser(sub, common)  # tensordb delete | relabel | datasets list|show|drop (cli/lifecycle.py)

    from tensordb_core.cli.export import add_export_parser

    add_export_parser(sub, common)  # tensordb export --format npz|parquet|webdataset|hf PATH

    from tensordb_core.cli.ui import add_parser as add_ui_parser

    add_ui_parser(sub, common)  # tensordb ui: the read-only web UI (cli/ui.py)

    p = sub.add_parser("status", help="a study at a glance: counts, queue, workers, best and deployed model")
    common(p)
    p.add_argument("--metric", default="test_acc")
    p.add_argument("--mode", choices=["max", "min"], default="max")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("import-images", help="import an ImageFolder directory (class subfolders of JPEG/PNG files, "
                       "stored as they are); a rerun imports only what is new")
    p.add_argument("dir", metavar="DIR", help="the root whose subfolders are the classes: DIR/<class>/<image>")
    p.add_argument("--uri", default=os.environ.get("TENSORDB_URI"), help="warehouse URI or directory")
    p.add_argument("--blobs", default=os.environ.get("TENSORDB_BLOBS"), help="blob store URI (optional)")
    p.add_argument("--study", default=os.environ.get("TENSORDB_STUDY"), help="the study (default $TENSORDB_STUDY)")
    p.add_argument("--tags", help='JSON object every image gets, e.g. \'{"split": "train"}\'')
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="a file that is not a JPEG/PNG: stop (default) or skip and count it")
    p.add_argument("--limit", type=positive_int, help="import at most this many new files, then stop")
    p.add_argument("--chunk-mb", type=positive_number, help="MiB of images per chunk blob (default: the import's)")
    p.add_argument("--commit-every", type=positive_int, default=1000, metavar="N",
                   help="make every N new files visible together; a kill loses at most the last N (default 1000)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    timeout_option(p)
    p.set_defaults(func=cmd_import_images)
    _describe(sub)
    return parser


#: Subcommands whose program module's docstring describes them (cli/<module>.py).
PROGRAMS = {"demo": "demo", "compare": "compare", "status": "status", "runs": "runs", "import-images": "import_images"}


def _describe(sub: Any) -> None:
    """Each subcommand's --help opens with a description: its program's docstring summary, else its one-line help."""
    helps = {action.dest: action.help for action in sub._choices_actions}
    for name, p in sub.choices.items():
        if p.description is None:
            text = summary(f"tensordb_core.cli.{PROGRAMS[name]}") if name in PROGRAMS else ""
            p.description = text or helps.get(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TensorDBError as exc:
        # Messages are written redacted; redact_text is the second lock, and unlike redact() it leaves
        # the text as written (redact() parses its input as one URI and garbled whole messages).
        print(f"tensordb: error: {one_line(redact_text(str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
