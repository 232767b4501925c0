"""Tables for the CLI, the demo and ``tensordb compare``: one layout, one place.

A terminal gets a rich table (column widths fitted to the window, long cells
folded); anything else — a pipe, a file, a test — gets plain aligned text: a
header, a rule of dashes and one line per row, columns two spaces apart, which
scripts can split on whitespace and which stays stable from version to
version.  ``rich`` is imported only when a table is drawn for a terminal.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def number(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec`` when it is a number (not a bool), else ``-``."""
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def align(head: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a header and a rule of dashes (the plain layout)."""
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def render(head: Sequence[str], cells: Sequence[Sequence[str]], *, stream: TextIO | None = None) -> str:
    """The table as ``stream`` (default stdout) should show it: rich on a terminal, :func:`align` elsewhere."""
    out = sys.stdout if stream is None else stream
    if not is_terminal(out):
        return align(head, cells)
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(*head, box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    for row in cells:
        grid.add_row(*(Text(c) for c in row))  # Text: a stored "[bold]" is data, not markup
    console = Console(file=io.StringIO(), force_terminal=True, width=shutil.get_terminal_size().columns)
    console.print(grid)
    return console.file.getvalue().rstrip("\n")


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or descriptor-less stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
