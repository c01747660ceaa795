"""The request context that travels with every message and every log line.

One request id is minted at the API (or taken from the client's
``X-Openstack-Request-Id``), copied into every bus message that follows from it,
and restored around the handler of each received message, so every tier's log
lines about one request carry the same id.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
instance_id_var: ContextVar[str | None] = ContextVar("instance_id", default=None)
service_var: ContextVar[str | None] = ContextVar("service", default=None)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def current_request_id() -> str | None:
    return request_id_var.get()


@contextlib.contextmanager
def bound(
    request_id: str | None = None, instance_id: str | None = None, service: str | None = None
) -> Iterator[None]:
    """Set the given context fields for the duration of a block (unset ones are kept)."""
    tokens = []
    for var, value in ((request_id_var, request_id), (instance_id_var, instance_id),
                       (service_var, service)):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
