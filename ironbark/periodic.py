"""Periodic background jobs (reports, sweeps), each on its own small thread.

A job that raises is logged and runs again at its next tick: one bad sweep must
not stop heartbeats for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from message_bus import context

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], None], *,
                 run_now: bool = True):
        self.name, self.interval, self._job, self._run_now = name, interval, job, run_now
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Periodic:
        """Start (or, after stop(), restart) the job's thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"periodic-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def trigger(self) -> None:
        """Run the job soon, without waiting for the rest of the interval."""
        self._kick.set()

    def _loop(self) -> None:
        if not self._run_now:
            self._kick.wait(self.interval)
        while not self._stop.is_set():
            self._kick.clear()
            with context.bound(request_id=context.new_request_id(), service=self.name):
                try:
                    self._job()
                except Exception:
                    log.exception("periodic job %s failed", self.name)
            self._kick.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join(timeout=30)
