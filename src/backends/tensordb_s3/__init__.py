"""TensorDB s3 backend plugin (see plugin.py)."""
