"""A SIGKILLed process's run reads ``killed`` once its heartbeat lapses; a live one keeps beating."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tensordb_core as tdb
from tensordb_core.warehouse import runs

CHILD = textwrap.dedent("""
    import sys, time
    import tensordb_core as tdb
    db = tdb.connect(sys.argv[1], study="s1")
    run = db.start_run("doomed", heartbeat_s=0.2, lapse_s=1.0)
    run.log_metrics({"loss": 0.5}, step=0)
    run.beat()
    print(run.id, flush=True)
    time.sleep(600)
""")


def test_a_killed_process_reads_killed_after_the_lapse(tmp_path: Path) -> None:
    uri = str(tmp_path / "w")
    tdb.connect(uri, study="s1").close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, uri], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        run_id = child.stdout.readline().strip()
        with tdb.connect(uri, study="s1") as db:
            time.sleep(0.6)
            assert db.get_run(run_id)["status"] == "running", "the heartbeat keeps a live run running"
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            deadline = time.monotonic() + 10
            while db.get_run(run_id)["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            doc = db.get_run(run_id)
            assert doc["status"] == "killed"
            assert doc["metrics"] == {"loss": 0.5}
            assert [d["_id"] for d in db.search_runs({"status": "killed"})] == [run_id], "stored, so searchable"
    finally:
        if child.poll() is None:
            child.kill()


def test_the_lapse_rule_applies_on_the_read_only_view(tdb_handle: tdb.TensorDB) -> None:
    run = tdb_handle.start_run(heartbeat_s=0.05, lapse_s=0.2)
    run._stop.set()  # the heartbeat stops, as if the process had frozen
    run._beater.join()
    time.sleep(0.3)
    assert tdb_handle.all_studies().search_runs()[0]["status"] == "killed"
    run.beat()  # a stalled process that comes back revives its run
    assert tdb_handle.get_run(run.id)["status"] == "running"
    run.end()
    assert tdb_handle.get_run(run.id)["status"] == "finished"


def test_default_lapse_is_within_a_minute() -> None:
    assert runs.HEARTBEAT_S + runs.LAPSE_S <= 60
