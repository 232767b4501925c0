"""The s3 plugin registers like a third-party one, stays light, and says how to install boto3."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tensordb_core as tdb
from tensordb_core.errors import MissingDependency


def test_s3_is_a_blob_scheme_with_an_install_hint() -> None:
    (info,) = [s for s in tdb.list_schemes() if s.scheme == "s3"]
    assert info.blobs and not info.index
    assert info.install_hint == "pip install 'tensordb[s3]'"
    assert info.source == "s3"


def test_s3_offers_no_index_and_no_default_blobs() -> None:
    with pytest.raises(tdb.UnknownScheme):
        tdb.open_index("s3://bkt/p")
    with pytest.raises(tdb.InvalidURI):
        tdb.default_blobs("s3://bkt/p")


def test_discovering_plugins_does_not_import_boto3() -> None:
    code = (
        "import sys, tensordb_core as t, tensordb_s3, tensordb_s3.plugin\n"
        "assert any(s.scheme == 's3' for s in t.list_schemes())\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 's3transfer') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_boto3_raises_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "tensordb_s3.store", raising=False)  # as if never imported in this process
    monkeypatch.delitem(sys.modules, "tensordb_s3.client", raising=False)
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an environment without the extra looks like
    with pytest.raises(MissingDependency) as info:
        tdb.open_blobs("s3://bkt/p?endpoint_url=http://127.0.0.1:9")
    assert "pip install 'tensordb[s3]'" in str(info.value) and "boto3" in str(info.value)
    assert isinstance(info.value, ImportError)
