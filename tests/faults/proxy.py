"""A loopback TCP proxy that can be "stopped" and "restarted" to make a server vanish and come back.

Why a proxy rather than killing the server: our emulators (mongoeco, moto)
keep their data in memory, so a real restart would also empty them.  Closing
the proxy's listener and every open connection looks to the client exactly
like a server going down (refused connects, reset sockets), and reopening it
on the same port like the server coming back — with its data intact.
"""

from __future__ import annotations

import socket
import threading

_CHUNK = 1 << 16


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``; :meth:`stop` / :meth:`start` toggle the outage."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close alone would not
            except OSError:
                pass
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            _kill(sock)

    def restart_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()
        return timer

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _kill(sock)
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)


def _kill(sock: socket.socket) -> None:
    """Shut a socket down now and close it.

    ``shutdown`` matters: ``close`` alone does not wake a thread blocked in
    ``recv`` on it, so the peer would never see the connection end.
    """
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
