"""Launch a mongoeco MongoDB wire-protocol server on 127.0.0.1 and serve until killed.

Run with the Python 3.13 venv that has ``mongoeco[wire]`` (the project itself
stays on 3.11+, so the server lives in its own interpreter)::

    .mongoeco-venv/bin/python tests/backends/mongo/mongoeco_server.py --port 27999

``--user NAME --auth-db DB`` turns authentication on with one SCRAM user whose
password is read from the environment variable ``MONGOECO_PASSWORD`` (never
from argv, where ``ps`` would show it).  Storage is in memory (``engine=None``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal


async def serve(port: int, user: str | None, auth_db: str) -> None:
    from mongoeco.wire import AsyncMongoEcoProxyServer
    from mongoeco.wire.auth import WireAuthUser

    users: tuple[WireAuthUser, ...] = ()
    if user:
        password = os.environ.get("MONGOECO_PASSWORD")
        if not password:
            raise SystemExit("--user needs the password in the MONGOECO_PASSWORD environment variable")
        users = (WireAuthUser(username=user, password=password, source=auth_db),)
    server = AsyncMongoEcoProxyServer(host="127.0.0.1", port=port, engine=None, auth_users=users)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mongoeco listening on 127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default=None)
    parser.add_argument("--auth-db", default="admin")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.user, args.auth_db))


if __name__ == "__main__":
    main()
