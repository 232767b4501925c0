"""The Lightning logger with the real library (CPU): hyperparameters, metrics and checkpoints into a run."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import tensordb_core as tdb
from tensordb_core.integrations.lightning import TensorDBLogger


class Tiny(pl.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def test_trainer_writes_hparams_metrics_and_checkpoints(tdb_handle: tdb.TensorDB, tmp_path: Path) -> None:
    db = tdb_handle
    torch.manual_seed(0)
    logger = TensorDBLogger(db, run_name="lightning")
    checkpoints = ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", mode="min", save_top_k=1)
    trainer = pl.Trainer(max_epochs=2, logger=logger, callbacks=[checkpoints], accelerator="cpu", devices=1,
                         log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    model = Tiny()
    trainer.fit(model, _loader(), _loader())
    run = db.get_run(logger.version)
    assert run["status"] == "finished" and db.active_run() is None
    assert run["params"] == {"lr": 0.1, "hidden": 4}
    assert {"train_loss", "val_loss", "epoch"} <= set(run["metrics"])
    assert run["metrics_min"]["val_loss"] <= run["metrics_max"]["val_loss"]
    assert len(db.find_logs("train", {"run": run["_id"], "metrics.train_loss": {"$exists": True}})) == 8
    assert logger.saved, "each saved checkpoint becomes a parameter set"
    arrays, doc = db.best_parameters("val_loss", "min")
    assert doc["framework"] == "lightning" and doc["lineage"]["run"] == run["_id"]
    np.testing.assert_allclose(arrays["net.0.weight"], model.net[0].weight.detach().numpy())
    assert db.register_model("tiny", doc["_id"]) == 1


def test_a_failed_fit_marks_the_run_failed(tdb_handle: tdb.TensorDB, tmp_path: Path) -> None:
    class Broken(Tiny):
        def training_step(self, batch, _):
            raise RuntimeError("diverged")

    logger = TensorDBLogger(tdb_handle)
    trainer = pl.Trainer(max_epochs=1, logger=logger, accelerator="cpu", devices=1, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    with pytest.raises(RuntimeError):
        trainer.fit(Broken(), _loader())
    assert tdb_handle.get_run(logger.version)["status"] == "failed"
