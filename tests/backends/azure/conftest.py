"""Fixtures for the Azure backend: Azurite (Microsoft's Blob Storage emulator) on a free port.

One server per session, started through ``tests/serverkit.py`` and stopped by
PID; each test works under its own prefix of one container.  A missing
``azurite-blob`` is an error with the npm command, never a skip.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from azurekit import ACCOUNT_KEY, CONTAINER, admin_client, endpoint_of, start_azurite

from serverkit import Server, clear_environment, serve


@pytest.fixture(autouse=True)
def _isolated_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's Azure settings (connection strings, keys, identities) out of every test."""
    clear_environment(monkeypatch, ("AZURE_", "MSI_", "IDENTITY_"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(start_azurite(str(tmp_path_factory.mktemp("azurite"))))


@pytest.fixture(scope="session")
def azure_endpoint(azurite: Server) -> str:
    return endpoint_of(azurite)


@pytest.fixture(scope="session")
def azure_container(azure_endpoint: str) -> str:
    """The session's container; each test works under its own prefix in it."""
    with admin_client(azure_endpoint) as client:
        client.create_container(CONTAINER)
    return CONTAINER


@pytest.fixture
def azure_prefix() -> str:
    return f"t-{uuid.uuid4().hex}"


@pytest.fixture
def azure_uri(azure_endpoint: str, azure_container: str, azure_prefix: str) -> str:
    """``az://container/<unique prefix>?endpoint=...`` for one test (pass ``account_key`` with it)."""
    return f"az://{azure_container}/{azure_prefix}?endpoint={azure_endpoint}"


@pytest.fixture
def azure_key() -> dict[str, str]:
    """Per-store credentials Azurite accepts."""
    return {"account_key": ACCOUNT_KEY}
