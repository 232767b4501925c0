"""Credentials per store, never shown: against a moto server that enforces IAM authentication.

``alice`` may use S3, ``bob`` has no permissions; both are real IAM users on the
server, so a store's success or denial proves which credentials it signed with.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from pathlib import Path

import pytest
from s3kit import REGION

import tensordb_core as tdb
from tensordb_core.errors import BackendUnavailable, BlobNotFound, PermissionDenied, TensorDBError

pytestmark = pytest.mark.s3


def uri_for(server, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"s3://{server.bucket}/t-{uuid.uuid4().hex}?endpoint_url={server.endpoint}&region={REGION}{extra}"


def creds(server, user: str) -> dict[str, str]:
    key_id, secret = server.users[user]
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}


def full_text(exc: BaseException) -> str:
    """Everything a traceback would print, the chained driver errors included."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_two_stores_in_one_process_use_their_own_credentials(moto_auth_server) -> None:
    alice = tdb.open_blobs(uri_for(moto_auth_server), **creds(moto_auth_server, "alice"))
    bob = tdb.open_blobs(uri_for(moto_auth_server), **creds(moto_auth_server, "bob"))
    try:
        alice.put("k", b"alice was here")
        with pytest.raises(PermissionDenied):
            bob.put("k", b"bob was here")
        alice.put("k2", b"still alice")  # bob's failure did not change alice's client
        assert alice.get("k2") == b"still alice"
        with pytest.raises(PermissionDenied):
            bob.get("k")
    finally:
        alice.close()
        bob.close()


def test_per_store_options_beat_process_wide_environment(monkeypatch: pytest.MonkeyPatch, moto_auth_server) -> None:
    bob_id, bob_secret = moto_auth_server.users["bob"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", bob_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bob_secret)
    with tdb.open_blobs(uri_for(moto_auth_server)) as from_env, pytest.raises(PermissionDenied):
        from_env.put("k", b"x")  # bob, from the environment
    with tdb.open_blobs(uri_for(moto_auth_server), **creds(moto_auth_server, "alice")) as from_options:
        from_options.put("k", b"x")
        assert from_options.get("k") == b"x"


def test_a_named_profile_from_the_shared_credentials_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_auth_server
) -> None:
    alice_id, alice_secret = moto_auth_server.users["alice"]
    bob_id, bob_secret = moto_auth_server.users["bob"]
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {bob_id}\naws_secret_access_key = {bob_secret}\n"
        f"[lab]\naws_access_key_id = {alice_id}\naws_secret_access_key = {alice_secret}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with tdb.open_blobs(uri_for(moto_auth_server, profile="lab")) as lab:
        lab.put("k", b"via profile")
        assert lab.get("k") == b"via profile"
    with tdb.open_blobs(uri_for(moto_auth_server)) as default, pytest.raises(PermissionDenied):
        default.put("k", b"x")
    monkeypatch.setenv("AWS_PROFILE", "lab")  # boto3's standard variable picks the profile too
    with tdb.open_blobs(uri_for(moto_auth_server)) as via_env:
        via_env.put("k", b"via AWS_PROFILE")


def test_a_missing_profile_is_a_clear_error(moto_auth_server) -> None:
    with pytest.raises(PermissionDenied, match="nosuchprofile"):
        tdb.open_blobs(uri_for(moto_auth_server, profile="nosuchprofile"))


def test_wrong_secret_is_denied_and_never_shown(moto_auth_server, caplog: pytest.LogCaptureFixture) -> None:
    alice_id, _ = moto_auth_server.users["alice"]
    wrong_secret = "Wr0ngSecretValue-" + uuid.uuid4().hex
    token = "S3ss10nT0ken-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG, logger="tensordb_s3")
    uri = uri_for(moto_auth_server, aws_access_key_id=alice_id, aws_secret_access_key=wrong_secret)
    store = tdb.open_blobs(uri, aws_session_token=None)
    texts = [repr(store), str(store), repr(store.uri), str(store.uri), repr(store.config)]
    errors: list[BaseException] = []
    for call in (lambda: store.put("k", b"x"), lambda: store.get("k"), lambda: list(store.list())):
        with pytest.raises(PermissionDenied) as info:
            call()
        errors.append(info.value)
    store.close()
    explicit = tdb.open_blobs(
        uri_for(moto_auth_server),
        aws_access_key_id=alice_id,
        aws_secret_access_key=wrong_secret,
        aws_session_token=token,
    )
    with pytest.raises(PermissionDenied) as info:
        explicit.get("k")
    errors.append(info.value)
    texts += [repr(explicit), str(explicit), repr(explicit.config)]
    explicit.close()
    texts += [full_text(e) for e in errors] + [r.getMessage() for r in caplog.records]
    for text in texts:
        assert wrong_secret not in text, text
        assert token not in text, text
        assert alice_id not in text, text


def test_secrets_stay_out_of_not_found_and_unavailable_errors(s3_endpoint: str, s3_bucket: str) -> None:
    from serverkit import free_port

    secret = "N0tF0undSecret-" + uuid.uuid4().hex
    key_id = "AKIA" + uuid.uuid4().hex[:16].upper()
    found = tdb.open_blobs(
        f"s3://{s3_bucket}/t-{uuid.uuid4().hex}?endpoint_url={s3_endpoint}&region={REGION}"
        f"&aws_access_key_id={key_id}&aws_secret_access_key={secret}"
    )
    with pytest.raises(BlobNotFound) as missing:
        found.get("absent")
    found.close()
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable) as down:
        tdb.open_blobs(
            f"s3://{s3_bucket}/p?endpoint_url={dead}&max_attempts=1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
    for exc in (missing.value, down.value):
        assert isinstance(exc, TensorDBError)
        text = full_text(exc)
        assert secret not in text and key_id not in text, text
