"""Model architectures: code or config strings with tags, never executed by default.

Running stored code is the caller's explicit, trusted choice
(:func:`exec_architecture` with ``trusted=True``); workers should rather name a
builder (``module:function``) in the architecture document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import InvalidDocument, UnsafeOperation
from tensordb_core.store.scope import StudyScope, check_tags

COLLECTION = "models"
RESERVED = frozenset({"code"})
#: Larger architectures go to a blob (keeps documents far below MongoDB's 16 MB limit).
INLINE_LIMIT = 256 * 1024


def save_model_architecture(scope: StudyScope, code: str, tags: Mapping[str, Any] | None = None) -> str:
    scope.require_writable()
    if not isinstance(code, str) or "\x00" in code:
        shown = "a string with NUL" if isinstance(code, str) else type(code).__name__
        raise InvalidDocument(f"an architecture is a string (code or config) without NUL, not {shown}")
    fields = check_tags(tags, RESERVED)
    raw = code.encode()
    with scope.writing_blobs() as put:
        doc = scope.new_doc(_code_blob=put(raw), **fields) if len(raw) > INLINE_LIMIT else scope.new_doc(code=code, **fields)
        return scope.index.insert_many(COLLECTION, [doc])[0]


def code_of(scope: StudyScope, doc: Mapping[str, Any]) -> str:
    if "code" in doc:
        return doc["code"]
    return scope.get_blob(doc["_code_blob"]).decode()


def find_model_architecture(scope: StudyScope, query: Mapping[str, Any] | None = None, *, sort: Any = None):
    """``(code, doc)`` of the newest matching architecture, or ``(None, None)``."""
    for doc in scope.index.find(COLLECTION, scope.query(query), sort=sort or [("_seq", -1)], limit=1):
        return code_of(scope, doc), doc
    return None, None


def exec_architecture(code: str, *, trusted: bool = False, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute stored architecture code — only with ``trusted=True`` (it runs arbitrary Python)."""
    if trusted is not True:
        raise UnsafeOperation(
            "refusing to execute a stored architecture: pass trusted=True only for code you wrote or reviewed, "
            "or reference a builder function instead"
        )
    ns: dict[str, Any] = {} if namespace is None else namespace
    exec(compile(code, "<tensordb architecture>", "exec"), ns)  # noqa: S102 - explicit trusted opt-in
    return ns
