"""The name of every collection a warehouse holds, in one place.

Why: a module that needs another collection's name (artifacts checks that
their run exists, copy and maintenance walk them all) would otherwise import
that collection's module for one string, and two such modules end up
importing each other (runs <-> artifacts did).  A name here is part of the
public on-store format (docs/FORMAT.md): renaming one orphans existing data.
"""

from __future__ import annotations

from tensordb_core.store.scope import MEMBERS as DATASET_MEMBERS  # the stream reads it too, so it lives below

MODELS = "models"
DATA = "data"
PARAMS = "params"
JOBS = "jobs"
LOGS = "logs"
ALIASES = "aliases"
ALIAS_HISTORY = "alias_history"
WORKERS = "workers"
RUNS = "runs"
ARTIFACTS = "artifacts"
REGISTERED_MODELS = "registered_models"
MODEL_VERSIONS = "model_versions"
MODEL_ALIAS_HISTORY = "model_alias_history"
DATASETS = "datasets"
AUDIT = "audit"

#: What a study consists of, in copy order (architectures before the parameters that name them, runs
#: before their artifacts, parameter sets before the model versions that register them, a dataset
#: version's members before the document that makes it visible; members keep their _seq order).
STUDY_COLLECTIONS = (MODELS, DATA, PARAMS, JOBS, LOGS, ALIASES, ALIAS_HISTORY, WORKERS, RUNS, ARTIFACTS,
                     REGISTERED_MODELS, MODEL_VERSIONS, MODEL_ALIAS_HISTORY, DATASET_MEMBERS, DATASETS, AUDIT)
