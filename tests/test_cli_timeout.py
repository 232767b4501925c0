"""An unreachable MongoDB: the CLI says at once what it waits for, and --timeout bounds the wait."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tensordb_core.cli.common import target as _target
from tensordb_core.cli.main import main

UNREACHABLE = "mongodb://bob:s3cr3tpw@127.0.0.1:1/lab"  # port 1: connection refused until the timeout


def test_the_wait_is_announced_before_it_starts_and_bounded_by_timeout():
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tensordb_core.cli", "status", "--uri", UNREACHABLE,
                             "--timeout", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        first_at = time.monotonic()
        rest = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    ended = time.monotonic()
    assert first.strip() == "connecting to mongodb://bob:***@127.0.0.1:1/lab?serverSelectionTimeoutMS=3000 " \
                            "(timeout 3 s, --timeout to change)"
    assert ended - first_at >= 2.5  # announced before the wait, not after it
    assert ended - started < 25  # the driver's 30 s default did not apply
    assert proc.returncode == 2 and "unreachable" in rest and "Traceback" not in rest
    assert "s3cr3tpw" not in first + rest


def test_the_uri_timeout_is_shown_when_no_option_is_given(capsys):
    assert main(["jobs", "--uri", "mongodb://127.0.0.1:1/lab?serverSelectionTimeoutMS=300"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "connecting to mongodb://127.0.0.1:1/lab?serverSelectionTimeoutMS=300 (timeout 0.3 s, " \
                     "--timeout to change)"
    assert err[1].startswith("tensordb: error:")


def test_timeout_becomes_the_drivers_server_selection_timeout(capsys):
    target = _target("mongodb://h/lab?serverSelectionTimeoutMS=9000", 0.25)
    assert target.option("serverSelectionTimeoutMS") == "250"
    assert "timeout 0.25 s" in capsys.readouterr().err
    assert _target("./somewhere", 5) == "./somewhere"  # embedded stores do not wait: nothing said
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_must_be_positive_seconds(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--uri", "mongodb://h/lab", "--timeout", bad])
    assert exit_.value.code == 2 and "positive number of seconds" in capsys.readouterr().err
