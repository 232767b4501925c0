"""The UI served for real: uvicorn on a free loopback port in a background thread, for the browser tests.

Its own module, not conftest: ``from conftest import ...`` finds whichever
suite's conftest was imported first when several test folders run together.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class Served:
    """A uvicorn server on a free loopback port in a background thread (stopped with ``close``)."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_keep_alive=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        import time

        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the UI server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
