"""Helpers for the S3 backend tests (a uniquely named module: several test folders have a conftest)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from serverkit import Server, free_port, require_executable, start_server

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
MOTO_HINT = "pip install 'moto[s3]' flask flask-cors"
REGION = "us-east-1"
#: Credentials the open server accepts (any would do); the tests pass them per store.
OPEN_CREDENTIALS = {"aws_access_key_id": "open-key-id", "aws_secret_access_key": "open-secret-value"}
BUCKET = "tensordb-test"


def start_moto(name: str) -> Server:
    exe = require_executable(MOTO_SERVER, MOTO_HINT)
    port = free_port()
    return start_server(name, [exe, "-H", "127.0.0.1", "-p", str(port)], port)


def admin_client(endpoint: str, access_key_id: str = "admin", secret: str = "admin", service: str = "s3") -> Any:
    """A plain boto3 client that seeds and peeks at the server without going through the store under test."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}),
    )
