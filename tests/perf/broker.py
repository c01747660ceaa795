"""A benchmark's own RabbitMQ virtual host, made for the run and deleted after it.

A multi-process run at scale declares a durable queue per simulated host; left in the
broker, thousands of them slow its every restart (it recovers each one before opening
its port). As the benchmarks create and drop their PostgreSQL databases, they create
and delete their virtual host, with ``rabbitmqctl`` on this machine (as root).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from kombu.utils.url import parse_url


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                   text=True, timeout=300)


@contextmanager
def fresh_vhost(url: str, prefix: str = "ironbark-bench") -> Iterator[str]:
    """``url`` pointing at a new, empty virtual host, which is deleted on exit."""
    parts = parse_url(url)
    user = parts["userid"] or "guest"
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        password = f":{parts['password']}" if parts["password"] else ""
        yield (f"{parts['transport']}://{user}{password}@{parts['hostname']}:"
               f"{parts['port'] or 5672}/{vhost}")
    finally:
        _ctl("delete_vhost", vhost)
