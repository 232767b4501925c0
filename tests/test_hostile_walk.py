"""Every public method of the TensorDB handle and every CLI command, walked with a corpus of bad values.

Each bad value must end in a typed :class:`TensorDBError` (the CLI: exit status
2, one error line, no traceback) and leave the warehouse as it was: the
fingerprint of every collection's documents and every blob key is compared
before and after.  The tables are explicit, and introspection holds them
complete: a public method or a subcommand added without a row fails
:func:`test_every_public_method_has_a_row` / :func:`test_every_command_has_a_row`.
"""

from __future__ import annotations

import inspect
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import build_parser, main
from tensordb_core.errors import TensorDBError
from tensordb_core.warehouse.handle import TensorDB

LONG = "x" * 5000
DEEP: dict[str, Any] = {"a": 1}
for _ in range(60):
    DEEP = {"$and": [DEEP]}


class Opaque:
    """Not JSON, not an array: must never reach a store."""


#: Bad values by what a parameter is.  Every value in a kind is wrong for every parameter of that kind.
CORPUS: dict[str, list[Any]] = {
    "query": ["split", 5, [1], {"$where": "1"}, {"a": math.nan}, {"a\x00": 1}, {1: 2}, {"a": {"$gt": [1]}}, DEEP,
              {"a": Opaque()}],
    "name": [None, 5, "", "a\x00b", LONG, math.nan, [], {}, b"x"],
    "optional_name": [5, "", "a\x00b", LONG, math.nan, [], {}, b"x"],
    "text": [5, "a\x00b", [], {}, b"x", math.nan],
    "code": [None, 5, "a\x00b", [], {}, b"x"],  # "" is an architecture TensorLayer's save_job stores
    "count": [-1, 2**70, "x", math.nan, math.inf, 1.5, [], None],
    "optional_count": [-1, 2**70, "x", math.nan, math.inf, 1.5, []],
    "positive_int": [0, -1, "x", math.nan, math.inf, 1.5, [], None],
    "optional_int": ["x", math.nan, math.inf, 1.5, []],
    "priority": ["x", math.nan, math.inf, 1.5, [], 2**70],
    "seconds": [math.nan, math.inf, -1.0, 0, "x", [], None],
    "optional_seconds": [math.nan, math.inf, -1.0, "x", []],
    "time": [math.nan, math.inf, "x", [], {}],
    "mapping": ["text", [1, 2], 5, {"a": math.nan}, {"a\x00": 1}, {1: 2}, {"a": Opaque()}, {"a": b"\x00"}],
    "optional_mapping": ["text", [1, 2], 5, {"a": math.nan}, {"a\x00": 1}, {1: 2}, {"a": Opaque()}],
    # NaN and inf are metrics (a diverged loss is kept as "nan"), so they are not in this corpus
    "metrics": ["text", [1, 2], 5, {"a\x00": 1}, {1: 2}, {"a": Opaque()}, {"a.b": 1}, {"$x": 1}],
    "optional_metrics": ["text", [1, 2], 5, {"a\x00": 1}, {1: 2}, {"a": Opaque()}, {"a.b": 1}],
    "spec": [math.nan, Opaque(), b"x", {"a": math.nan}, {"a\x00": 1}, {1: 2}, {"a": Opaque()}],  # any JSON value is a spec
    "arrays": ["text", 5, None, Opaque(), {1: np.zeros(2)}, np.zeros((0, 0, 0))],
    "samples": ["text", 5, None, Opaque(), {"a": 1}, np.zeros(0), np.array(["a", "b"], dtype=object)],
    "labels": [{"a": 1}, {1, 2}, "ab", Opaque(), np.zeros((3, 2, 1, 1))[:1]],
    "mode": ["maxx", 5, None, ""],
    "sort": ["x", 5, [("a", 2)], [(1, 1)], {"a": "up"}],
    "param_id": [None, 5, "", "a\x00b", LONG, "no-such-id", [], {}],
    "records": ["text", 5, None, [1, 2], [{"a": Opaque()}], [{"a\x00": 1}], [{"a": math.nan}]],
    "kind": [None, 5, "", "a\x00b", LONG, [], "bogus"],
    "optional_kind": [5, "", "a\x00b", LONG, [], "bogus"],
    "status": [5, "", "a\x00b", LONG, "bogus"],
    "path": [None, 5, "", "a\x00b", [], {}],
    "format": ["bogus", 5, None, "", "a\x00b"],
    "tag_names": [(), (None,), (5,), ("",), ("_study",), ("a..b",), ("$where",), ("a.$x",), ("a\x00b",), (LONG,),
                  ("split", 5), ([],)],
}
X = np.zeros((3, 2), np.float32)


