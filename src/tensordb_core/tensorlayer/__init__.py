"""TensorLayer users move over unchanged: the 1.x ``TensorDB`` and the 2.x ``TensorHub`` on the warehouse.

Both classes keep TensorLayer's method names, argument names and return
shapes (``tensorlayer/db.py``, 1.7-1.10 and 2.x) but store through the
warehouse, so what they write is what ``tensordb find``/``logs``/``jobs`` and
the main :class:`tensordb_core.TensorDB` see.  ``migrate`` reads a database
TensorLayer itself wrote (MongoDB + GridFS, pickled arrays) into any backend.
See docs/tensorlayer.md for the method table.
"""

from tensordb_core.tensorlayer.tensordb import DBLogger, TensorDB
from tensordb_core.tensorlayer.tensorhub import TensorHub

__all__ = ["DBLogger", "TensorDB", "TensorHub"]
