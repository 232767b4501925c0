"""Turn an architecture document into a model without executing stored code.

An architecture's ``code`` is a JSON config naming a *builder*: a function
installed on the worker, found (in this order) among

1. builders registered in this process (:func:`register_builder`),
2. the built-in ``numpy-mlp``,
3. functions advertised by installed packages in the ``tensordb.builders``
   entry-point group,
4. ``"package.module:function"`` — imported by name, but only when the caller
   passes ``allow_import=True`` (importing runs that module's top-level code,
   so a worker opts in explicitly: ``tensordb worker --allow-import``).

The stored string is parsed as JSON, never executed.  Running stored Python
is a separate, explicit opt-in (``trusted=True``, ``tensordb worker
--trusted``): the code is executed by :func:`models.exec_architecture` and must
define ``build(hyper)`` returning the model.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from tensordb_core.errors import InvalidDocument, NotFound, UnsafeOperation

Builder = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
ENTRY_POINT_GROUP = "tensordb.builders"
_builders: dict[str, Builder] = {}
_IMPORT_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def register_builder(name: str, builder: Builder) -> None:
    """Make ``builder(config, hyper)`` available to architecture configs as ``{"builder": name}``."""
    _builders[name] = builder


def _builtin(name: str) -> Builder | None:
    if name == "numpy-mlp":
        from tensordb_core.loop.numpy_mlp import build

        return build
    return None


def _import_builder(name: str) -> Builder:
    """``package.module:attr.path`` → the callable it names (the caller has allowed imports)."""
    if not _IMPORT_RE.match(name):
        raise InvalidDocument(f"builder {name!r} is not of the form 'package.module:function'")
    module_name, _, attr_path = name.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise NotFound(f"cannot import model builder {name!r}: {exc}") from exc
    if not callable(found):
        raise InvalidDocument(f"model builder {name!r} is not callable")
    return found


def resolve_builder(name: str, *, allow_import: bool = False) -> Builder:
    """The builder function ``name`` refers to; see the module docs for the lookup order."""
    if name in _builders:
        return _builders[name]
    found = _builtin(name)
    if found is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                found = ep.load()
                break
    if found is None and ":" in name:
        if allow_import is not True:
            raise UnsafeOperation(
                f"builder {name!r} names a module to import; pass allow_import=True "
                "(tensordb worker --allow-import) if you trust that module, or register the builder by name"
            )
        found = _import_builder(name)
    if found is None:
        known = sorted({*_builders, "numpy-mlp", *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise NotFound(f"no model builder named {name!r}; known builders: {', '.join(known)}")
    return found


def parse_config(code: str) -> dict[str, Any]:
    """The JSON builder config an architecture string holds (never executed)."""
    try:
        config = json.loads(code)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(
            "this architecture is not a JSON builder config; it can only be run with trusted=True"
        ) from exc
    if not isinstance(config, dict) or not isinstance(config.get("builder"), str):
        raise InvalidDocument('an architecture config is a JSON object with a "builder" name')
    return config


def _is_json_config(code: str) -> bool:
    try:
        value = json.loads(code)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict)


def build_model(code: str, hyper: Mapping[str, Any] | None = None, *, allow_import: bool = False,
                trusted: bool = False) -> Any:
    """Build the model an architecture describes, with a job's hyper-parameters.

    A JSON builder config is resolved through :func:`resolve_builder`.  Anything
    else is stored Python, executed only when ``trusted=True``; it must define
    ``build(hyper)``.
    """
    if not _is_json_config(code) and trusted is True:
        from tensordb_core.warehouse.models import exec_architecture

        namespace = exec_architecture(code, trusted=True)
        build = namespace.get("build")
        if not callable(build):
            raise InvalidDocument("a trusted architecture's code must define build(hyper) returning the model")
        return build(dict(hyper or {}))
    config = parse_config(code)
    return resolve_builder(config["builder"], allow_import=allow_import)(config, hyper or {})