def row(kinds: dict[str, str], **valid: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """A table row: which kind each poisoned parameter is, and valid values for every argument."""
    return kinds, valid


#: method -> (parameter -> kind, valid arguments).  The valid arguments come from the seeded warehouse
#: (``"@pid"``, ``"@run"``... are filled in by :func:`seeded`); each case poisons one parameter.
TABLE: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "alias_history": row({"name": "name"}, name="best"),
    "best_parameters": row({"metric": "name", "mode": "mode", "query": "query"}, metric="acc", mode="max", query={}),
    "current_lineage": row({}),
    "data_generator": row({"query": "query", "batch_size": "positive_int", "epochs": "optional_int",
                           "seed": "optional_int"},
                          query={}, batch_size=2, epochs=1, seed=0, shuffle=False),
    "data_snapshot": row({"settle_s": "optional_seconds"}, settle_s=0),
    "dataset_info": row({"name": "name"}, name="ds"),
    "delete_data": row({"query": "query"}, query={"split": "none"}),
    "delete_jobs": row({"query": "query"}, query={"status": "none"}),
    "delete_logs": row({"kind": "optional_kind", "query": "query"}, kind="train", query={"step": -99}),
    "delete_model_architectures": row({"query": "query"}, query={"name": "none"}),
    "delete_parameters": row({"query": "query"}, query={"tag": "none"}),
    "drop_dataset": row({"name": "name"}, name="no-such-dataset"),
    "index_tags": row({"tags": "tag_names"}, tags=("split",)),
    "export_data": row({"path": "path", "query": "query", "dataset": "optional_name", "format": "format"},
                       path="@export", query={}, dataset=None, format="npz"),
    "end_run": row({"status": "status"}, status="finished"),
    "find_data": row({"query": "query", "sort": "sort", "limit": "count", "skip": "count", "dataset": "optional_name"},
                     query={}, sort=None, limit=0, skip=0, dataset=None),
    "find_jobs": row({"query": "query", "limit": "count"}, query={}, limit=0),
    "find_logs": row({"kind": "optional_kind", "query": "query"}, kind="train", query={}),
    "find_model_architecture": row({"query": "query"}, query={}),
    "find_parameter_docs": row({"query": "query", "sort": "sort", "limit": "count"}, query={}, sort=None, limit=0),
    "find_parameters": row({"query": "query", "sort": "sort"}, query={}, sort=None),
    "get_alias": row({"name": "name", "at": "time"}, name="best", at=None),
    "get_model_version": row({"name": "name", "version": "count"}, name="m", version=1),
    "get_run": row({"run_id": "param_id"}, run_id="@run"),
    "import_data": row({"X": "samples", "y": "labels", "tags": "optional_mapping", "chunk_bytes": "positive_int"},
                       X=X, y=[0, 1, 2], tags={"split": "walk"}, chunk_bytes=1 << 20),
    "import_records": row({"records": "records", "tags": "optional_mapping", "encode": "optional_mapping",
                           "chunk_bytes": "positive_int"},
                          records=[{"a": np.zeros(2)}], tags={"split": "walk"}, encode=None, chunk_bytes=1 << 20),
    "list_artifacts": row({"run_id": "name"}, run_id="@run"),
    "list_datasets": row({}),
    "list_model_versions": row({"name": "name"}, name="m"),
    "list_models": row({}),
    "load_artifact": row({"run_id": "param_id", "name": "name"}, run_id="@run", name="notes"),
    "load_model": row({"name": "name", "alias": "optional_name", "version": "optional_count"},
                      name="m", alias=None, version=1),
    "load_parameters": row({"doc": "mapping"}, doc="@pdoc"),
    "log": row({"kind": "kind", "metrics": "metrics", "step": "optional_count"}, kind="train", metrics={"loss": 1.0},
               step=1),
    "model_alias_history": row({"name": "name", "alias": "optional_name"}, name="m", alias=None),
    "pop_job": row({"query": "query", "lease_s": "seconds", "worker": "optional_name"},
                   query={"type": "none"}, lease_s=60.0, worker=None),
    "push_job": row({"spec": "spec", "tags": "optional_mapping", "priority": "priority",
                     "max_attempts": "count"}, spec={"epochs": 1}, tags=None, priority=0, max_attempts=3),
    "record_metrics": row({"param_id": "param_id", "metrics": "metrics"}, param_id="@pid", metrics={"acc": 0.5}),
    "register_model": row({"name": "name", "param_id": "param_id", "description": "text"},
                          name="m", param_id="@pid", description=None),
    "save_dataset": row({"name": "name", "query": "query", "description": "text"},
                        name="ds2", query={}, description=None),
    "save_model_architecture": row({"code": "code", "tags": "optional_mapping"}, code="{}", tags=None),
    "save_parameter": row({"parameters": "arrays", "metrics": "optional_metrics"}, parameters={"w": X}, metrics=None),
    "save_parameters": row({"parameters": "arrays", "metrics": "optional_metrics", "tags": "optional_mapping",
                            "step": "optional_count"}, parameters={"w": X}, metrics=None, tags=None, step=None),
    "search_runs": row({"query": "query", "sort": "sort", "limit": "count"}, query={}, sort=None, limit=0),
    "set_alias": row({"name": "name", "param_id": "param_id", "who": "optional_name"}, name="best", param_id="@pid",
                     who=None),
    "set_model_alias": row({"name": "name", "alias": "name", "version": "count", "who": "optional_name"},
                           name="m", alias="prod", version=1, who=None),
    "start_run": row({"name": "optional_name", "params": "optional_mapping", "tags": "optional_mapping",
                      "heartbeat_s": "seconds"}, name=None, params=None, tags=None, heartbeat_s=10.0),
    "test_log": row({"metrics": "metrics", "step": "optional_count"}, metrics={"loss": 1.0}, step=1),
    "train_log": row({"metrics": "metrics", "step": "optional_count"}, metrics={"loss": 1.0}, step=1),
    "update_data": row({"query": "query", "update": "mapping"}, query={"split": "none"}, update={"$set": {"k": 1}}),
    "use_study": row({"study": "optional_name"}, study="other"),
    "valid_log": row({"metrics": "metrics", "step": "optional_count"}, metrics={"loss": 1.0}, step=1),
}

