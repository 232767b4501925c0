"""An example TensorDB backend: blobs as rows of one SQLite file (``sqlite-blobs:///path/blobs.db``).

TensorDB finds it through the ``tensordb`` entry point (:mod:`tensordb_sqlite_blobs.plugin`)
and imports :mod:`tensordb_sqlite_blobs.store` only when such a URI is opened.
"""

__version__ = "0.1.0"
