"""What every ``tensordb`` program shares: opening the named warehouse, parsing a JSON query, one cell format.

Why a module of its own: ``cli/main`` parses arguments and dispatches, and each
program (``runs``, ``compare``, ``status``, ...) lives in its own module; a
program that borrowed these helpers from ``main`` imported the module that
imports it (a lazy import circle).  Here they sit below both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tensordb_core.cli.tables import render
from tensordb_core.errors import InvalidArgument, InvalidQuery
from tensordb_core.store.uri import StoreURI, parse_uri
from tensordb_core.warehouse.arguments import check_name

#: Fields that hold a time.time() value: shown as local ISO times, not 1.796e+09.
TIME_FIELDS = frozenset({"_created", "at", "ended", "expires", "finished", "heartbeat", "lease_until", "started",
                         "updated", "until"})
#: Schemes whose stores wait for a server before the first answer (PyMongo's server selection).
SERVER_SCHEMES = ("mongodb", "mongodb+srv")
DRIVER_TIMEOUT_S = 30.0  # PyMongo's default serverSelectionTimeoutMS, 30,000


def iso_time(value: float) -> str:
    """A ``time.time()`` value as a local ISO time to the second (2026-12-02T11:42:44)."""
    return datetime.fromtimestamp(value).isoformat(timespec="seconds")


def cell(value: Any, column: str = "") -> str:
    """One value as the CLI shows it: times as ISO, floats to 4 digits, JSON cut at 60 characters, None as ``-``."""
    if column in TIME_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return iso_time(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))[:60]
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` (dicts) as a table of ``columns``, every cell in the CLI's one format."""
    return render(columns, [[cell(r.get(c), c) for c in columns] for r in rows])


def shown_line(shown: int, total: int) -> str:
    """The line under a table cut at ``--limit``: nothing when every match is shown."""
    return f"\nshowing {shown} of {total} (use --limit N, 0 for all)" if total > shown else ""


def flatten_metrics(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"metrics": {"acc": .9}}`` -> ``{"metrics.acc": .9}``: one column per metric."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict) and k in ("metrics",):
            out.update(flatten_metrics(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def parse_query(text: str | None, example: str = '{"split": "train"}') -> dict[str, Any]:
    """A command-line JSON query (empty: ``{}``); anything else is :class:`InvalidQuery` with an example."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidQuery(f"the query must be JSON, e.g. '{example}': {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidQuery(f"the query must be a JSON object, e.g. '{example}'")
    return value


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    return positive_number(text, "a positive number of seconds")


def positive_number(text: str, what: str = "a positive number") -> float:
    """An argparse type: a positive, finite number (NaN, inf, 0 and negatives are refused by argparse)."""
    return _finite(text, what, zero=False)


def non_negative_number(text: str) -> float:
    """An argparse type: a finite number of at least 0 (a grace period, a margin)."""
    return _finite(text, "a number of at least 0", zero=True)


def _finite(text: str, what: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 <= value if zero else 0 < value) or value == float("inf"):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"expected {what}, not {text[:40]!r}")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, not {text[:40]!r}")
    return value


def plain_name(text: str) -> str:
    """An argparse type: a name as the warehouse takes it (non-empty, at most 256 characters, no control
    characters)."""
    try:
        return check_name(text, "the name")
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    """An argparse type: an int of at least 1 that fits in 64 bits (a count: --page, --limit of new files)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text[:40]!r}")
    return value


def target(uri: str | None, timeout: float | None) -> str | StoreURI | None:
    """``uri`` with ``--timeout`` applied; for a server, say at once what the command waits for and how long.

    The timeout is MongoDB's ``serverSelectionTimeoutMS`` URI option, which reaches PyMongo untouched
    (tensordb_mongo/config.py) and the GridFS blobs that share the URI.
    """
    parsed = parse_uri(uri if uri is not None else os.environ.get("TENSORDB_URI", "./warehouse"))
    if parsed.scheme not in SERVER_SCHEMES:
        return uri
    if timeout is not None:
        parsed = parsed.with_options(serverSelectionTimeoutMS=str(max(1, round(timeout * 1000))))
    shown = timeout if timeout is not None else _uri_timeout_s(parsed)
    print(f"connecting to {parsed.redacted()} (timeout {shown:g} s, --timeout to change)", file=sys.stderr,
          flush=True)
    return parsed


def _uri_timeout_s(uri: StoreURI) -> float:
    try:
        return float(uri.option("serverSelectionTimeoutMS") or DRIVER_TIMEOUT_S * 1000) / 1000
    except ValueError:  # the driver's check names a malformed value
        return DRIVER_TIMEOUT_S


def open_warehouse(args: argparse.Namespace, *, create: bool = False):
    """The warehouse the command names; read commands (the default) refuse to create one where none is."""
    from tensordb_core.warehouse.handle import connect

    return connect(target(args.uri, args.timeout), args.study, blobs=args.blobs, create=create)