#: Public names the walk leaves out, and why.
EXEMPT = {
    "active_run": "a property-like getter without arguments",
    "all_studies": "no arguments: returns a read-only view",
    "close": "no arguments",
    "flush": "no arguments",
    "from_stores": "takes already-open stores (an integration point, not user input)",
}


def public_methods() -> set[str]:
    return {name for name, _ in inspect.getmembers(TensorDB) if not name.startswith("_")}


def test_every_public_method_has_a_row() -> None:
    missing = sorted(public_methods() - set(TABLE) - set(EXEMPT))
    assert not missing, f"public TensorDB methods the hostile walk does not cover (add rows to TABLE): {missing}"
    stale = sorted((set(TABLE) | set(EXEMPT)) - public_methods())
    assert not stale, f"rows for methods TensorDB no longer has: {stale}"


def cases() -> Iterator[tuple[str, str, int]]:
    for method, (kinds, _) in sorted(TABLE.items()):
        for param, kind in kinds.items():
            for i in range(len(CORPUS[kind])):
                yield method, param, i


# -- the warehouse ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TensorDB, dict[str, Any], Path]]:
    """One warehouse holding something of every kind, and the ids the rows refer to."""
    root = tmp_path_factory.mktemp("walk") / "wh"
    db = tdb.connect(str(root), study="s1")
    db.import_data(np.arange(12, dtype=np.float32).reshape(6, 2), list(range(6)), tags={"split": "train"})
    pid = db.save_parameters({"w": X}, metrics={"acc": 0.5}, tags={"tag": "t"})
    db.set_alias("best", pid)
    db.register_model("m", pid)
    db.save_model_architecture('{"builder": "numpy-mlp"}', tags={"name": "mlp"})
    db.push_job({"epochs": 1}, tags={"type": "train"})
    db.train_log({"loss": 1.0}, step=0)
    run = db.start_run("walk", params={"lr": 0.1}, heartbeat_s=3000, lapse_s=3600)  # no heartbeat during the walk
    run.log_text("hello", "notes")
    if hasattr(db, "save_dataset"):
        db.save_dataset("ds", {"split": "train"})
    db.flush()
    ids = {"@pid": pid, "@run": run.id, "@pdoc": db.find_parameter_docs({"_id": pid})[0],
           "@export": str(root.parent / "export.npz")}
    yield db, ids, root
    db.close()


def fingerprint(db: TensorDB, root: Path) -> tuple[Any, ...]:
    """Every row of every table of the SQLite index and every blob file, read beside the store (not
    through it): what 'unchanged' means."""
    db.flush()
    with closing(sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = tuple((t, tuple(sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))))) for t in tables
                     if t != "sqlite_sequence")
    blobs = tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "index.sqlite"
                         and not p.name.startswith("index.sqlite")))
    return rows, blobs


