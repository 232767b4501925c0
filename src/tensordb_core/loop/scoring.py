"""Scoring claims: however many evaluators run, one of them scores a parameter set per metric prefix.

Every evaluator follows the same ``params`` collection, so without
coordination each would score every parameter set.  Before scoring, an
evaluator takes a *claim* on ``(parameter document, prefix)`` with the index
store's atomic ``find_one_and_update`` (the same primitive as the job queue's
``pop_job``); an evaluator that does not get it skips the document.

The claim lives in the parameter document, beside ``metrics`` (whose shape
is unchanged), under ``scoring.<prefix>``::

    "scoring": {"test": {"worker": "evaluator@host:123", "at": 1718000000.0,
                         "until": 1718000600.0, "token": "<new_id>",
                         "state": "scoring" | "done" | "failed",
                         "finished": 1718000012.5, "error": "..."}}

* ``scoring``: held by ``worker`` since ``at``; once ``until`` (wall clock) has
  passed the claim is *stale* — its evaluator was killed or hangs — and any
  evaluator may take it over, so no parameter set is blocked for good.
* ``done``: the metrics were recorded, in the same atomic update that set this
  state and only while ``token`` was still the claim's (a scorer whose stale
  claim was taken over cannot write a second set of metrics).  Never claimed
  again.
* ``failed``: the holder could not score it (unknown architecture, a model
  that fails to load); ``error`` says why.  Claimable again once ``until`` has
  passed, so a fix (a later architecture, an installed builder) is picked up,
  at most once per lease across all evaluators.

While an evaluator scores, a helper thread extends its claim every third of
the lease, so a slow model keeps its claim and a killed evaluator's claim
lapses within one lease.  Leases compare wall clocks, as job leases do: keep evaluator clocks in sync
(NTP) to well within the lease.  A parameter document copied to another
warehouse (``tensordb copy``) carries its claim as it is: a ``done`` claim
stays done, a live one expires there like anywhere else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidDocument, TensorDBError
from tensordb_core.store.protocols import new_id
from tensordb_core.store.scope import StudyScope, check_key
from tensordb_core.warehouse.params import COLLECTION, clean_metrics

#: The parameter-document field holding the claims, one subdocument per metric prefix.
FIELD = "scoring"
#: How long a claim holds before another evaluator may take it over.
DEFAULT_LEASE_S = 600.0
#: Results of :meth:`ScoringClaims.score`.
SCORED, ALREADY_SCORED, CLAIMED_ELSEWHERE, LOST, UNSCORABLE, GONE = (
    "scored", "already_scored", "claimed_elsewhere", "lost", "unscorable", "gone")

Evaluate = Callable[[Mapping[str, Any]], dict[str, float] | None]


def claim_of(doc: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
    """The claim subdocument ``scoring.<prefix>`` of a parameter document, or None."""
    claims = doc.get(FIELD)
    value = claims.get(prefix) if isinstance(claims, Mapping) else None
    return value if isinstance(value, dict) else None


@dataclass
class Claim:
    """A claim this evaluator holds; its writes are fenced by ``token``."""

    scope: StudyScope = field(repr=False)
    doc: dict[str, Any]
    prefix: str
    token: str

    @property
    def path(self) -> str:
        return f"{FIELD}.{self.prefix}"

    def _fenced(self, update: Mapping[str, Any]) -> bool:
        q = self.scope.query({"_id": self.doc["_id"], f"{self.path}.token": self.token})
        after = self.scope.index.find_one_and_update(COLLECTION, q, update)
        if after is not None:
            self.doc = after
        return after is not None

    def finish(self, scores: Mapping[str, Any], now: float) -> bool:
        """Record ``scores`` as metrics and mark the claim done, atomically; False if the claim was taken over."""
        metrics = {f"metrics.{k}": v for k, v in clean_metrics(scores).items()}
        return self._fenced({"$set": {**metrics, f"{self.path}.state": "done", f"{self.path}.finished": now}})

    def fail(self, reason: str, now: float) -> bool:
        """Mark the claim failed; it may be claimed again once its lease has passed."""
        return self._fenced({"$set": {f"{self.path}.state": "failed", f"{self.path}.finished": now,
                                      f"{self.path}.error": str(reason)[:2000]}})

    def extend(self, until: float) -> bool:
        """Push the lease out to ``until`` (a scorer still at work); False if the claim was taken over."""
        return self._fenced({"$set": {f"{self.path}.until": until}})

    def release(self) -> bool:
        """Drop the claim (an interrupted scorer): anyone may claim the document at once."""
        return self._fenced({"$unset": {self.path: ""}})


def take_claim(scope: StudyScope, param_id: str, prefix: str, *, worker: str, lease_s: float,
               now: float) -> Claim | None:
    """Claim ``(param_id, prefix)`` if it is unclaimed or its claim is stale; None when someone else holds it."""
    scope.require_writable()
    path = f"{FIELD}.{check_key(prefix, 'prefix')}"
    claimable = {"_id": param_id, "$or": [
        {path: {"$exists": False}},
        {f"{path}.state": {"$in": ["scoring", "failed"]}, f"{path}.until": {"$lt": now}},
    ]}
    token = new_id()
    doc = scope.index.find_one_and_update(COLLECTION, scope.query(claimable), {"$set": {path: {
        "worker": worker, "at": now, "until": now + lease_s, "token": token, "state": "scoring"}}})
    return None if doc is None else Claim(scope, doc, prefix, token)


class ScoringClaims:
    """One evaluator's side of the claims for one metric prefix.

    :meth:`score` claims a document, scores it with ``evaluate`` and records
    the metrics under the claim.  A document held by a live claim elsewhere is
    remembered until that claim's lease ends; :meth:`due` hands it back then,
    so a follower that has moved past it still scores it if its holder died.
    """

    def __init__(self, scope: StudyScope, prefix: str, *, worker: str, lease_s: float = DEFAULT_LEASE_S,
                 metric: str | None = None, clock: Callable[[], float] = time.time,
                 renew_every_s: float | None = None) -> None:
        if not lease_s > 0:
            raise InvalidDocument(f"the scoring lease must be positive, not {lease_s!r}")
        #: While a model is being scored its claim is extended this often (a third of the lease by
        #: default), so a slow evaluation keeps its claim and a dead evaluator's lapses within one lease.
        self.renew_every_s = float(renew_every_s) if renew_every_s is not None else lease_s / 3
        self.scope, self.prefix, self.worker, self.lease_s = scope, check_key(prefix, "prefix"), worker, float(lease_s)
        self.metric, self.clock = metric, clock
        self.waiting: dict[str, float] = {}  # document id -> when its claim elsewhere may be stale
        self.skipped = 0  # documents left to another evaluator (claimed elsewhere, or taken over while scoring)

    def has_scores(self, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` already carries this evaluator's metric (any ``<prefix>_*`` when no metric was named)."""
        metrics = doc.get("metrics") or {}
        if self.metric is not None:
            return self.metric in metrics
        return any(k.startswith(f"{self.prefix}_") for k in metrics)

    def score(self, doc: Mapping[str, Any], evaluate: Evaluate) -> tuple[str, dict[str, float] | None]:
        """``(outcome, scores)`` for one parameter document; only :data:`SCORED` comes with scores.

        ``evaluate(doc)`` returns the metrics to record or None when the
        document cannot be scored; if it raises, the claim is marked failed
        (released on a KeyboardInterrupt or SystemExit) and the error propagates.
        """
        self.waiting.pop(doc["_id"], None)
        claim = take_claim(self.scope, doc["_id"], self.prefix, worker=self.worker, lease_s=self.lease_s,
                           now=self.clock())
        if claim is None:
            return self._claimed_elsewhere(doc["_id"]), None
        if self.has_scores(claim.doc):  # scored before claims existed, or by a holder that died before "done"
            claim.finish({}, self.clock())
            return ALREADY_SCORED, None
        try:
            with self._renewing(claim):
                scores = evaluate(claim.doc)
        except Exception as exc:
            claim.fail(f"{type(exc).__name__}: {exc}", self.clock())
            raise
        except BaseException:
            claim.release()
            raise
        if scores is None:
            claim.fail("cannot be scored (no architecture found)", self.clock())
            return UNSCORABLE, None
        if not claim.finish(scores, self.clock()):
            self.skipped += 1
            return LOST, None
        return SCORED, scores

    @contextmanager
    def _renewing(self, claim: Claim) -> Iterator[None]:
        """Extend ``claim`` every :attr:`renew_every_s` on a helper thread while the block runs."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.renew_every_s):
                try:
                    if not claim.extend(self.clock() + self.lease_s):
                        return  # taken over (we were too slow once): the fenced finish will say so
                except TensorDBError:
                    continue  # the store is away for a moment: try again at the next tick

        thread = threading.Thread(target=renew, name="tensordb-scoring-claim", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _claimed_elsewhere(self, param_id: str) -> str:
        self.skipped += 1
        current = next(iter(self.scope.index.find(COLLECTION, self.scope.query({"_id": param_id}), limit=1)), None)
        if current is None:
            return GONE
        held = claim_of(current, self.prefix)
        if self.has_scores(current) or (held is not None and held.get("state") == "done"):
            return ALREADY_SCORED
        try:  # held elsewhere: look again once that lease may have run out (now, if it was just released)
            until = float(held["until"]) if held is not None else self.clock()
        except (KeyError, TypeError, ValueError):
            until = self.clock()
        self.waiting[param_id] = until
        return CLAIMED_ELSEWHERE

    def due(self) -> list[dict[str, Any]]:
        """Documents claimed elsewhere whose lease has now passed, read afresh (to :meth:`score` again)."""
        now = self.clock()
        ready = [pid for pid, until in self.waiting.items() if until < now]
        if not ready:
            return []
        docs = list(self.scope.index.find(COLLECTION, self.scope.query({"_id": {"$in": ready}})))
        for pid in ready:
            del self.waiting[pid]
        return docs
