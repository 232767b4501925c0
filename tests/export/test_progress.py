"""The CLI's progress helper: a bar only on a terminal, one plain summary line anywhere else."""

from __future__ import annotations

import io

import pytest

from tensordb_core.cli.progress import progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, so rich draws its bar into it."""

    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_one_summary_line_counting_every_advance() -> None:
    out = io.StringIO()
    with progress("exporting", 10, stream=out) as advance:
        advance()
        advance(4)
        assert out.getvalue() == ""  # nothing drawn while the work runs
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("exporting: 5 samples in ")


def test_a_failed_command_prints_no_summary() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), progress("exporting", None, unit="rows", stream=out) as advance:
        advance(3)
        raise RuntimeError("boom")
    assert out.getvalue() == ""


def test_a_terminal_gets_a_rich_bar_with_count_and_unit() -> None:
    out = Terminal()
    with progress("exporting", 8, unit="files", stream=out) as advance:
        for _ in range(8):
            advance()
    text = out.getvalue()
    assert "exporting" in text and "8/8" in text and "files" in text
