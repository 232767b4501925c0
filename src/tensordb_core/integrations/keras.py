"""``TensorDBCallback``: a Keras 3 callback that logs each batch and epoch and saves the weights each epoch.

Pass it to ``model.fit(..., callbacks=[TensorDBCallback(db)])``.  It logs into
the handle's active run, or starts one (named ``run_name``, with the fit's
epochs, steps, optimizer and learning rate as params) and ends it when
training ends.  Keras does not call callbacks when ``fit`` raises, so to get a
``failed`` run wrap the fit in ``with db.start_run(...):`` yourself.

What lands where: each batch's logs are ``train`` log records (step = global
batch count); at each epoch end, the ``val_*`` entries become ``valid`` records
(``val_loss`` → ``valid_loss`` in the run's metric summaries) and the others
``epoch_*`` train records; and the weights are saved as a parameter set (one
array per weight, keyed ``<index>/<variable.path>``) with the epoch's finite metrics, so
``db.best_parameters("val_accuracy")`` finds the best epoch.  Restore one
with :func:`load_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tensordb_core.integrations import finite, jsonable, numbers
from tensordb_core.warehouse.handle import TensorDB


def weights_of(model: Any) -> dict[str, np.ndarray]:
    """``{"<index>/<variable.path>": array}`` of a Keras model, in ``model.weights`` order.

    The index leads because generated layer names (``dense_3``) differ between
    two instances of the same architecture; :func:`load_weights` matches by it.
    """
    return {f"{i:04d}/{v.path}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(model.weights)}


def load_weights(model: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Assign arrays saved by :func:`weights_of` to ``model``'s variables, in order; shapes must match."""
    variables, saved = list(model.weights), [arrays[k] for k in sorted(arrays)]
    if len(variables) != len(saved):
        raise ValueError(f"the model has {len(variables)} weights, the parameter set {len(saved)}")
    for variable, array in zip(variables, saved):
        if tuple(variable.shape) != tuple(array.shape):
            raise ValueError(f"weight {variable.path}: shape {tuple(variable.shape)} != saved {tuple(array.shape)}")
    for variable, array in zip(variables, saved):
        variable.assign(array)


class TensorDBCallback(keras.callbacks.Callback):
    """Logs batches and epochs into a run of ``db`` and saves the weights every ``save_every`` epochs."""

    def __init__(self, db: TensorDB, *, run_name: str | None = None, params: Mapping[str, Any] | None = None,
                 tags: Mapping[str, Any] | None = None, log_every: int = 1, save_every: int = 1) -> None:
        super().__init__()
        if log_every < 1 or save_every < 0:
            raise ValueError("log_every must be >= 1 and save_every >= 0 (0: never save weights)")
        self.db, self.run_name, self.log_every, self.save_every = db, run_name, log_every, save_every
        self.extra_params, self.tags = dict(params or {}), dict(tags or {})
        self.run: Any = None
        self.step = 0
        self.saved: list[str] = []
        self._owns_run = False

    def _fit_params(self) -> dict[str, Any]:
        out = {k: self.params.get(k) for k in ("epochs", "steps") if self.params and self.params.get(k) is not None}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            out["optimizer"] = type(optimizer).__name__
            lr = getattr(optimizer, "learning_rate", None)
            if lr is not None:
                try:
                    out["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
                except (TypeError, ValueError):
                    out["learning_rate"] = repr(lr)
        return jsonable({**out, **self.extra_params})

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.run = self.db.active_run()
        if self.run is None:
            self.run = self.db.start_run(self.run_name, params=self._fit_params(),
                                         tags={"framework": "keras", **self.tags})
            self._owns_run = True
        else:
            self.run.log_params(self._fit_params())

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.step % self.log_every == 0:
            values = numbers(logs)
            if values:
                self.db.train_log(values, step=self.step)
        self.step += 1

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        values = numbers(logs)
        valid = {k[4:]: v for k, v in values.items() if k.startswith("val_")}
        train = {f"epoch_{k}": v for k, v in values.items() if not k.startswith("val_")}
        if valid:
            self.db.valid_log(valid, step=self.step)
        if train:
            self.db.train_log(train, step=self.step)
        if self.save_every and (epoch + 1) % self.save_every == 0:
            self.saved.append(self.db.save_parameters(weights_of(self.model), metrics=finite(values),
                                                      tags={"epoch": epoch, "framework": "keras"}, step=self.step))

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self.db.flush()
        if self._owns_run and self.run is not None:
            self.run.end("finished")
            self._owns_run = False
