"""TensorDB mongo backend plugin (see plugin.py)."""
