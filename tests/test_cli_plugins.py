"""``tensordb plugins`` says which schemes can be used here and which extra installs the others."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from tensordb_core.cli import plugins
from tensordb_core.cli.main import main
from tensordb_core.store.hookspecs import SchemeInfo
from tensordb_core.store.registry import list_schemes

ROOT = Path(__file__).resolve().parents[1]


def _row(out: str, scheme: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(scheme + " "))


def test_a_missing_client_library_names_its_extra(monkeypatch, capsys):
    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        if name == "boto3":
            return None
        if name.startswith("google"):
            raise ModuleNotFoundError(f"No module named {name!r}", name="google")
        return real(name, *a, **k)

    monkeypatch.setattr(plugins.importlib.util, "find_spec", find_spec)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "no: pip install 'tensordb[s3]'" in _row(out, "s3")
    assert "no: pip install 'tensordb[gcs]'" in _row(out, "gs")
    assert "  yes " in _row(out, "mongodb") and "  yes " in _row(out, "file")


def test_every_shipped_extra_is_checked_against_a_real_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    shipped = {s.extra for s in list_schemes() if s.source in ("mongo", "s3", "gcs", "azure")}
    assert shipped == set(plugins.EXTRA_MODULES)
    assert set(plugins.EXTRA_MODULES) <= set(extras)


def test_third_party_extras_are_not_claimed_usable():
    assert plugins.client_status(SchemeInfo("kv", blobs="my_pkg.store:KV", extra="kv")).startswith("not checked")
    assert plugins.client_status(SchemeInfo("kv", blobs="my_pkg.store:KV")) == "yes"
