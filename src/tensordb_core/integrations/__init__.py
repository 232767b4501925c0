"""Framework integrations: training libraries that write straight into the warehouse.

Each module imports its framework, so import the one you use:
``tensordb_core.integrations.keras`` (``pip install tensordb[keras]``) and
``tensordb_core.integrations.lightning`` (``pip install tensordb[lightning]``).
Both log through a handle's active run (starting one when none is active), so
their metrics, parameter sets and checkpoints land where ``db.search_runs``,
``db.find_logs`` and ``db.best_parameters`` look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def numbers(values: Mapping[str, Any] | None) -> dict[str, float]:
    """The numeric entries of a framework's logs as floats (tensors and numpy scalars included; NaN kept)."""
    out: dict[str, float] = {}
    for name, value in (values or {}).items():
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu()
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(name)] = float(value)
    return out


def finite(values: Mapping[str, float]) -> dict[str, float]:
    """Only the finite entries (what a parameter set's ``metrics`` may hold for "best" queries)."""
    return {k: v for k, v in values.items() if math.isfinite(v)}


def jsonable(value: Any, depth: int = 0) -> Any:
    """Hyperparameters as JSON-like values: unknown objects become their ``repr``; keys lose ``.``/``$``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return jsonable(value.item(), depth)
    if depth < 8 and isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if depth < 8 and isinstance(value, Mapping):
        return {(str(k).replace(".", "_").lstrip("$") or "_"): jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)[:1000]
