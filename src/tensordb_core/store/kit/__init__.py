"""The backend kit: what a TensorDB backend is built from, so every backend reads alike.

* :mod:`~tensordb_core.store.kit.options`: one option parser (declared
  options, precedence keyword > URI query > environment > default, errors
  that name the option and never echo a value) for every backend;
* :mod:`~tensordb_core.store.kit.errors`: table-driven error translation from
  an SDK's codes, statuses and exception classes to TensorDB's typed errors;
* :mod:`~tensordb_core.store.kit.cloud`: the cloud blob-store template
  (open → check the bucket → close on failure; put/get/list/delete flows)
  that S3, GCS and Azure fill in with a few SDK calls;
* :mod:`~tensordb_core.store.kit.mapping`: read-only views of chunk files
  that are never changed in place (the embedded file store's, the stream's
  disk cache's);
* :mod:`~tensordb_core.store.kit.http`: the pooled ``requests`` session the
  GCS and Azure backends read through (the environment's HTTP settings read
  once, not per request).

Nothing here imports a cloud SDK or a database driver (``http`` imports
``requests``, which only those backends import it with).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a submodule of ``package``) on first access.

    Why: a backend package is imported on plugin discovery, and its SDK must
    load only when a store is really opened.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
