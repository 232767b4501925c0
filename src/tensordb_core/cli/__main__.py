"""``python -m tensordb_core.cli``: the ``tensordb`` command without its console script."""

import sys

from tensordb_core.cli.main import main

sys.exit(main())
