"""TensorDB azure backend plugin (see plugin.py)."""
