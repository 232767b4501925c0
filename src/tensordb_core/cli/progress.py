"""One progress bar for every long CLI command (export, import, copy, ...): ``with progress(...) as advance``.

The library layers take a plain ``progress: Callable[[int], None] | None`` and
never import the CLI; a command wraps its work in :func:`progress` and passes
the ``advance`` callable it yields down.  A terminal gets a rich bar on stderr;
a pipe, a log file or a test gets no bar, only one plain summary line when the
work ends, so captured output stays readable and diffable.  ``rich`` is
imported only when a bar is drawn: ``tensordb --help`` stays light.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(description: str, total: int | None, *, unit: str = "samples",
             stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)``, which counts ``n`` more ``unit`` done of ``total`` (None: total unknown).

    ``stream`` (default ``sys.stderr``) is where the bar or the final line goes.
    On a terminal the bar is rich's (count, rate, time left); elsewhere nothing
    is drawn while the work runs and one line (``exporting: 20000 samples in
    3.1 s``) is printed when it ends without an exception — a failed command's
    own error line is then the last thing the user reads.
    """
    out = sys.stderr if stream is None else stream
    done = 0
    began = time.perf_counter()
    if _is_terminal(out):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   TimeRemainingColumn()]
        with Progress(*columns, console=Console(file=out), transient=False) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                nonlocal done
                done += n
                bar.update(task, advance=n)

            yield advance
        return

    def count(n: int = 1) -> None:
        nonlocal done
        done += n

    yield count
    print(f"{description}: {done} {unit} in {time.perf_counter() - began:.1f} s", file=out, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a descriptor
        return False