def resolve(value: Any, ids: dict[str, Any]) -> Any:
    return ids[value] if isinstance(value, str) and value in ids else value


def call(db: TensorDB, method: str, kwargs: dict[str, Any]) -> Any:
    """Call ``method`` and consume what it returns lazily (cursors, generators), so its checks run."""
    if method == "index_tags":  # variadic: the row's "tags" are its positional arguments
        return db.index_tags(*kwargs["tags"])
    result = getattr(db, method)(**kwargs)
    if method == "data_generator":
        for _ in zip(range(2), result):
            pass
    elif method == "find_data":
        len(result)
    elif method == "start_run":
        result.end()
    return result


@pytest.mark.parametrize(("method", "param", "i"), list(cases()),
                         ids=[f"{m}-{p}-{i}" for m, p, i in cases()])
def test_bad_value_is_typed_and_changes_nothing(seeded, method: str, param: str, i: int) -> None:
    db, ids, root = seeded
    kinds, valid = TABLE[method]
    bad = CORPUS[kinds[param]][i]
    kwargs = {k: resolve(v, ids) for k, v in valid.items()}
    kwargs[param] = bad
    before = fingerprint(db, root)
    try:
        call(db, method, kwargs)
    except TensorDBError:
        pass
    except Exception as exc:  # noqa: BLE001 - the point: anything untyped fails the walk
        pytest.fail(f"{method}({param}={bad!r:.60}) raised untyped {type(exc).__name__}: {exc}"[:400])
    else:
        pytest.fail(f"{method}({param}={bad!r:.60}) was accepted")
    assert fingerprint(db, root) == before, f"{method}({param}={bad!r:.60}) changed the warehouse"


# -- every CLI command -----------------------------------------------------------------------------

#: Options of every warehouse command, each poisoned in turn (``{wh}`` is the seeded warehouse).
COMMON_BAD = [["--uri", "a\x00b"], ["--uri", "/tmp/" + LONG], ["--study", ""], ["--study", "a\x00b"],
              ["--study", LONG], ["--timeout", "nan"], ["--timeout", "-1"], ["--timeout", "x"],
              ["--blobs", "bogus-scheme://x"]]
BAD_JSON = ["{bad", "[1]", '{"$where": "1"}', '{"a": NaN}', '{"a\\u0000": 1}', "[" * 100000, ""]

#: command -> (argv that is valid apart from the poisoned part, the bad argv tails, whether COMMON_BAD applies).
COMMANDS: dict[str, tuple[list[str], list[list[str]], bool]] = {
    "plugins": ([], [["--bogus"], ["x"]], False),
    "demo": ([], [["--workers", "-1"], ["--workers", "0"], ["--workers", "x"], ["--epochs", "-1"],
                  ["--epochs", "0"], ["--workers", "9" * 30]], True),
    "find": ([], [*([q] for q in BAD_JSON[:-1]), ["--limit", "-1"], ["--limit", "x"], ["--limit", "9" * 30],
                  ["--collection", "bogus"]], True),
    "logs": ([], [["bogus"], *(["--query", q] for q in BAD_JSON[:-1]), ["--limit", "-1"]], True),
    "jobs": ([], [*([q] for q in BAD_JSON[:-1]), ["--limit", "-5"], ["--limit", "9" * 30]], True),
    "check": ([], [["--grace", "nan"], ["--grace", "-1"], ["--grace", "x"]], True),
    "gc": (["--dry-run"], [["--grace", "-100"], ["--grace", "nan"], ["--grace", "inf"]], True),
    "worker": (["--role", "trainer", "--until-idle"],
               [["--role", "bogus"], ["--http-port", "99999"], ["--http-port", "-5"], ["--poll", "-1"],
                ["--poll", "nan"], ["--heartbeat", "0"], ["--lease", "0"], ["--lease", "inf"], ["--jobs", "{bad"],
                ["--score-lease", "-1"], ["--min-improvement", "nan"], ["--name", "a\x00b"], ["--name", LONG]], True),
    "compare": ([], [["--mode", "bogus"], ["--metric", "a\x00b"], ["--metric", ""], ["--metric", LONG]], True),
    "copy": (["{wh}", "{tmp}/copy-dst", "--study", "s1"],
             [["--page", "0"], ["--page", "-1"], ["--page", "x"], ["--study", ""], ["--study", "a\x00b"],
              ["--src-blobs", "bogus-scheme://x"], ["--timeout", "nan"]], False),
    "migrate": (["tensorlayer", "{tmp}/no-such-tl", "--to", "{tmp}/tl-dst"],
                [["--study", ""], ["--study", "a\x00b"], ["--to", "a\x00b"]], False),
    "runs": ([], [*([q] for q in BAD_JSON[:-1]), ["--sort", "x:2"], ["--sort", ":1"], ["--limit", "-1"]], True),
    "export": (["{tmp}/export-out"],
               [["--format", "bogus"], ["--query", "{bad"], ["--page-size", "0"], ["--page-size", "-1"],
                ["--shard-samples", "-1"], ["--shard-bytes", "0"], ["--row-group-size", "0"], ["--dataset", ""],
                ["--fields", ""]], True),
    "ui": ([], [["--port", "99999"], ["--port", "-1"], ["--request-timeout", "nan"], ["--request-timeout", "-1"],
                ["--host", "a\x00b"]], True),
    "status": ([], [["--mode", "bogus"], ["--metric", ""], ["--metric", "a\x00b"]], True),
    "delete": ([], [*([q] for q in BAD_JSON[:-1])], True),
    "relabel": (['{"split": "none"}'], [["{bad"], ["[1]"], ['{"$where": 1}'], ['{"$set": {"_id": 1}}'],
                                         ['{"$set": {"a": NaN}}'], ['{"$rename": {"a": "b"}}']], True),
    "datasets": ([], [["bogus"], ["show"], ["show", "a\x00b"], ["show", LONG], ["drop", ""], ["show", "no-such"]],
                 True),
    "import-images": (["{tmp}/images", "--study", "s1"],
                      [["--tags", "{bad"], ["--tags", "[1]"], ["--limit", "-1"], ["--chunk-mb", "-1"],
                       ["--chunk-mb", "nan"], ["--on-error", "bogus"]], True),
}


