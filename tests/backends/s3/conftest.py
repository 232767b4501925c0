"""Real S3 REST servers for the S3 backend tests: moto_server on free loopback ports.

Two servers per session: an open one (any credentials accepted) for the
conformance suite and most tests, and one with IAM authentication enforced, so
tests can prove which credentials a store really signs with.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from s3kit import BUCKET, OPEN_CREDENTIALS, REGION, admin_client, start_moto

from serverkit import Server, clear_environment, serve


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the developer's AWS settings (env, ~/.aws, instance metadata) out of every test."""
    clear_environment(monkeypatch, ("AWS_",))
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    """moto_server on a free loopback port, accepting any credentials."""
    yield from serve(start_moto("moto-s3"))


@pytest.fixture(scope="session")
def s3_endpoint(moto_server: Server) -> str:
    return f"http://127.0.0.1:{moto_server.port}"


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    """The session's bucket; each test works under its own prefix in it."""
    admin_client(s3_endpoint).create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def s3_credentials() -> dict[str, str]:
    """Per-store credentials the open server accepts."""
    return dict(OPEN_CREDENTIALS)


@pytest.fixture
def s3_uri(s3_endpoint: str, s3_bucket: str) -> str:
    """``s3://bucket/<unique prefix>?endpoint_url=...`` for one test."""
    return f"s3://{s3_bucket}/t-{uuid.uuid4().hex}?endpoint_url={s3_endpoint}&region={REGION}"


@dataclass(frozen=True)
class AuthServer:
    """A moto server enforcing IAM: ``users`` maps a name to its (access key id, secret)."""

    endpoint: str
    bucket: str
    users: dict[str, tuple[str, str]]


@pytest.fixture(scope="session")
def moto_auth_server() -> Iterator[AuthServer]:
    """moto_server with authentication on: ``alice`` may use S3, ``bob`` exists but has no permissions."""
    server = start_moto("moto-s3-auth")
    endpoint = f"http://127.0.0.1:{server.port}"
    try:
        admin_client(endpoint).create_bucket(Bucket=BUCKET)
        iam = admin_client(endpoint, service="iam")
        users: dict[str, tuple[str, str]] = {}
        allow_s3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        for user, allowed in (("alice", True), ("bob", False)):
            iam.create_user(UserName=user)
            if allowed:
                iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(allow_s3))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        # From now on every request must be signed by a known user (moto's test-server switch).
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.load(reply)["status"] == "ok"
        yield AuthServer(endpoint, BUCKET, users)
    finally:
        server.stop()
