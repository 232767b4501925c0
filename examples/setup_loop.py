"""A study for the continuous loop: digits 0-4, an architecture and two continuous train jobs.

Run it once, then start the workers (README, "The continuous loop"; the full
walkthrough is docs/continuous-learning.md)::

    .venv/bin/python examples/setup_loop.py [./loop-wh]
"""

from __future__ import annotations

import json
import sys

import tensordb_core as tdb
from tensordb_core.cli.demo import load_digits_splits


def main(uri: str = "./loop-wh", study: str = "digits-loop") -> None:
    splits = load_digits_splits()
    X, y = splits["train"]
    early = y < 5  # the first batch of data: digits 0-4 only; import the rest later to watch the loop react
    with tdb.connect(uri, study) as db:
        db.import_data(X[early], y[early], tags={"split": "train"})
        db.import_data(*splits["test"], tags={"split": "test"})
        db.save_model_architecture(json.dumps({"builder": "numpy-mlp", "inputs": 64, "outputs": 10}),
                                   tags={"name": "mlp"})
        for hyper in ({"hidden": [16], "lr": 0.02, "seed": 1}, {"hidden": [64], "lr": 0.05, "seed": 2}):
            db.push_job({"arch": {"name": "mlp"}, "data": {"split": "train"}, "epochs": 4, "batch_size": 32,
                         "hyper": hyper, "continuous": {"min_new": 100}}, tags={"type": "train"})
    print(f"{uri} (study {study}): {int(early.sum())} training samples (digits 0-4), "
          f"{len(splits['test'][1])} test samples, 2 continuous train jobs queued")


if __name__ == "__main__":
    main(*sys.argv[1:2])
