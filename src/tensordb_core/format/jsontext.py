"""Parse stored JSON documents with the fastest parser installed.

Why: the embedded index keeps each document as JSON text, and a stream over
20,000 samples parses 20,000 of them before its first batch; CPython's
``json.loads`` takes ~10 µs for a 260-byte sample document here, ``orjson``
(extra ``tensordb[fast]``) ~4 µs.  Both give the same values for what the
stores accept (``jsonvalues.check_document``: int64 integers, valid Unicode,
finite floats); anything orjson refuses is parsed again by ``json``, which
decides.  Core does not require orjson.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the extras installed
    orjson = None


def _loads_fast(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. a lone surrogate written by an older version: json's verdict
        return json.loads(text)


#: ``loads(text) -> value``, equal to ``json.loads(text)`` for every document a store accepts.
loads = _loads_fast if orjson is not None else json.loads
