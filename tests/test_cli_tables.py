"""CLI tables: rich on a terminal, the plain aligned layout (stable, parseable) everywhere else."""

from __future__ import annotations

import io

from tensordb_core.cli.common import table
from tensordb_core.cli.tables import render


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


HEAD = ["id", "status", "note"]
CELLS = [["j1", "queued", "[bold]not markup[/bold]"], ["j22", "done", "-"]]


def test_plain_layout_off_a_terminal_is_exactly_aligned_text() -> None:
    lines = [line.rstrip() for line in render(HEAD, CELLS, stream=io.StringIO()).splitlines()]
    assert lines == ["id   status  note",
                     "---  ------  -----------------------",
                     "j1   queued  [bold]not markup[/bold]",
                     "j22  done    -"]


def test_a_terminal_gets_a_rich_table_with_cells_as_data() -> None:
    drawn = render(HEAD, CELLS, stream=Terminal())
    assert "\x1b[" in drawn, "a terminal table is styled"
    assert "------" not in drawn, "not the plain layout"
    assert "[bold]not markup[/bold]" in drawn, "a stored value is shown as is, never read as rich markup"
    assert "j22" in drawn and "queued" in drawn


def test_rows_go_through_one_cell_format() -> None:
    text = table([{"a": 0.123456, "b": None, "c": {"k": [1, 2]}}], ["a", "b", "c"])
    assert text.splitlines()[2].split() == ["0.1235", "-", '{"k":[1,2]}']
