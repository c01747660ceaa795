"""A TCP proxy in front of a real server that fails connections the way servers do.

``drop-reused``: each client connection has its first request forwarded and answered;
when the client sends again on it, the proxy closes the connection without an answer.
That is a server whose keep-alive timer fires as the next request arrives (gunicorn
closes an idle connection after ``keepalive`` seconds): the client reused a connection
it had every reason to think open, and gets a reset or an empty answer.

``silent``: requests are read and never answered (a server hung mid-request).

The proxy relays bytes, it does not parse HTTP: a client sends its next request only
once it has read the whole answer (no pipelining), so bytes from the client after
bytes from the server mean a new request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

Mode = Literal["drop-reused", "silent"]


class FaultProxy:
    def __init__(self, upstream_port: int, mode: Mode = "drop-reused") -> None:
        self.upstream_port, self.mode = upstream_port, mode
        self.forwarded = 0  # connections whose first request reached the server
        self.dropped = 0  # requests closed on without an answer
        self.requests_seen = 0  # first bytes of a request, forwarded or not
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            first = client.recv(65536)
            if not first:
                return
            self._count("requests_seen")
            if self.mode == "silent":
                while client.recv(65536):  # until the client gives up
                    pass
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets.append(upstream)
            answered = threading.Event()
            threading.Thread(target=self._relay_answers, args=(upstream, client, answered),
                             daemon=True).start()
            self._count("forwarded")
            data = first
            with upstream:
                while data:
                    if answered.is_set():  # the next request on a reused connection
                        self._count("requests_seen")
                        self._count("dropped")
                        return
                    upstream.sendall(data)
                    data = client.recv(65536)

    @staticmethod
    def _relay_answers(upstream: socket.socket, client: socket.socket,
                       answered: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                answered.set()
                client.sendall(data)
