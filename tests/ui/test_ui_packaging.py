"""The UI ships whole and offline: vendored chart library as pinned, static files in the package, no CDN; and
``tensordb ui`` serves a warehouse (and refuses to serve it beyond loopback without a token)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tensordb_core.cli.main import main
from tensordb_core.cli.ui import check_binding, is_loopback
from tensordb_core.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "tensordb_core" / "ui"
VENDOR = UI / "static" / "vendor"


def test_vendored_files_match_the_pinned_hashes() -> None:
    record = json.loads((VENDOR / "vendor.json").read_text())
    assert record["package"] == "uplot" and re.fullmatch(r"\d+\.\d+\.\d+", record["version"])
    assert record["npm_integrity"].startswith("sha512-")
    vendored = {p.name for p in VENDOR.iterdir()} - {"vendor.json"}
    assert vendored == set(record["sha256"]) and "uPlot.LICENSE" in vendored
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} differs from vendor.json"
    assert f"UPLOT_VERSION:-{record['version']}" in (UI / "vendor.sh").read_text()  # the script pins the same one


def test_pages_load_nothing_from_the_internet() -> None:
    page = (UI / "static" / "page.html").read_text()
    assert "/static/vendor/uPlot.iife.min.js" in page and "/static/vendor/uPlot.min.css" in page
    for path in (UI / "static").glob("*.*"):
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", path.read_text()), path.name
        assert "cdn" not in path.read_text().lower(), path.name


def test_package_data_ships_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "tensordb_core.ui" in config["packages"]
    patterns = config["package-data"]["tensordb_core.ui"]
    shipped = [p.relative_to(UI).as_posix() for p in (UI / "static").rglob("*") if p.is_file()]
    assert shipped and all(any(fnmatch(f, pat) for pat in patterns) for f in shipped), shipped


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.4", False), ("example.org", False)])
def test_only_loopback_binds_without_a_token(host, loopback) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_binding(host, None)
    else:
        with pytest.raises(InvalidArgument, match="--token"):
            check_binding(host, None)
        check_binding(host, "a-token")


def test_cli_refuses_a_public_host_without_token(filled, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TENSORDB_UI_TOKEN", raising=False)
    assert main(["ui", "--uri", filled[0], "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err


@pytest.mark.parametrize("token", ["cli-token", None])
def test_cli_serves_the_warehouse(filled, token) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if k != "TENSORDB_UI_TOKEN"}
    if token:
        env["TENSORDB_UI_TOKEN"] = token
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    proc = subprocess.Popen([sys.executable, "-m", "tensordb_core.cli", "ui", "--uri", filled[0], "--study",
                             "vision", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def get(path: str, **headers: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={**auth, **headers})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        deadline, answer = time.monotonic() + 20, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = get("/api/info")
            except OSError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.1)
        assert answer is not None, "tensordb ui did not answer within 20 s"
        assert answer[0] == 200 and answer[1]["default_study"] == "vision"
        assert answer[1]["token_required"] is bool(token)
        if token:
            auth.clear()
            assert get("/api/studies")[0] == 401
        else:  # no token: only loopback names are answered (a rebound DNS name is refused)
            assert get("/api/studies", Host="evil.example:80")[0] == 400
            assert get("/api/studies", Host=f"localhost:{port}")[0] == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
