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
