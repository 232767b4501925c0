"""Writers killed with SIGKILL at random points lose nothing they acknowledged and leave nothing dangling.

Each trial starts a child that imports samples and saves parameter sets in a
loop and kills it: half the trials the parent SIGKILLs it after a random
delay (often mid-blob-write or mid-commit), half the child SIGKILLs itself
right before or after its n-th store write (so every step of the
intent → blob → documents → intent-removal protocol is hit).  After every
trial the warehouse is audited; at the end ``tensordb check`` reports the
orphans the crashes left and ``tensordb gc`` removes exactly those.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from faultkit import STUDY, audit, run_until_killed

import tensordb_core as tdb
from tensordb_core.cli.main import main as cli_main
from tensordb_core.warehouse.maintenance import check

pytestmark = pytest.mark.timeout(600)


def test_killed_writers_leave_no_dangling_or_lost_documents(warehouse: str, procs, trials, capsys, record_property):
    n = trials(10, 100) if warehouse.startswith(("/", "file:")) else trials(6, 100)
    rng = random.Random(20240601)
    acked: dict[str, set[str]] = {"data": set(), "params": set()}
    kills: Counter[str] = Counter()
    for trial in range(n):
        kills[run_until_killed(procs, warehouse, trial, rng, acked)] += 1
        found = audit(warehouse, acked)
        assert found.clean, f"trial {trial}: {found}"
    assert sum(kills.values()) == n and kills["self-kill"] and kills["parent-kill"]
    assert acked["data"] and acked["params"], "the writers should have finished some writes before dying"

    # `tensordb check` reports the crashes' orphans; `tensordb gc` removes exactly those.
    args = ["--uri", warehouse, "--study", STUDY]
    with tdb.connect(warehouse, study=STUDY) as db:
        before = check(db.index, db.blobs, grace_s=0)
        referenced = set(db.blobs.list()) - set(before.orphans)
    assert cli_main(["check", *args, "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"orphan blobs (no document references them): {len(before.orphans)}" in out and "OK" in out
    assert cli_main(["gc", *args, "--grace", "0"]) == 0
    assert f"deleted {len(before.orphans)} orphan blob(s)" in capsys.readouterr().out
    with tdb.connect(warehouse, study=STUDY) as db:
        after = check(db.index, db.blobs, grace_s=0)
        assert after.orphans == [] and after.dangling == [] and set(db.blobs.list()) == referenced
    final = audit(warehouse, acked)
    assert final.clean and final.orphans == 0
    record_property("fault_figures", {"trials": n, "kills": dict(kills), "documents": final.documents,
                                      "acknowledged": len(acked["data"]) + len(acked["params"]),
                                      "orphans_collected": len(before.orphans), "lost": len(final.lost),
                                      "dangling": len(final.dangling)})
    print(f"\n[faults] crashed writers on {warehouse.split('?')[0]}: {n} trials, kills {dict(kills)}, "
          f"{final.documents} documents, {len(before.orphans)} orphans collected, lost 0, dangling 0")
