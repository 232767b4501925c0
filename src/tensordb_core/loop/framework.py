"""The seed's application framework: a minimal ``Model`` protocol and a ``DBLogger`` callback.

Any model — numpy, PyTorch, JAX — plugs into the warehouse by offering
``fit_batch``/``evaluate``/``parameters``/``load_parameters``; the
:class:`DBLogger` records step logs and saves parameters per epoch, so a
training loop needs no warehouse code of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Model(Protocol):
    """What a trainable model offers the warehouse."""

    def fit_batch(self, X: np.ndarray, y: np.ndarray) -> Mapping[str, float]:
        """One optimisation step; returns step metrics (e.g. ``{"loss": 0.3}``)."""
        ...

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Mapping[str, float]:
        """Metrics on held-out data (e.g. ``{"acc": 0.93}``)."""
        ...

    def parameters(self) -> Mapping[str, np.ndarray]: ...

    def load_parameters(self, params: Mapping[str, np.ndarray]) -> None: ...


class DBLogger:
    """Callbacks a training loop calls per batch and per epoch; they write to the warehouse."""

    def __init__(self, db: Any, model: Model, *, tags: Mapping[str, Any] | None = None,
                 log_every: int = 1) -> None:
        self.db, self.model, self.tags, self.log_every = db, model, dict(tags or {}), log_every
        self.step = 0
        self.saved: list[str] = []

    def on_batch_end(self, metrics: Mapping[str, float]) -> None:
        if self.step % self.log_every == 0:
            self.db.train_log(dict(metrics), step=self.step)
        self.step += 1

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> str:
        """Log validation metrics and save the parameters with them; returns the parameter id."""
        self.db.valid_log(dict(metrics), step=self.step)
        pid = self.db.save_parameters(self.model.parameters(), metrics=dict(metrics),
                                      tags={**self.tags, "epoch": epoch}, step=self.step)
        self.saved.append(pid)
        return pid


def fit_generator(model: Model, batches: Iterable[tuple[np.ndarray, np.ndarray]], logger: DBLogger | None = None,
                  after_batch: Callable[[], None] | None = None) -> dict[str, float]:
    """Train ``model`` on every batch of one epoch; returns the mean of each step metric (and ``seconds``).

    ``after_batch`` runs after each step (a worker renews its job lease there,
    or raises to stop between batches).
    """
    sums: dict[str, float] = {}
    n = 0
    start = time.perf_counter()
    for X, y in batches:
        metrics = model.fit_batch(X, y)
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
        if logger is not None:
            logger.on_batch_end(metrics)
        if after_batch is not None:
            after_batch()
    means = {k: v / max(n, 1) for k, v in sums.items()}
    means["seconds"] = time.perf_counter() - start
    return means
