"""Conformance suites shipped with the package: a backend is done when its subclass passes.

Each suite is a pytest class; a backend's test module subclasses it and
provides one fixture that builds a fresh store (see each suite's docstring).
"""

from .blob_suite import BlobStoreSuite

__all__ = ["BlobStoreSuite"]
