"""``tensordb export``: write a study's samples to npz, Parquet, WebDataset shards or a Hugging Face dataset.

``tensordb export --study S --query '{"split": "train"}' --format parquet train.parquet``
runs :func:`tensordb_core.warehouse.export.export_data` with a progress bar
(:mod:`tensordb_core.cli.progress`) and prints one summary line.  A refusal
(unknown format, a path that exists without ``--overwrite``, a query that
matches nothing, ...) is one ``tensordb: error:`` line and exit status 2;
nothing is written then.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tensordb_core.cli.common import open_warehouse, parse_query
from tensordb_core.errors import InvalidArgument

#: Format options the command passes on only when given (their defaults live in tensordb_core.warehouse.export.FORMATS).
FORMAT_OPTIONS = ("row_group_size", "compression", "shard_samples", "shard_bytes")


def _fields(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InvalidArgument("--fields takes comma-separated field names, e.g. --fields image,label")
    return names


def cmd_export(args: argparse.Namespace) -> int:
    """Export the matching samples; the bar counts samples of the export's total."""
    from tensordb_core.cli.progress import progress
    from tensordb_core.warehouse.export import check_format, export_data
    from tensordb_core.warehouse.export.source import find

    query = parse_query(args.query)
    fields = _fields(args.fields)
    check_format(args.format)  # before connecting: a typo costs no server round trip
    options = {name: getattr(args, name) for name in FORMAT_OPTIONS if getattr(args, name) is not None}
    with open_warehouse(args) as db:
        total = len(find(db, query, args.dataset))
        with progress(f"exporting to {args.format}", total) as advance:
            summary = export_data(db, args.path, query, dataset=args.dataset, format=args.format, fields=fields,
                                  progress=advance, overwrite=args.overwrite, page_size=args.page_size, **options)
    print(f"exported {summary['samples']} samples ({', '.join(summary['fields'])}) to {summary['path']} "
          f"as {summary['format']}")
    return 0


def add_export_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``export`` subcommand (wired into :func:`tensordb_core.cli.main.build_parser`)."""
    from tensordb_core.warehouse.export import DEFAULT_PAGE_SIZE, FORMATS

    p = sub.add_parser("export", help="write matching samples to npz, Parquet, WebDataset tar shards or a "
                       "Hugging Face dataset on disk (media kept encoded)")
    common(p)
    p.add_argument("path", metavar="PATH", help="the file (npz, parquet) or directory (webdataset, hf) to write")
    p.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--query", help='JSON query on the samples, e.g. \'{"split": "train"}\' (default: all)')
    p.add_argument("--dataset", help="export a named dataset version (its pinned samples and labels)")
    p.add_argument("--fields", help="comma-separated fields to export (default: every field)")
    p.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    p.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                   help=f"samples read at a time (bounds memory; default {DEFAULT_PAGE_SIZE})")
    p.add_argument("--row-group-size", type=int, help="parquet: rows per row group (default 4096)")
    p.add_argument("--compression", help="parquet: codec, e.g. zstd (default), snappy, none")
    p.add_argument("--shard-samples", type=int, help="webdataset: samples per shard (default 10000)")
    p.add_argument("--shard-bytes", type=int, help="webdataset: bytes per shard (default 1 GiB)")
    p.set_defaults(func=cmd_export)
