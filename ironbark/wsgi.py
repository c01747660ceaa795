"""Serving Flask apps: gunicorn for a tier in its own process, a thread for the all-in-one.

A standalone tier runs under gunicorn (a production WSGI server) with threaded
workers; its background work (bus consumers, periodic tasks) starts in each worker
through ``on_worker_start``, so it lives in the same process as the app it serves.
The all-in-one cloud cannot fork (its memory:// bus lives in one process), so it
serves each app from a thread with werkzeug's threaded server instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)

KEEPALIVE = 5  # seconds an idle client connection is kept open (Apache's default)


def run_gunicorn(
    app_factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int = 1,
    threads: int = 16,
    on_worker_start: Callable[[Any], None] | None = None,
    on_worker_exit: Callable[[Any], None] | None = None,
) -> None:
    """Serve ``app_factory()`` in the foreground until SIGINT/SIGTERM."""
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 120)
            self.cfg.set("graceful_timeout", 30)
            # gunicorn's default keep-alive (2 s) is openstacksdk's poll interval: each
            # poll would race the server closing its idle connection. Clients resend
            # reads the server dropped (ironbark.http_retry); creates they cannot.
            self.cfg.set("keepalive", KEEPALIVE)
            self.cfg.set("accesslog", None)
            if on_worker_start is not None:
                self.cfg.set("post_worker_init", lambda worker: on_worker_start(worker))
            if on_worker_exit is not None:
                self.cfg.set("worker_exit", lambda _arbiter, worker: on_worker_exit(worker))

        def load(self) -> Any:
            return app_factory()

    _App().run()


class ThreadedServer:
    """A WSGI app served from a background thread (for the all-in-one and tests)."""

    def __init__(self, app: Any, host: str, port: int):
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host, self.port = host, self._server.server_port
        # serve_forever checks for shutdown every poll_interval (0.5 s by default):
        # shorter, so a stop (once per test in the test suite) is quick.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"http-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
