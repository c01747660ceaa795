"""A thread pool that runs jobs sharing a key one at a time, in submission order.

Bus handlers run in parallel, except that two messages about the same instance
(or the same host) never do: a ``stop`` must not race the ``spawn`` it follows.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

Job = Callable[[], None]
log = logging.getLogger(__name__)


class KeyedExecutor:
    def __init__(self, max_workers: int, name: str):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Job]] = {}
        self._idle = threading.Condition(self._lock)
        self._running = 0

    def submit(self, key: str | None, job: Job) -> None:
        with self._lock:
            self._running += 1
            if key is not None:
                pending = self._queues.get(key)
                if pending is not None:  # a job with this key is running: queue behind it
                    pending.append(job)
                    return
                self._queues[key] = deque()
        self._pool.submit(self._run, key, job)

    def _run(self, key: str | None, job: Job) -> None:
        while True:
            try:
                job()
            except BaseException:  # a job's failure must not strand the jobs behind it
                log.exception("job for key %s failed", key)
            finally:
                with self._lock:
                    self._running -= 1
                    nxt = None
                    if key is not None:
                        pending = self._queues[key]
                        if pending:
                            nxt = pending.popleft()
                        else:
                            del self._queues[key]
                    if self._running == 0:
                        self._idle.notify_all()
            if nxt is None:
                return
            job = nxt

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running; False if that took too long."""
        with self._lock:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        self.wait_idle(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