#: What a command needs besides its options when only a common option is poisoned.
COMMON_BASE = {"delete": ['{"split": "none"}']}


def subcommands() -> set[str]:
    parser = build_parser()
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def test_every_command_has_a_row() -> None:
    missing = sorted(subcommands() - set(COMMANDS))
    assert not missing, f"CLI commands the hostile walk does not cover (add rows to COMMANDS): {missing}"
    assert not sorted(set(COMMANDS) - subcommands()), "rows for commands the CLI no longer has"


def cli_cases() -> Iterator[tuple[str, int]]:
    for command, (_, bad, common) in sorted(COMMANDS.items()):
        for i in range(len(bad) + (len(COMMON_BAD) if common else 0)):
            yield command, i


@pytest.mark.timeout(30)  # an accepted bad value can start a server (ui, worker): fail, do not hang
@pytest.mark.parametrize(("command", "i"), list(cli_cases()), ids=[f"{c}-{i}" for c, i in cli_cases()])
def test_bad_command_line_is_one_error_line_and_changes_nothing(seeded, tmp_path, monkeypatch, capsys,
                                                                command: str, i: int) -> None:
    db, _, root = seeded
    base, bad, common = COMMANDS[command]
    tail = bad[i] if i < len(bad) else COMMON_BAD[i - len(bad)]
    (tmp_path / "images" / "cat").mkdir(parents=True)
    fill = {"{wh}": str(root), "{tmp}": str(tmp_path)}
    argv = [command, *(fill.get(a, a.replace("{tmp}", str(tmp_path))) for a in base)]
    if i >= len(bad):
        argv += COMMON_BASE.get(command, [])
    if common and "--uri" not in tail:
        argv += ["--uri", str(root)]
    if common and "--study" not in tail and "--study" not in base:
        argv += ["--study", "s1"]
    argv += tail
    monkeypatch.chdir(tmp_path)
    before, listing = fingerprint(db, root), sorted(p.name for p in tmp_path.iterdir())
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse refuses a malformed option itself
        status = exc.code
    out, err = capsys.readouterr()
    shown = [a[:30] for a in argv]
    assert status == 2, f"{shown}: exit status {status}, stderr {err[-300:]!r}"
    assert "Traceback" not in err + out, f"{shown}: a traceback"
    errors = [line for line in err.splitlines() if line.startswith("tensordb") and "error:" in line]
    assert len(errors) == 1, f"{shown}: expected one 'tensordb...: error:' line, got {err[-300:]!r}"
    assert len(errors[0]) < 1000, f"{shown}: the error line echoes a huge value"
    assert fingerprint(db, root) == before, f"{shown}: changed the warehouse"
    assert sorted(p.name for p in tmp_path.iterdir()) == listing, f"{shown}: created files"
