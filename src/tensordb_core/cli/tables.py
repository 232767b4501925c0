"""Plain-text tables for the CLI, the demo and ``tensordb compare``: one layout, one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def number(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec`` when it is a number (not a bool), else ``-``."""
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def align(head: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a header and a rule of dashes."""
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
