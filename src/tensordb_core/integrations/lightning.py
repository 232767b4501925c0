"""``TensorDBLogger``: a Lightning ``Logger`` writing hyperparameters, metrics and checkpoints into a run.

``Trainer(logger=TensorDBLogger(db))``.  The logger logs into the handle's
active run or starts one (its id is the logger's ``version``) and ends it in
``finalize``: ``finished`` on success, ``failed`` otherwise.  Hyperparameters
(``self.save_hyperparameters()``) become the run's params (values that are
not JSON become their ``repr``); every ``self.log(...)`` value becomes a
``train`` log record under its own name (``val_loss`` stays ``val_loss`` in
the run's summaries); each checkpoint a ``ModelCheckpoint`` saves becomes a
parameter set (the ``state_dict`` tensors as arrays, the monitored score
among its metrics, tags ``checkpoint``/``epoch``/``global_step``), so
``db.best_parameters("val_loss", "min")`` and ``db.register_model`` work on
Lightning checkpoints.  Only rank zero writes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from tensordb_core.integrations import finite, jsonable, numbers
from tensordb_core.warehouse.handle import TensorDB


def state_arrays(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A ``state_dict``'s tensors as numpy arrays (on the CPU)."""
    return {k: v.detach().cpu().numpy() for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


class TensorDBLogger(Logger):
    """A Lightning logger whose experiment is a TensorDB run."""

    def __init__(self, db: TensorDB, *, run_name: str | None = None, tags: Mapping[str, Any] | None = None,
                 save_checkpoints: bool = True) -> None:
        super().__init__()
        self.db, self.run_name, self.tags, self.save_checkpoints = db, run_name, dict(tags or {}), save_checkpoints
        self._run: Any = None
        self._owns_run = False
        self._saved: dict[str, float] = {}  # checkpoint path -> mtime already stored
        self.saved: list[str] = []

    @property
    def name(self) -> str:
        return "tensordb"

    @property
    def version(self) -> str:
        return self.experiment.id if rank_zero_only.rank == 0 else ""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The run (started on first use unless the handle has an active one)."""
        if self._run is None:
            self._run = self.db.active_run()
            if self._run is None:
                self._run = self.db.start_run(self.run_name, tags={"framework": "lightning", **self.tags})
                self._owns_run = True
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | argparse.Namespace, *args: Any, **kwargs: Any) -> None:
        values = vars(params) if isinstance(params, argparse.Namespace) else dict(params or {})
        if values:
            self.experiment.log_params(jsonable(values))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = numbers(metrics)
        self.experiment  # noqa: B018 - make sure the run is active before its logs are written
        if values:
            self.db.train_log(values, step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self.save_checkpoints:
            return
        paths = {getattr(checkpoint_callback, "best_model_path", ""), getattr(checkpoint_callback, "last_model_path", "")}
        paths |= set(getattr(checkpoint_callback, "best_k_models", {}) or {})
        monitor = getattr(checkpoint_callback, "monitor", None)
        for path in sorted(p for p in paths if p and os.path.isfile(p)):
            mtime = os.path.getmtime(path)
            if self._saved.get(path) == mtime:
                continue
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            metrics: dict[str, float] = {}
            score = (getattr(checkpoint_callback, "best_k_models", {}) or {}).get(path)
            if monitor and score is not None:
                metrics = finite(numbers({monitor: score}))
            self.experiment  # noqa: B018
            self.saved.append(self.db.save_parameters(
                state_arrays(checkpoint.get("state_dict", {})), metrics=metrics, step=checkpoint.get("global_step"),
                tags={"framework": "lightning", "checkpoint": os.path.basename(path),
                      "epoch": checkpoint.get("epoch")}))
            self._saved[path] = mtime

    @rank_zero_only
    def save(self) -> None:
        self.db.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.db.flush()
        if self._owns_run and self._run is not None:
            self._run.end("finished" if status == "success" else "failed", **(
                {} if status == "success" else {"error": f"lightning finished with status {status!r}"}))
            self._owns_run = False
