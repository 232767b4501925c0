"""Start and stop real servers on 127.0.0.1 for backend tests.

Every server binds loopback on a free port, is waited for until it answers,
and is stopped by PID (waiting for the PID to exit) so ports are never reused
while a process still holds them.  A missing server binary is an error with
the install command, never a skip: CI installs them (see .ci/run).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Block until something accepts connections on ``port`` or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on 127.0.0.1:{port} within {timeout}s")


@dataclass
class Server:
    """A running server process and the loopback port it listens on."""

    proc: subprocess.Popen
    port: int
    name: str

    def stop(self) -> None:
        """Stop the process group and wait for the PID to exit."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the server (fault tests), waiting for it to die."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_server(name: str, argv: Sequence[str], port: int, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, timeout: float = 30.0) -> Server:
    """Launch ``argv`` in its own process group and wait until ``port`` answers."""
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tensordb-test-{name}-{port}.log"), "wb")
    proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            cwd=cwd, start_new_session=True)
    log.close()
    server = Server(proc, port, name)
    try:
        wait_for_port(port, proc, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def require_executable(path: str | os.PathLike, install_hint: str) -> str:
    """Return ``path`` if it exists and is executable, else fail with how to install it."""
    found = shutil.which(str(path)) or (str(path) if os.access(path, os.X_OK) else None)
    if not found:
        raise RuntimeError(f"{path} not found; install it with: {install_hint} (bash .ci/run does this)")
    return found


PYTHON = sys.executable


def serve(server: Server) -> Iterator[Server]:
    """Yield ``server`` and stop it afterwards: the body of a session fixture (``yield from serve(start())``)."""
    try:
        yield server
    finally:
        server.stop()


def dead_port() -> int:
    """A loopback port nothing listens on (for "endpoint unreachable" tests)."""
    return free_port()


def clear_environment(monkeypatch: Any, prefixes: tuple[str, ...], names: tuple[str, ...] = ()) -> None:
    """Unset every variable starting with one of ``prefixes`` or named in ``names`` (the developer's cloud settings)."""
    for name in list(os.environ):
        if name.startswith(prefixes) or name in names:
            monkeypatch.delenv(name)


def exception_texts(exc: BaseException) -> str:
    """The text of an exception and everything chained to it (what a traceback or a log would show)."""
    parts: list[str] = []
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        parts += [str(node), repr(node), *map(str, getattr(node, "__notes__", []))]
        node = node.__cause__ or node.__context__
    return "\n".join(parts)


_mongo_kit: Any = None


def mongo_kit() -> Any:
    """The MongoDB tests' launcher (tests/backends/mongo/conftest.py: ``launch``, ``TEST_WRITE_BATCH``, fixtures).

    Suites outside tests/backends/mongo start their own mongoeco server with it
    (``mongo_kit().launch("mongoeco-<suite>")``); loaded once, under one name.
    """
    global _mongo_kit
    if _mongo_kit is None:
        path = Path(__file__).resolve().parent / "backends" / "mongo" / "conftest.py"
        spec = importlib.util.spec_from_file_location("tensordb_tests_mongo_kit", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        _mongo_kit = module
    return _mongo_kit


def every_backend_fixtures(suite: str) -> tuple[Any, Any]:
    """``(<suite>_mongo, <suite>_uri)``: a suite's session MongoDB server and a fresh warehouse URI per backend.

    Why one factory: the lifecycle and tracking suites (and any suite that must
    hold on memory, a local directory and MongoDB alike) need the same two
    fixtures; a conftest binds them by name (``lifecycle_mongo, lifecycle_uri =
    every_backend_fixtures("lifecycle")``).  Each URI names a fresh database.
    """
    import uuid

    import pytest

    @pytest.fixture(scope="session", name=f"{suite}_mongo")
    def suite_mongo() -> Iterator[str]:
        kit = mongo_kit()
        server = kit.launch(f"mongoeco-{suite}")
        try:
            yield (f"mongodb://127.0.0.1:{server.port}/{suite[0]}_{{}}?directConnection=true"
                   f"&write_batch_size={kit.TEST_WRITE_BATCH}")
        finally:
            server.stop()

    @pytest.fixture(params=["memory", "dir", "mongo"], name=f"{suite}_uri")
    def suite_uri(request: Any, tmp_path: Path) -> str:
        """A fresh warehouse on each backend."""
        if request.param == "memory":
            return f"memory://{suite}-{uuid.uuid4().hex}"
        if request.param == "dir":
            return str(tmp_path / "warehouse")
        return request.getfixturevalue(f"{suite}_mongo").format(uuid.uuid4().hex[:12])

    return suite_mongo, suite_uri
