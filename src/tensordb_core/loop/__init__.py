"""The continuous loop: worker roles (train, evaluate, deploy), the worker that runs them, scoring claims."""
