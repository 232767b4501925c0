"""``tensordb ui``: a read-only web UI on a warehouse — studies, runs and learning curves, models, jobs, data.

It binds 127.0.0.1 by default; anywhere else it needs a token (``--token`` or
``$TENSORDB_UI_TOKEN``) and refuses to start without one, because the pages
show everything the warehouse holds.  Every page is drawn from JSON endpoints
under ``/api/`` that scripts can use too (docs/ui.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from typing import Any

from tensordb_core.errors import InvalidArgument, MissingDependency

ENV_TOKEN = "TENSORDB_UI_TOKEN"
#: Host names a token-less UI answers to (its Host header): loopback only, against DNS rebinding.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: Seconds an idle keep-alive connection is held open (uvicorn's timeout_keep_alive).
KEEP_ALIVE_S = 5


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve the warehouse beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise InvalidArgument(f"--host {host} is reachable from other machines: set --token or ${ENV_TOKEN} "
                              "(or bind 127.0.0.1)")


def cmd_ui(args: argparse.Namespace) -> int:
    from tensordb_core.cli.common import open_warehouse

    token = args.token or os.environ.get(ENV_TOKEN) or None
    if not args.host or any(c in args.host for c in "\x00 /"):
        raise InvalidArgument(f"--host takes an address or a host name, not {args.host[:40]!r}")
    check_binding(args.host, token)
    try:
        import uvicorn

        from tensordb_core.ui.app import UISettings, create_app
    except ImportError as exc:
        raise MissingDependency(f"tensordb ui needs the ui extra: pip install 'tensordb[ui]' ({exc.name} is "
                                "missing)") from exc
    with open_warehouse(args) as db:
        from tensordb_core.ui.api import study_exists

        uri = db.index.uri.redacted()
        default = args.study if args.study and study_exists(db, args.study) else None
        app = create_app(UISettings(db=db, uri=uri, default_study=default, token=token,
                                    request_timeout_s=args.request_timeout,
                                    allowed_hosts=None if token else (*LOOPBACK_NAMES, args.host)))
        print(f"tensordb ui: {uri} on http://{args.host}:{args.port}/"
              + (" (token required: open /?token=<token> once per browser)" if token else ""), file=sys.stderr,
              flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
    return 0


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``ui`` subcommand (wired into :func:`tensordb_core.cli.main.build_parser`)."""
    from tensordb_core.cli.common import port, seconds
    from tensordb_core.cli.helptext import summary

    p = sub.add_parser("ui", help="serve a read-only web UI (studies, runs, curves, models, jobs, data)",
                       description=summary(__name__))
    common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; anything else "
                   "needs --token)")
    p.add_argument("--port", type=port, default=5000, help="port (default 5000)")
    p.add_argument("--token", help=f"require this bearer token (default ${ENV_TOKEN}); needed beyond loopback")
    p.add_argument("--request-timeout", type=seconds, default=30.0, metavar="SECONDS",
                   help="answer 503 when one request's warehouse work takes longer (default 30)")
    p.set_defaults(func=cmd_ui)
