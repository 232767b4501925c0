"""A loopback HTTP/1.1 proxy that delivers each response's headers and only part of its body, then hangs up.

Why: a store that reads a response body in one call must still notice a body
shorter than the ``Content-Length`` the server announced (a dropped
connection mid-download) and fail with a typed error, never hand back the
short bytes.  Real servers do not truncate on request; this proxy sits in
front of one and does, on every connection.
"""

from __future__ import annotations

import socket
import threading
from typing import Self

_CHUNK = 1 << 16


class CutProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``, cutting every response after ``body_bytes`` of body."""

    def __init__(self, target: int, body_bytes: int) -> None:
        self.target = target
        self.body_bytes = body_bytes
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._cut, args=(upstream, client), daemon=True).start()

    def _cut(self, upstream: socket.socket, client: socket.socket) -> None:
        """Copy the response head, then ``body_bytes`` of its body, then close both sides."""
        seen = b""
        try:
            while b"\r\n\r\n" not in seen:
                data = upstream.recv(_CHUNK)
                if not data:
                    return
                seen += data
            head, _, body = seen.partition(b"\r\n\r\n")
            while len(body) < self.body_bytes:
                data = upstream.recv(_CHUNK)
                if not data:
                    break
                body += data
            client.sendall(head + b"\r\n\r\n" + body[: self.body_bytes])
            self.cuts += 1
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
