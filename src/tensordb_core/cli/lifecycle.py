"""``tensordb delete``, ``tensordb relabel`` and ``tensordb datasets`` (save, list, show, drop): the data lifecycle from the shell.

``delete`` refuses an empty query unless ``--all`` is given (a typo should
not empty a study); every delete and relabel is audited, and ``tensordb
status`` lists the recent ones.  Errors exit with status 2 and a message
naming what to fix, like every command.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from tensordb_core.cli.common import open_warehouse, parse_query, table
from tensordb_core.errors import InvalidQuery


def cmd_delete(args: argparse.Namespace) -> int:
    query = parse_query(args.query)
    if not query and not args.all:
        raise InvalidQuery("refusing to delete every sample of the study: give a query, or --all to mean it")
    with open_warehouse(args) as db:
        count = db.delete_data(query)
    print(f"deleted {count} sample(s) from study {db.study}")
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    query = parse_query(args.query)
    update = parse_query(args.update, '{"$set": {"label": 3}}')
    with open_warehouse(args) as db:
        count = db.update_data(query, update)
    print(f"updated {count} sample(s) in study {db.study}")
    return 0


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "-"


def cmd_datasets(args: argparse.Namespace) -> int:
    with open_warehouse(args) as db:
        if args.action == "list":
            rows = [{"name": d["name"], "count": d["count"], "created": _when(d["created"]), "who": d["who"],
                     "state": d["state"], "description": d["description"] or ""} for d in db.list_datasets()]
            print(table(rows, ["name", "count", "created", "who", "state", "description"]) if rows
                  else f"no dataset versions in study {db.study}")
        elif args.action == "save":
            info = db.save_dataset(_name(args), parse_query(args.query), description=args.description)
            print(f"saved dataset {info['name']}: {info['count']} sample(s) pinned with their labels")
        elif args.action == "show":
            info = db.dataset_info(_name(args))
            print(json.dumps({**info, "created_at": _when(info["created"])}, indent=1, sort_keys=True))
        else:
            count = db.drop_dataset(_name(args))
            print(f"dropped dataset {args.name} ({count} pinned sample(s)); run `tensordb gc` to reclaim space")
    return 0


def _name(args: argparse.Namespace) -> str:
    if not args.name:
        raise InvalidQuery(f"`tensordb datasets {args.action}` needs a dataset NAME (see `tensordb datasets list`)")
    return args.name


def add_lifecycle_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``delete``, ``relabel`` and ``datasets`` subcommands (wired into :func:`tensordb_core.cli.main.build_parser`)."""
    p = sub.add_parser("delete", help="delete the samples matching a JSON query (audited; versions keep theirs)")
    common(p)
    p.add_argument("query", nargs="?", help='JSON query, e.g. \'{"split": "junk"}\'')
    p.add_argument("--all", action="store_true", help="with no query: delete every sample of the study")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("relabel", help="$set/$unset tags and labels of the samples matching a JSON query (audited)")
    common(p)
    p.add_argument("query", help='JSON query, e.g. \'{"label": 3}\' ({} for every sample)')
    p.add_argument("update", help='JSON update, e.g. \'{"$set": {"label": 5}}\'')
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser("datasets", help="save, list, show or drop named dataset versions")
    common(p)
    p.add_argument("action", choices=["save", "list", "show", "drop"])
    p.add_argument("name", nargs="?", help="the dataset version (save, show, drop)")
    p.add_argument("--query", help='save: JSON query of the samples to pin, e.g. \'{"split": "train"}\' (default: all)')
    p.add_argument("--description", help="save: what this version is for")
    p.set_defaults(func=cmd_datasets)


__all__ = ["add_lifecycle_parser", "cmd_datasets", "cmd_delete", "cmd_relabel"]
