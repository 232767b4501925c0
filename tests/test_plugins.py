"""Plugins: a third-party package registers a scheme through the `tensordb` entry-point group."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidURI, UnknownScheme

TOY_PLUGIN = '''
"""A toy third-party backend: serves toy:// by delegating to the in-memory stores."""
from tensordb_core import hookimpl, SchemeInfo
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore

@hookimpl
def tensordb_schemes():
    return [SchemeInfo("toy", index=True, blobs=True, description="toy test plugin")]

@hookimpl
def tensordb_open_index(uri, options):
    if uri.scheme == "toy":
        return MemoryIndexStore.named("toy" + uri.path, uri=uri)

@hookimpl
def tensordb_open_blobs(uri, options):
    if uri.scheme == "toy":
        return MemoryBlobStore.named("toy" + uri.path, uri=uri)

@hookimpl
def tensordb_default_blobs(index_uri):
    return index_uri if index_uri.scheme == "toy" else None
'''


def _install_toy_distribution(root):
    (root / "toy_tensordb_plugin.py").write_text(TOY_PLUGIN)
    dist = root / "toy_tensordb_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-tensordb-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tensordb]\ntoy = toy_tensordb_plugin\n")


def test_entry_point_plugin_is_discovered_and_served_by_connect(tmp_path):
    _install_toy_distribution(tmp_path)
    script = textwrap.dedent("""
        import numpy as np, tensordb_core as tdb
        from tensordb_core.store.retrying import unwrap
        db = tdb.connect("toy://lab/x", study="s")
        db.import_data(np.zeros((3, 2), np.float32), [1, 2, 3], tags={"split": "train"})
        print(len(db.find_data({"label": {"$gte": 2}})), type(unwrap(db.index)).__name__)
        print([s.source for s in tdb.list_schemes() if s.scheme == "toy"])
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["2 MemoryIndexStore", "['toy']"]
    cli = subprocess.run([sys.executable, "-m", "tensordb_core.cli", "plugins"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert cli.returncode == 0 and "toy test plugin" in cli.stdout and "embedded" in cli.stdout


def test_runtime_registration_and_unregistration(tmp_path):
    import importlib.util

    path = tmp_path / "toy_runtime.py"
    path.write_text(TOY_PLUGIN.replace('"toy"', '"toyrt"'))
    spec = importlib.util.spec_from_file_location("toy_runtime", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tdb.register(module, name="toy-runtime")
    try:
        db = tdb.connect("toyrt://a", study="s")
        db.push_job({"x": 1})
        assert db.pop_job().spec == {"x": 1}
    finally:
        tdb.unregister("toy-runtime")
    with pytest.raises(UnknownScheme, match="known here"):
        tdb.connect("toyrt://a")


def test_unknown_scheme_lists_known_schemes():
    with pytest.raises(UnknownScheme) as err:
        tdb.open_index("nosuch://user:pw@h/x")
    assert "file" in str(err.value) and "memory" in str(err.value) and "pw" not in str(err.value)
    assert isinstance(err.value, InvalidURI)


def test_importing_core_does_not_import_backend_clients():
    code = "import sys, tensordb_core as t; t.list_schemes(); t.connect('memory://x'); " \
           "print([m for m in ('boto3','pymongo','google.cloud.storage','azure.storage.blob') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- declarative registration: dotted paths imported only when the scheme is opened -------------------------------

LAZY_PLUGIN = '''
"""A declarative third-party backend: no open hooks, only dotted paths."""
from tensordb_core import hookimpl, SchemeInfo

@hookimpl
def tensordb_schemes():
    return [
        SchemeInfo("lazy", index="lazy_store:LazyIndex", blobs="lazy_store:LazyBlobs.open", extra="lazy",
                   description="lazily imported toy"),
        SchemeInfo("needsdep", blobs="needsdep_store:Blobs", extra="needsdep", description="its SDK is missing"),
        SchemeInfo("broken", blobs="broken_store:Blobs", description="the plugin's own module is broken"),
    ]
'''

LAZY_STORE = '''
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore

OPENED = []

def LazyIndex(uri, **options):
    OPENED.append(("index", options))
    return MemoryIndexStore.named("lazy" + uri.path, uri=uri)

class LazyBlobs:
    @classmethod
    def open(cls, uri, **options):
        OPENED.append(("blobs", options))
        return MemoryBlobStore.named("lazy" + uri.path, uri=uri)
