"""Turn an architecture document into a model without executing stored code.

An architecture's ``code`` is a JSON config naming a *builder*: a function
installed on the worker (registered here, or advertised by a package through
the ``tensordb.builders`` entry-point group).  The stored string is parsed as
JSON, never executed; running stored Python stays behind ``trusted=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from .errors import InvalidDocument, NotFound

Builder = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
ENTRY_POINT_GROUP = "tensordb.builders"
_builders: dict[str, Builder] = {}


def register_builder(name: str, builder: Builder) -> None:
    _builders[name] = builder


def _builtin(name: str) -> Builder | None:
    if name == "numpy-mlp":
        from .numpy_mlp import build

        return build
    return None


def resolve_builder(name: str) -> Builder:
    if name in _builders:
        return _builders[name]
    found = _builtin(name)
    if found is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                found = ep.load()
                break
    if found is None:
        known = sorted({*_builders, "numpy-mlp", *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise NotFound(f"no model builder named {name!r}; known builders: {', '.join(known)}")
    return found


def parse_config(code: str) -> dict[str, Any]:
    try:
        config = json.loads(code)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(
            "this architecture is not a JSON builder config; it can only be run with trusted=True"
        ) from exc
    if not isinstance(config, dict) or not isinstance(config.get("builder"), str):
        raise InvalidDocument('an architecture config is a JSON object with a "builder" name')
    return config


def build_model(code: str, hyper: Mapping[str, Any] | None = None) -> Any:
    """Build the model an architecture config describes, with a job's hyper-parameters."""
    config = parse_config(code)
    return resolve_builder(config["builder"])(config, hyper or {})
