"""The only way TensorDB reads a pickle: a restricted unpickler for TensorLayer's stored arrays.

TensorLayer pickled parameter lists and datasets into GridFS.  ``pickle.loads``
on stored bytes runs whatever the bytes name, so a database anyone else could
write to is code execution.  :func:`load_arrays` admits only what such pickles
legitimately contain — numpy arrays, dtypes and numpy scalars, and plain
containers and scalars — and refuses every other global with
:class:`RefusedPickle` naming the document it came from.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from typing import Any

from tensordb_core.errors import UnsafeOperation

#: (module, name) pairs a TensorLayer pickle may reference: numpy 1.x and 2.x spellings, Python 2's via fix_imports.
ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("builtins", "complex"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
})


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol 2 spells ``bytes`` as ``_codecs.encode(str, 'latin1')``; only that spelling is admitted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not how a pickle spells bytes")
    return text.encode("latin1")


class RefusedPickle(UnsafeOperation):
    """A stored pickle names something other than arrays, dtypes and plain values; it was not loaded."""


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, where: str) -> None:
        # latin1: Python 2 pickles (TensorLayer 1.x under py2) hold numpy buffers as byte strings.
        super().__init__(io.BytesIO(data), encoding="latin1")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (protocol < 3 writes them too: __builtin__.complex) checked as Python 3's.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedPickle(f"{self._where}: the pickle references {module}.{name}, which is not a numpy array, "
                            f"dtype or plain value; it was not loaded (TensorDB never unpickles anything else)")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle(f"{self._where}: the pickle uses persistent ids; it was not loaded")


def load_arrays(data: bytes, where: str) -> Any:
    """Unpickle ``data`` (numpy arrays, dtypes, scalars, lists/tuples/dicts of them) or raise a typed error.

    ``where`` names the document (collection and id) in every error.
    """
    try:
        return _Restricted(bytes(data), where).load()
    except RefusedPickle:
        raise
    except Exception as exc:  # truncated or corrupt bytes: pickle raises many kinds
        raise RefusedPickle(f"{where}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def dump_arrays(value: Any) -> bytes:
    """Arrays as TensorLayer 1.x pickled them (protocol 2), for code that reads ``db.paramsfs.get(f_id).read()``."""
    return pickle.dumps(value, protocol=2)
