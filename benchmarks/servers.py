"""Start the remote backends' real servers on 127.0.0.1 for the stream benchmark, and stop them by PID.

Why a module of its own: the benchmark must start the same servers the
backend tests use (moto_server, fake-gcs-server, Azurite, mongoeco), the same
way, without pytest.  It loads ``tests/serverkit.py`` and the backends'
``*kit.py`` helpers by path, so a launcher fixed for the tests is fixed here
too.  :func:`start` returns a :class:`Backend`: the running servers plus the
``connect`` arguments of a warehouse on them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
#: Benchmark order and the ``--remote`` names.
NAMES = ("s3", "gcs", "azure", "gridfs")
BUCKET = "tensordb-bench"
#: mongoeco slows sharply above ~100 documents per insert_many (BACKENDS.md); real MongoDB does not need this.
MONGOECO_WRITE_BATCH = 100


def _load(name: str, path: Path) -> ModuleType:
    """Import ``path`` as module ``name`` (once), without putting tests/ on ``sys.path``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def serverkit() -> ModuleType:
    # The kits do ``from serverkit import ...``: registered under that name, they find it.
    return _load("serverkit", TESTS / "serverkit.py")


def kit(backend: str) -> ModuleType:
    serverkit()
    return _load(f"{backend}kit", TESTS / "backends" / backend / f"{backend}kit.py")


@dataclass
class Backend:
    """Running servers and how to open a warehouse on them (``tdb.connect(**backend.connect_args(dir))``)."""

    name: str
    description: str
    servers: list[Any]
    blobs: str
    blob_options: dict[str, Any] = field(default_factory=dict)
    index_uri: str | None = None  # None: an embedded (SQLite directory) index
    index_options: dict[str, Any] = field(default_factory=dict)
    scratch: list[Path] = field(default_factory=list)

    def connect_args(self, directory: Path) -> dict[str, Any]:
        return {"uri": self.index_uri or str(directory), "blobs": self.blobs, "blob_options": self.blob_options,
                "index_options": self.index_options}

    def stop(self) -> None:
        """Stop every server by PID (waiting for it to exit) and remove scratch folders."""
        errors = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others, then report
                errors.append(exc)
        self.servers.clear()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)
        if errors:
            raise errors[0]


def start(name: str) -> Backend:
    """Start ``name``'s server on a free loopback port; RuntimeError (with the install hint) if it cannot run."""
    if name == "s3":
        s3 = kit("s3")
        server = s3.start_moto("bench-moto")
        endpoint = f"http://127.0.0.1:{server.port}"
        return Backend("s3", "moto_server (S3 REST)", [server],
                       f"s3://{BUCKET}/b-{uuid.uuid4().hex[:8]}?endpoint_url={endpoint}&region={s3.REGION}",
                       {**s3.OPEN_CREDENTIALS, "create_bucket": True})
    if name == "gcs":
        server = kit("gcs").start_fake_gcs("bench-fake-gcs")
        endpoint = f"http://127.0.0.1:{server.port}"
        return Backend("gcs", "fake-gcs-server (GCS JSON API, memory backend)", [server],
                       f"gs://{BUCKET}/b-{uuid.uuid4().hex[:8]}?emulator_host={endpoint}", {"create_bucket": True})
    if name == "azure":
        az = kit("azure")
        location = Path(tempfile.mkdtemp(prefix="tensordb-bench-azurite-"))
        try:
            server = az.start_azurite(str(location), "bench-azurite")
        except BaseException:
            shutil.rmtree(location, ignore_errors=True)
            raise
        return Backend("azure", "Azurite (Azure Blob, disk-backed)", [server],
                       f"az://{BUCKET}/b-{uuid.uuid4().hex[:8]}?endpoint={az.endpoint_of(server)}",
                       {"account_key": az.ACCOUNT_KEY, "create_container": True}, scratch=[location])
    if name == "gridfs":
        sk = serverkit()
        python = sk.require_executable(
            sk.REPO / ".mongoeco-venv" / "bin" / "python",
            "python3.13 -m venv .mongoeco-venv && .mongoeco-venv/bin/pip install 'mongoeco[wire]'")
        port = sk.free_port()
        launcher = TESTS / "backends" / "mongo" / "mongoeco_server.py"
        server = sk.start_server("bench-mongoeco", [python, str(launcher), "--port", str(port)], port, cwd=str(REPO))
        db = f"bench_{uuid.uuid4().hex[:8]}"
        uri = f"mongodb://127.0.0.1:{port}/{db}?directConnection=true&write_batch_size={MONGOECO_WRITE_BATCH}"
        return Backend("gridfs", "mongoeco (MongoDB wire protocol, in memory): Mongo index + GridFS", [server],
                       uri, index_uri=uri)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")