'''


def _install_lazy_distribution(root):
    (root / "lazy_plugin.py").write_text(LAZY_PLUGIN)
    (root / "lazy_store.py").write_text(LAZY_STORE)
    (root / "needsdep_store.py").write_text("import no_such_client_library_for_tensordb\nBlobs = None\n")
    (root / "broken_store.py").write_text("from lazy_plugin import no_such_name\n")
    dist = root / "lazy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lazy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tensordb]\nlazy = lazy_plugin\n")


def test_declared_schemes_are_imported_only_when_opened(tmp_path):
    _install_lazy_distribution(tmp_path)
    script = textwrap.dedent("""
        import sys, tensordb_core as tdb
        from tensordb_core.errors import MissingDependency
        info = {s.scheme: s for s in tdb.list_schemes()}
        print(bool(info["lazy"].index), bool(info["lazy"].blobs), info["lazy"].source, "lazy_store" in sys.modules)
        db = tdb.connect("lazy://x", blobs="lazy://x", study="s", index_options={"k": 1})
        import lazy_store
        print(lazy_store.OPENED[0], lazy_store.OPENED[1][0])
        try:
            tdb.open_blobs("needsdep://b")
        except MissingDependency as exc:
            print("missing:", exc)
        try:
            tdb.open_blobs("broken://b")
        except MissingDependency:
            print("wrongly called a missing dependency")
        except ImportError as exc:
            print("broken:", exc.name)
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True True lazy False"  # listed from the declaration alone
    assert lines[1] == "('index', {'k': 1}) blobs"  # Factory(uri, **options); Class.attribute paths work
    assert "no_such_client_library_for_tensordb" in lines[2] and "pip install 'tensordb[needsdep]'" in lines[2]
    assert lines[3] == "broken: lazy_plugin"  # the plugin's own bug stays an ImportError, not an install hint


def test_opening_one_backend_does_not_import_another_backends_sdk():
    code = (
        "import sys, tensordb_core as t\n"
        "t.open_blobs('s3://bkt/p?endpoint_url=http://127.0.0.1:9&check_bucket=false').close()\n"
        "print(sorted(m for m in ('boto3', 'pymongo', 'google.cloud.storage', 'azure.storage.blob') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['boto3']"


def test_a_missing_client_library_names_the_pip_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensordb_mongo.gridfs_blobs", raising=False)
    monkeypatch.setitem(sys.modules, "gridfs", None)  # what an environment without the extra looks like
    with pytest.raises(tdb.MissingDependency) as info:
        tdb.open_blobs("mongodb://127.0.0.1:1/lab")
    assert "pip install 'tensordb[mongo]'" in str(info.value) and "gridfs" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_scheme_info_takes_dotted_paths_or_true():
    assert tdb.SchemeInfo("x", index=True).index is True  # served by the plugin's open hook
    info = tdb.SchemeInfo("x", blobs="pkg.mod:Store.open")
    assert info.factory_path("blobs") == "pkg.mod:Store.open" and info.factory_path("index") is None
    for bad in ("pkg.mod.Store", "pkg mod:Store", ":Store", "pkg:"):
        with pytest.raises(ValueError, match="module:Factory"):
            tdb.SchemeInfo("x", blobs=bad)


def test_preload_imports_the_declared_factories_and_opens_nothing(tmp_path):
    """What a process about to fork loader workers calls: the stores' modules and SDKs imported, nothing built."""
    _install_lazy_distribution(tmp_path)
    missing_dir = tmp_path / "no-warehouse-here"
    script = textwrap.dedent(f"""
        import os, sys, tensordb_core as tdb
        from tensordb_core.errors import MissingDependency
        tdb.preload("lazy://x", blobs="lazy://x")
        import lazy_store
        print("lazy_store imported, opened:", lazy_store.OPENED)
        try:
            tdb.preload("lazy://x", blobs="needsdep://b")
        except MissingDependency as exc:
            print("missing:", "tensordb[needsdep]" in str(exc))
        print("undeclared:", tdb.preload("nosuch://x"))
        tdb.preload({str(missing_dir)!r})
        print("embedded:", "tensordb_core.embedded.sqlite_index" in sys.modules, os.path.exists({str(missing_dir)!r}))
        tdb.preload({str(missing_dir)!r}, blobs="s3://bkt/p?endpoint_url=http://127.0.0.1:9&check_bucket=false")
        print("s3:", "boto3" in sys.modules, "tensordb_s3.store" in sys.modules)
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["lazy_store imported, opened: []", "missing: True", "undeclared: None",
                                       "embedded: True False", "s3: True True"]


@pytest.mark.parametrize("uri, blobs", [("mongodb://h:port/x", None), ("memory://x", "s3://h:99999/b")])
def test_preload_raises_for_a_malformed_uri_as_connect_does(uri, blobs):
    with pytest.raises(InvalidURI, match="must be a number"):
        tdb.preload(uri, blobs=blobs)
    with pytest.raises(InvalidURI, match="must be a number"):
        tdb.connect(uri, blobs=blobs)
