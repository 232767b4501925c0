"""Credentials never show: not in ``repr``, logs (DEBUG, every library), exceptions and their chains, or CLI output.

One case per kind of secret, each used through the warehouse API (``connect``,
the retrying wrappers, check/gc) and the ``tensordb`` command, on a real
server on 127.0.0.1, both when things work and when they fail (a dead
endpoint, a refused password, a dead token service):

* MongoDB: the password in the URI (a SCRAM-authenticating mongoeco);
* S3: the secret access key in the blob URI (moto);
* Azure: the account key in the blob URI (Azurite);
* GCS: the client secret and refresh token of a credentials file (token service down).
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import pytest

import tensordb_core as tdb
from serverkit import mongo_kit
from tensordb_core.cli.main import main as cli_main
from tensordb_core.errors import TensorDBError
from tensordb_core.warehouse.maintenance import check, gc

TESTS = Path(__file__).resolve().parent
for sub in ("", "backends/s3", "backends/azure"):
    if str(TESTS / sub) not in sys.path:
        sys.path.insert(0, str(TESTS / sub))

from azurekit import ACCOUNT_KEY, endpoint_of, start_azurite
from azurekit import admin_client as azure_admin
from s3kit import BUCKET, REGION, start_moto
from s3kit import admin_client as s3_admin

from serverkit import dead_port, exception_texts

pytestmark = pytest.mark.timeout(180)
S3_SECRET = "s3-Secret-Access-Key-7f3a9"
GCS_CLIENT_SECRET = "gcs-client-secret-91be2"
GCS_REFRESH_TOKEN = "gcs-refresh-token-55d0c"
FAST = {"attempts": 2, "initial_delay_s": 0.01, "max_delay_s": 0.02, "total_s": 5}


def _mongo_kit() -> Any:
    return mongo_kit()


@dataclass
class Case:
    index: str
    blobs: str | None
    secrets: list[str]
    dead_index: str
    dead_blobs: str | None
    blob_options: dict[str, Any] = field(default_factory=dict)
    works: bool = True  # False: even the "live" configuration can only fail (the token service is down)

    def forms(self) -> list[str]:
        """Each secret as written and as URL-encoded (how it travels inside a URI)."""
        return sorted({f for s in self.secrets for f in (s, quote(s, safe=""), quote_plus(s))})


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    kit = _mongo_kit()
    started = []
    try:
        started.append(kit.launch("mongoeco-auth-sec", "--user", kit.AUTH_USER, "--auth-db", kit.AUTH_SOURCE,
                                  env={"MONGOECO_PASSWORD": kit.AUTH_PASSWORD}))
        started.append(start_moto("moto-sec"))
        s3_admin(f"http://127.0.0.1:{started[1].port}").create_bucket(Bucket=BUCKET)
        started.append(start_azurite(str(tmp_path_factory.mktemp("azurite-sec")), "azurite-sec"))
        with azure_admin(endpoint_of(started[2])) as client:
            client.create_container("sec")
        yield {"kit": kit, "mongo": started[0], "moto": started[1], "azurite": started[2]}
    finally:
        for server in started:
            server.stop()


@pytest.fixture(params=["mongo-password", "s3-secret", "azure-key", "gcs-token"])
def case(request: pytest.FixtureRequest, servers: dict[str, Any], tmp_path: Path) -> Case:
    kit, dead = servers["kit"], dead_port()
    sqlite = f"sqlite:///{tmp_path}/idx.sqlite"
    if request.param == "mongo-password":
        auth = f"{kit.AUTH_USER}:{quote(kit.AUTH_PASSWORD, safe='')}"
        tail = f"/{kit.AUTH_DB}?{kit.AUTH_OPTIONS}&directConnection=true&serverSelectionTimeoutMS=800"
        return Case(f"mongodb://{auth}@127.0.0.1:{servers['mongo'].port}{tail}", None, [kit.AUTH_PASSWORD],
                    f"mongodb://{auth}@127.0.0.1:{dead}{tail}".replace("=800", "=200"), None)
    if request.param == "s3-secret":
        def s3(port: int) -> str:
            return (f"s3://{BUCKET}/sec-{uuid.uuid4().hex}?endpoint_url=http://127.0.0.1:{port}&region={REGION}"
                    f"&aws_access_key_id=sec-key&aws_secret_access_key={S3_SECRET}&max_attempts=1&connect_timeout=1")
        return Case(sqlite, s3(servers["moto"].port), [S3_SECRET], sqlite, s3(dead))
    if request.param == "azure-key":
        def az(endpoint: str) -> str:
            return f"az://sec/p-{uuid.uuid4().hex}?endpoint={endpoint}&account_key={quote(ACCOUNT_KEY, safe='')}"
        return Case(sqlite, az(endpoint_of(servers["azurite"])), [ACCOUNT_KEY], sqlite,
                    az(f"http://127.0.0.1:{dead}/devstoreaccount1") + "&max_attempts=1&connect_timeout=1")
    key_file = tmp_path / "adc.json"
    key_file.write_text(json.dumps({"type": "authorized_user", "client_id": "sec.apps.googleusercontent.com",
                                    "client_secret": GCS_CLIENT_SECRET, "refresh_token": GCS_REFRESH_TOKEN,
                                    "token_uri": f"http://127.0.0.1:{dead}/token"}))
    gs = f"gs://sec-bucket/p?emulator_host=http://127.0.0.1:{dead}&check_bucket=false&retry_timeout=0&connect_timeout=1"
    return Case(sqlite, gs, [GCS_CLIENT_SECRET, GCS_REFRESH_TOKEN], sqlite, gs,
                blob_options={"credentials": str(key_file)}, works=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_secrets_never_show_anywhere(case: Case, caplog: pytest.LogCaptureFixture, capsys, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    blob_args = ["--blobs", case.blobs] if case.blobs else []
    if case.works:
        with tdb.connect(case.index, "sec", blobs=case.blobs, blob_options=case.blob_options, retry=FAST) as db:
            shown += [repr(db), str(db), repr(db.index), repr(db.blobs), str(db.index.uri), str(db.blobs.uri),
                      repr(db.scope)]
            X = np.arange(24, dtype=np.float32).reshape(6, 4)
            db.import_data(X, np.arange(6), {"k": "v"})
            assert np.array_equal(db.find_data().arrays()[0], X)
            pid = db.save_parameters({"w": X}, metrics={"acc": 0.5})
            db.load_parameters(db.find_parameter_docs({"_id": pid})[0])
            shown += [repr(check(db.index, db.blobs)), repr(gc(db.index, db.blobs, dry_run=True))]
            with pytest.raises(TensorDBError) as missing:
                db.blobs.get("0" * 64)
            shown.append(exception_texts(missing.value))
        for command in (["check"], ["find", "{}"], ["jobs"], ["gc", "--dry-run"]):
            code, out = cli(capsys, *command, "--uri", case.index, *blob_args, "--study", "sec")
            assert code == 0, out
            shown.append(out)
    with pytest.raises(TensorDBError) as failed, tdb.connect(
            case.dead_index, "sec", blobs=case.dead_blobs, blob_options=case.blob_options, retry=FAST) as db:
        db.import_data(np.zeros((2, 2), np.float32))
        list(db.blobs.list())
    shown.append(exception_texts(failed.value))
    if case.blob_options.get("credentials"):
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", case.blob_options["credentials"])
    for command in (["check"], ["gc"]):
        code, out = cli(capsys, *command, "--uri", case.dead_index, *(["--blobs", case.dead_blobs] if case.dead_blobs
                                                                      else []), "--study", "sec")
        assert code != 0 and "error" in out.lower(), out
        shown.append(out)
    shown.append(caplog.text)
    everything = "\n".join(shown)
    assert len(everything) > 500, "the test must have looked at real output"
    leaked = [form for form in case.forms() if form in everything]
    assert leaked == [], f"secret shown: {leaked}"
