"""``tensordb --version`` and ``--help``: the installed version, and help text without Sphinx markup."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from tensordb_core.cli.helptext import plain
from tensordb_core.cli.main import build_parser, main

MARKUP = re.compile(r"``|:[a-z]+:`|`[^`\s]+`")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tensordb {version('tensordb')}"


def test_version_from_the_console_script():
    out = subprocess.run([sys.executable, "-m", "tensordb_core.cli", "--version"], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == f"tensordb {version('tensordb')}"


def test_help_of_every_command_is_plain_text():
    parser = build_parser()
    texts = {"tensordb": parser.format_help()}
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        texts[name] = p.format_help()
        assert p.description, f"tensordb {name} --help has no description"
    for name, text in texts.items():
        assert not MARKUP.search(text), f"tensordb {name} --help shows markup: {MARKUP.search(text).group(0)!r}"
    assert "--uri (default $TENSORDB_URI" in texts["tensordb"]
    assert "tensordb status: one study at a glance" in " ".join(texts["status"].split())


@pytest.mark.parametrize(("rst", "text"), [
    ("the ``--uri`` option", "the --uri option"),
    ("see :func:`~tensordb_core.loop.worker.run_worker`", "see run_worker"),
    ("a :class:`tensordb_core.errors.NotFound`", "a tensordb_core.errors.NotFound"),
    (":py:meth:`the loop <tensordb_core.loop.worker.run_worker>` runs", "the loop runs"),
    ("A *run* is one job; a **bold** word", "A run is one job; a bold word"),
    ("Each image becomes one record::", "Each image becomes one record:"),
    ("a `name` here, 2*3*4 stays", "a name here, 2*3*4 stays"),
])
def test_plain_strips_rst(rst, text):
    assert plain(rst) == text
