"""The deployer's HTTP endpoint under hostile clients: stalled requests, no token, bad ports (issue 20, item 8)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

import tensordb_core as tdb
from tensordb_core.errors import BackendUnavailable, InvalidQuery, UnsafeOperation
from tensordb_core.loop.deployer import Deployer, serve_http


@pytest.fixture
def deployer(tmp_path):
    with tdb.connect(tmp_path / "w", study="s") as db:
        yield Deployer(db)


def get(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        json.load(exc)  # errors are JSON too
        return exc.code


def test_stalled_clients_are_dropped_and_others_answered_meanwhile(deployer) -> None:
    server = serve_http(deployer, timeout_s=0.5)
    host, port = server.server_address[:2]
    try:
        stalled = []
        for _ in range(50):  # each promises a body it never sends
            s = socket.create_connection((host, port))
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            stalled.append(s)
        began = time.monotonic()
        assert get(f"http://{host}:{port}/model") == 200  # answered while 50 requests stall
        assert time.monotonic() - began < 5
        for s in stalled:  # and each stalled connection is closed by the server after the timeout
            s.settimeout(10)
            assert s.recv(1024) == b""
            s.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_guards_every_path_but_healthz(deployer) -> None:
    server = serve_http(deployer, token="t0ken")
    url = "http://%s:%d" % server.server_address[:2]
    try:
        assert get(f"{url}/model") == 401
        assert get(f"{url}/model", {"Authorization": "Bearer wrong"}) == 401
        assert get(f"{url}/model", {"Authorization": "Bearer t0ken"}) == 200
        assert get(f"{url}/healthz") == 503  # no model yet, but no token needed to ask
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_comes_from_the_environment(deployer, monkeypatch) -> None:
    monkeypatch.setenv("TENSORDB_HTTP_TOKEN", "from-env")
    server = serve_http(deployer)
    url = "http://%s:%d" % server.server_address[:2]
    try:
        assert get(f"{url}/model") == 401
        assert get(f"{url}/model", {"Authorization": "Bearer from-env"}) == 200
    finally:
        server.shutdown()
        server.server_close()


def test_beyond_loopback_needs_a_token(deployer) -> None:
    with pytest.raises(UnsafeOperation, match="TENSORDB_HTTP_TOKEN"):
        serve_http(deployer, host="0.0.0.0")


@pytest.mark.parametrize("port", [99999, -1, "80", 1.5])
def test_bad_ports_are_typed_errors(deployer, port) -> None:
    with pytest.raises(InvalidQuery):
        serve_http(deployer, port=port)


def test_a_taken_port_is_a_typed_error(deployer) -> None:
    server = serve_http(deployer)
    try:
        with pytest.raises(BackendUnavailable, match="cannot listen"):
            serve_http(deployer, port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
