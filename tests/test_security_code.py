"""Stored bytes and stored strings are data: no pickle anywhere, no code run without an explicit opt-in.

* The source contains no pickle/marshal/shelve, no ``np.load``, no ``eval``,
  and ``exec`` only behind ``trusted=True`` (checked on the AST, so a new use
  anywhere fails this test).
* Crafted blobs — a pickle whose unpickling would write a marker file, an
  ``.npy`` holding an object array, an archive header claiming an object
  dtype — are refused with ``CodecError`` and the marker never appears.
* Architectures and job specs that are Python code are stored and returned
  as strings; building a model or running a worker's policy does not execute
  them unless the caller opts in (``trusted=True``), which then works.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import CodecError, IntegrityError, InvalidDocument, UnsafeOperation
from tensordb_core.format.codec import ARCHIVE_MAGIC, ARRAY_MAGIC
from tensordb_core.loop.builders import build_model
from tensordb_core.loop.roles import BuildPolicy
from tensordb_core.store.blobkit import content_key
from tensordb_core.warehouse.models import exec_architecture

SRC = Path(__file__).resolve().parents[1] / "src"
#: The one module that may import pickle: it subclasses pickle.Unpickler with an allow-list (tensorlayer/pickles.py).
RESTRICTED_UNPICKLER = SRC / "tensordb_core" / "tensorlayer" / "pickles.py"
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}


class Boom:
    """Unpickling this runs ``Path(marker).write_text(...)``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_the_source_never_unpickles_evaluates_or_executes() -> None:
    offences: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                offences += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES
                             and not (a.name == "pickle" and path == RESTRICTED_UNPICKLER)]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                offences.append(f"{where} from {node.module} import")
            elif isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name in ("eval", "__import__") or (name == "load" and "np" in ast.unparse(node.func)):
                    offences.append(f"{where} {ast.unparse(node.func)}()")
                if name == "exec" and not str(path).endswith("warehouse/models.py"):
                    offences.append(f"{where} exec()")
                if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                       for k in node.keywords):  # allow_pickle=False (refusing object arrays) is the safe spelling
                    offences.append(f"{where} allow_pickle")
    assert offences == []
    # the one pickle import is the TensorLayer migration's restricted unpickler: an allow-list, never loads()
    restricted = RESTRICTED_UNPICKLER.read_text()
    assert "def find_class" in restricted and "ALLOWED_GLOBALS" in restricted
    assert "pickle.loads(" not in restricted and "pickle.load(" not in restricted
    # the one exec is behind the trusted opt-in
    models = (SRC / "tensordb_core" / "warehouse" / "models.py").read_text()
    assert models.count("exec(") == 1 and "if trusted is not True" in models


@pytest.fixture
def db():
    with tdb.connect(f"memory://sec-{uuid.uuid4().hex}", study="s") as handle:
        yield handle


def plant_parameters(db: tdb.TensorDB, blob: bytes) -> dict:
    """A parameter document pointing at ``blob`` (as another tool, or an attacker with write access, could)."""
    key = content_key(blob)
    db.blobs.put(key, blob)
    doc_id = db.index.insert_many("params", [{"_study": "s", "_blob": {"key": key, "size": len(blob)},
                                              "metrics": {}}])[0]
    return db.find_parameter_docs({"_id": doc_id})[0]


def npy_with_objects(marker: Path) -> bytes:
    out = io.BytesIO()
    np.save(out, np.array([Boom(marker)], dtype=object), allow_pickle=True)
    return out.getvalue()


def archive_claiming_objects(payload: bytes) -> bytes:
    entry = {"name": "w", "offset": 0, "length": len(payload), "codec": "none", "dtype": "|O", "shape": [1],
             "crc32": zlib.crc32(payload)}
    head = json.dumps({"version": 1, "kind": "dict", "arrays": [entry]}).encode()
    return ARCHIVE_MAGIC + struct.pack("<I", len(head)) + head + payload


@pytest.mark.parametrize("craft", ["pickle", "npy-object-array", "archive-with-object-dtype", "array-blob-object-dtype"])
def test_loading_a_crafted_blob_never_runs_code(db, tmp_path: Path, craft: str) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker))
    blob = {
        "pickle": payload,
        "npy-object-array": npy_with_objects(marker),
        "archive-with-object-dtype": archive_claiming_objects(payload),
        "array-blob-object-dtype": ARRAY_MAGIC + archive_claiming_objects(payload)[4:],
    }[craft]
    doc = plant_parameters(db, blob)
    with pytest.raises(CodecError):
        db.load_parameters(doc)
    with pytest.raises(CodecError):
        db.find_parameters({"_id": doc["_id"]})
    # the same bytes as a data chunk whose document claims an object dtype
    key = content_key(blob)
    db.index.insert_many("data", [{"_study": "s", "_x": {"key": key, "chunk_size": len(blob), "offset": 0,
                                                          "length": len(blob), "codec": "none", "dtype": "|O",
                                                          "shape": [1], "crc32": zlib.crc32(blob)}}])
    with pytest.raises((CodecError, IntegrityError)):  # the sample readers name the document (SampleError)
        db.find_data().arrays()
    with pytest.raises((CodecError, IntegrityError)):
        list(db.data_generator({}, batch_size=1, shuffle=False, epochs=1))
    assert not marker.exists(), "stored bytes were executed"
    pickle.loads(payload)  # the payload is live: unpickling it *would* have written the marker
    assert marker.exists()


def architecture(marker: Path) -> str:
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\ndef build(hyper):\n    return 'model'\n"


def test_architectures_are_returned_as_strings_and_run_only_when_trusted(db, tmp_path: Path) -> None:
    marker = tmp_path / "arch-ran"
    code = architecture(marker)
    db.save_model_architecture(code, tags={"name": "evil"})
    found, _ = db.find_model_architecture({"name": "evil"})
    assert found == code and not marker.exists()
    with pytest.raises(InvalidDocument):
        build_model(found, {})  # not a JSON builder config, and not trusted
    with pytest.raises(InvalidDocument):
        BuildPolicy().build(db, {"name": "evil"}, {})  # a worker's default policy
    with pytest.raises(UnsafeOperation):
        exec_architecture(found)
    with pytest.raises(UnsafeOperation):
        exec_architecture(found, trusted="yes")  # only the literal True opts in
    db.save_model_architecture(json.dumps({"builder": "os:system"}), tags={"name": "importer"})
    with pytest.raises(UnsafeOperation):
        BuildPolicy().build(db, {"name": "importer"}, {})  # importing a module by name needs allow_import
    assert not marker.exists(), "stored architecture code ran without an opt-in"
    assert build_model(found, {}, trusted=True) == "model" and marker.exists()  # the explicit opt-in works


def test_job_specs_are_data(db, tmp_path: Path) -> None:
    marker = tmp_path / "job-ran"
    spec = {"code": architecture(marker), "cmd": f"touch {marker}", "expr": "__import__('os').system('true')"}
    jid = db.push_job(spec, tags={"kind": "train"})
    job = db.pop_job({"kind": "train"})
    assert job.id == jid and job.spec == spec
    job.complete({"echo": spec["expr"]})
    assert db.find_jobs({"_id": jid})[0]["result"] == {"echo": spec["expr"]}
    assert not marker.exists()
