"""Fixtures for the GCS backend: fake-gcs-server (the real Go emulator of the JSON API) on a free port.

One server per session, started through ``tests/serverkit.py`` and stopped by
PID; each test works under its own prefix of one bucket.  A missing binary is
an error with the install command, never a skip.
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

from gcskit import BUCKET, admin_client, start_fake_gcs

from serverkit import Server, clear_environment, serve


@pytest.fixture(autouse=True)
def _isolated_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's Google settings (emulator host, ADC, project) out of every test."""
    clear_environment(
        monkeypatch, ("GOOGLE_", "GCLOUD_", "CLOUDSDK_"), ("STORAGE_EMULATOR_HOST", "API_ENDPOINT_OVERRIDE")
    )
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never probe a metadata server from tests


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[Server]:
    yield from serve(start_fake_gcs())


@pytest.fixture(scope="session")
def gcs_endpoint(fake_gcs: Server) -> str:
    return f"http://127.0.0.1:{fake_gcs.port}"


@pytest.fixture(scope="session")
def gcs_bucket(gcs_endpoint: str) -> str:
    """The session's bucket; each test works under its own prefix in it."""
    client = admin_client(gcs_endpoint)
    client.create_bucket(BUCKET)
    client.close()
    return BUCKET


@pytest.fixture
def gcs_prefix() -> str:
    return f"t-{uuid.uuid4().hex}"


@pytest.fixture
def gcs_uri(gcs_endpoint: str, gcs_bucket: str, gcs_prefix: str) -> str:
    """``gs://bucket/<unique prefix>?emulator_host=...`` for one test."""
    return f"gs://{gcs_bucket}/{gcs_prefix}?emulator_host={gcs_endpoint}"
