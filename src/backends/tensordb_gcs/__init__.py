"""TensorDB gcs backend plugin (see plugin.py)."""
