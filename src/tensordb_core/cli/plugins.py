"""``tensordb plugins``: every scheme the installed plugins serve, and whether it can be used here.

A plugin is discovered whether or not its client library is installed (discovery never imports an
SDK), so a listed scheme may still fail to open.  This view says which: for each pip extra the
project ships, the module its client library provides is looked up with
:func:`importlib.util.find_spec` — found, not imported, so listing stays fast and side-effect free.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tensordb_core.store.hookspecs import SchemeInfo

#: The module each shipped extra's client library provides (pyproject.toml's optional dependencies).
EXTRA_MODULES = {"mongo": "pymongo", "s3": "boto3", "gcs": "google.cloud.storage", "azure": "azure.storage.blob"}


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing (google for google.cloud.storage)
        return False


def client_status(info: SchemeInfo) -> str:
    """``yes``, ``no: pip install 'tensordb[<extra>]'``, or ``not checked`` for a third party's extra."""
    if info.extra is None:
        return "yes"
    module = EXTRA_MODULES.get(info.extra)
    if module is None:
        return f"not checked ({info.install_hint} if it fails)"
    return "yes" if _findable(module) else f"no: {info.install_hint}"


def scheme_rows(schemes: list[SchemeInfo]) -> list[dict[str, Any]]:
    """One row per scheme: what it offers, whether its client library is installed, its plugin."""
    return [{"scheme": s.scheme, "index": "yes" if s.index else "", "blobs": "yes" if s.blobs else "",
             "usable": client_status(s), "plugin": s.source, "description": s.description} for s in schemes]
