"""``tensordb migrate tensorlayer SRC_URI --to DST_URI``: the program behind the subcommand.

The work is :func:`tensordb_core.tensorlayer.migrate.migrate_tensorlayer`;
this module draws its progress (a rich bar when ``rich`` is installed — the
``tensorlayer`` extra — else a line every 500 documents) and prints the
report.  Exit status 0 when every document migrated or was already there, 1
when some were refused (each is listed with its reason).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tensordb_core.store.uri import redact


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A ``(collection, done, total)`` callback drawing progress, or None when disabled."""
    if not enabled:
        yield None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    except ModuleNotFoundError:
        def lines(name: str, done: int, total: int) -> None:
            if done % 500 == 0 or done == total:
                print(f"{name}: {done}/{total}", flush=True)

        yield lines
        return
    bar = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = None

    def advance(name: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:  # started on the first document: an error before it draws no empty bar
            bar.start()
            task = bar.add_task(name, total=total)
        bar.update(task, description=name, completed=done, total=total)

    try:
        yield advance
    finally:
        if task is not None:
            bar.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run one migration; the source kind (only ``tensorlayer`` today) is the first argument."""
    from tensordb_core.tensorlayer.migrate import migrate_tensorlayer  # on use: `tensordb --help` stays light

    print(f"migrating TensorLayer database {redact(args.src)} -> {redact(args.to)}"
          + (f" (study {args.study})" if args.study else ""), flush=True)
    with progress_bar(not args.quiet) as progress:
        report = migrate_tensorlayer(args.src, args.to, study=args.study, dst_blobs=args.to_blobs, progress=progress)
    print(report.summary())
    return 1 if report.refused else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``migrate`` subcommand's arguments."""
    p = sub.add_parser("migrate", help="read a database another tool wrote (TensorLayer's MongoDB) into a warehouse")
    p.add_argument("kind", choices=["tensorlayer"], help="what wrote the source database")
    p.add_argument("src", metavar="SRC_URI", help="the source, e.g. mongodb://127.0.0.1:27017/db_name")
    p.add_argument("--to", required=True, metavar="DST_URI", help="the warehouse to write (any backend)")
    p.add_argument("--to-blobs", metavar="BLOBS_URI", help="the destination's blob store (default: its own)")
    p.add_argument("--study", help="migrate only this studyID / project_name (default: every study)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_migrate)
