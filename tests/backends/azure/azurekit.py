"""Helpers for the Azure backend tests (a uniquely named module: several test folders have a conftest)."""

from __future__ import annotations

import os
from typing import Any

from serverkit import REPO, Server, free_port, require_executable, start_server

CONTAINER = "tensordb-test"
ACCOUNT = "devstoreaccount1"
#: Azurite's published development key (documented by Microsoft; not a secret, but treated as one in tests).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALL_HINT = "mkdir -p .azurite && (cd .azurite && npm install --no-audit --no-fund azurite)"
#: Lowered thresholds so a few MiB go up as several staged blocks (the default single put is 64 MiB).
SMALL_UPLOADS = {"max_single_put_size": 1024 * 1024, "max_block_size": 512 * 1024}


def azurite_binary() -> str:
    """``azurite-blob`` from ``TENSORDB_AZURITE_BIN`` or ``<repo>/.azurite``; fails with the install command."""
    path = os.environ.get("TENSORDB_AZURITE_BIN") or str(REPO / ".azurite" / "node_modules" / ".bin" / "azurite-blob")
    return require_executable(path, INSTALL_HINT)


def start_azurite(location: str, name: str = "azurite") -> Server:
    """Azurite's blob service on a free loopback port.

    ``--skipApiVersionCheck``: azure-storage-blob sends API versions newer than
    Azurite knows, which it would otherwise refuse with 400 InvalidHeaderValue.
    """
    port = free_port()
    argv = [
        azurite_binary(),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        location,
        "--skipApiVersionCheck",
        "--silent",
    ]
    return start_server(name, argv, port)


def endpoint_of(server: Server) -> str:
    """The account URL (Azurite serves accounts path-style: http://host:port/account)."""
    return f"http://127.0.0.1:{server.port}/{ACCOUNT}"


def connection_string(endpoint: str, key: str = ACCOUNT_KEY) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"


def admin_client(endpoint: str) -> Any:
    """A plain azure-storage-blob client that seeds and peeks at Azurite, bypassing the store under test."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(connection_string(endpoint))
