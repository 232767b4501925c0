"""A follower misses no sample of an all-or-nothing import, even with importers racing (issue 15, item 3)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tensordb_core as tdb


@pytest.fixture(params=["dir", "mongo"])
def follow_uri(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "dir":
        return str(tmp_path / "warehouse")
    import uuid

    base = request.getfixturevalue("lifecycle_mongo").format(uuid.uuid4().hex[:12])
    return base + "&tail_grace_s=1"


def test_a_follower_sees_every_committed_sample_once(follow_uri: str) -> None:
    importers, calls, n = 2, 4, 30
    expected = sorted(range(importers * calls * n))
    with tdb.connect(follow_uri, study="s") as db:
        db.import_data(np.full((1, 2), -1, np.float32), [-1])  # the follower starts after this one
        stream = db.data_generator(batch_size=8, follow=True, shuffle=False, poll_s=0.05)
        seen: list[int] = []

        def follow() -> None:
            for _, y in stream:
                seen.extend(int(v) for v in y)
                if len([v for v in seen if v >= 0]) >= len(expected):
                    return

        reader = threading.Thread(target=follow)
        reader.start()

        def importer(k: int) -> None:
            with tdb.connect(follow_uri, study="s") as own:
                for c in range(calls):
                    labels = np.arange(n) + (k * calls + c) * n
                    own.import_data(np.repeat(labels[:, None], 2, axis=1).astype(np.float32), labels, chunk_bytes=64,
                                    key=f"{k}-{c}")

        writers = [threading.Thread(target=importer, args=(k,)) for k in range(importers)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(60)
        reader.join(30)
        stream.close()
        assert sorted(v for v in seen if v >= 0) == expected
        assert len(db.find_data()) == len(expected) + 1
