"""A work queue in the index store: atomic claims, leases with heartbeats, fencing, retries.

States: ``queued`` → ``running`` → ``done`` | back to ``queued`` (failure with
attempts left, or an expired lease) | ``dead`` (out of attempts; its errors are
kept).  A claim is one ``find_one_and_update`` — atomic on every backend — that
also takes over jobs whose lease expired.  Each claim increments the job's
``token`` (a fencing token): a worker whose lease was taken over holds a stale
token, and its heartbeat/complete/fail raise :class:`LeaseLost` instead of
overwriting the new owner's work.  Leases compare wall clocks: keep worker
clocks in sync (NTP) to well within the lease length.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidArgument, InvalidDocument, LeaseLost
from tensordb_core.store.scope import StudyScope, check_json_value, check_tags
from tensordb_core.warehouse.arguments import check_optional_name, query_dict

COLLECTION = "jobs"
RESERVED = frozenset({"spec", "status", "attempts", "attempts_left", "max_attempts", "lease_until", "worker",
                      "token", "errors", "result", "priority", "started", "finished", "heartbeat", "run"})
STATES = ("queued", "running", "done", "dead")


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def push_job(scope: StudyScope, spec: Any, tags: Mapping[str, Any] | None = None, *,
             max_attempts: int = 3, priority: int = 0, run: str | None = None) -> str:
    """Queue a job; ``spec`` is data (a dict or string), never code to execute.

    ``run`` is the run the job was queued from (the handle's active run), kept for lineage.
    """
    scope.require_writable()
    if type(max_attempts) is not int or max_attempts < 1:
        raise InvalidDocument(f"max_attempts must be an int of at least 1, not {max_attempts!r}")
    if type(priority) is not int or abs(priority) > 2**53:
        raise InvalidDocument(f"priority must be an int (higher runs first), not {priority!r}")
    doc = scope.new_doc(spec=check_json_value(spec, "spec"), status="queued", attempts=0,
                        attempts_left=int(max_attempts), max_attempts=int(max_attempts), priority=int(priority),
                        lease_until=None, worker=None, token=0, errors=[], result=None, run=run,
                        **check_tags(tags, RESERVED))
    return scope.index.insert_many(COLLECTION, [doc])[0]


def bury_exhausted(scope: StudyScope, now: float) -> int:
    """Mark ``dead`` the running jobs whose lease expired with no attempts left."""
    q = scope.query({"status": "running", "lease_until": {"$lt": now}, "attempts_left": {"$lte": 0}})
    return scope.index.update_many(COLLECTION, q, {"$set": {"status": "dead", "finished": now},
                                                   "$push": {"errors": {"error": "lease expired (worker lost)",
                                                                        "at": now}}})


def pop_job(scope: StudyScope, query: Mapping[str, Any] | None = None, *, lease_s: float = 60.0,
            worker: str | None = None) -> Job | None:
    """Claim one job atomically (highest priority, then oldest), or return None when none is claimable."""
    scope.require_writable()
    if not _positive_seconds(lease_s):
        raise InvalidArgument(f"lease_s must be a positive number of seconds, not {lease_s!r}")
    wanted = query_dict(query)
    who = check_optional_name(worker, "worker") or default_worker_name()
    now = time.time()
    bury_exhausted(scope, now)
    claimable = {"$and": [
        wanted,
        {"attempts_left": {"$gt": 0}},
        {"$or": [{"status": "queued"}, {"status": "running", "lease_until": {"$lt": now}}]},
    ]}
    doc = scope.index.find_one_and_update(
        COLLECTION, scope.query(claimable),
        {"$set": {"status": "running", "worker": who, "lease_until": now + lease_s, "started": now,
                  "heartbeat": now},
         "$inc": {"token": 1, "attempts": 1, "attempts_left": -1}},
        sort=[("priority", -1), ("_seq", 1)],
    )
    return None if doc is None else Job(scope, doc, lease_s)


@dataclass
class Job:
    """A claimed job.  Its methods are fenced by the claim's token."""

    scope: StudyScope = field(repr=False)
    doc: dict[str, Any]
    lease_s: float

    @property
    def id(self) -> str:
        return self.doc["_id"]

    @property
    def spec(self) -> Any:
        return self.doc["spec"]

    @property
    def token(self) -> int:
        return self.doc["token"]

    @property
    def tags(self) -> dict[str, Any]:
        return {k: v for k, v in self.doc.items() if not k.startswith("_") and k not in RESERVED}

    def _fenced(self, update: Mapping[str, Any], what: str) -> None:
        q = self.scope.query({"_id": self.id, "token": self.token, "status": "running"})
        doc = self.scope.index.find_one_and_update(COLLECTION, q, update)
        if doc is None:
            raise LeaseLost(f"job {self.id}: cannot {what}, its lease (token {self.token}) was taken over or ended")
        self.doc = doc

    def heartbeat(self) -> None:
        """Extend the lease; raises :class:`LeaseLost` if another worker has taken the job over."""
        now = time.time()
        self._fenced({"$set": {"lease_until": now + self.lease_s, "heartbeat": now}}, "heartbeat")

    def complete(self, result: Any = None) -> None:
        """Finish the job, storing ``result`` (JSON-like)."""
        self._fenced({"$set": {"status": "done", "result": check_json_value(result, "result"),
                               "finished": time.time(), "lease_until": None}}, "complete")

    def fail(self, reason: str, *, retry: bool = True) -> None:
        """Record a failure; requeue while attempts remain (and ``retry``), else mark the job ``dead``."""
        now = time.time()
        again = retry and self.doc.get("attempts_left", 0) > 0
        self._fenced({"$set": {"status": "queued" if again else "dead", "lease_until": None,
                               "finished": None if again else now},
                      "$push": {"errors": {"error": str(reason)[:10000], "at": now, "worker": self.doc.get("worker")}}},
                     "fail")

    def release(self) -> None:
        """Give the job back untouched (a clean shutdown): requeued without spending an attempt."""
        self._fenced({"$set": {"status": "queued", "lease_until": None}, "$inc": {"attempts_left": 1}}, "release")


def _positive_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
