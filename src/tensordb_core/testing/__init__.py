"""Conformance suites shipped with the package: a backend is done when its subclass passes.

Each suite is a pytest class; a backend's test module subclasses it and
provides one fixture that builds a fresh store (see each suite's docstring):
``index_store`` for :class:`IndexStoreSuite`, the blob fixture for
:class:`BlobStoreSuite`.  :class:`QueryGen` draws the seeded random documents
and queries the index suite uses, for backends that want more of them.
:mod:`tensordb_core.testing.warehouse_checks` runs the warehouse API, the
stream and ``tensordb demo`` end to end over any index/blob pair.
"""

from tensordb_core.testing.blob_suite import BlobStoreSuite
from tensordb_core.testing.index_suite import IndexStoreSuite
from tensordb_core.testing.querygen import QueryGen

__all__ = ["BlobStoreSuite", "IndexStoreSuite", "QueryGen"]
