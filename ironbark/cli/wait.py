"""``--wait``: poll a server until the asynchronous work on it is over.

The API answers creates, deletes and actions with 202 at once (docs/api.md), so a
script that needs the result has to poll; this module is that poll, with the
decisions kept apart from the printing so they can be tested without a cloud.

A server has settled when its ``task_state`` is null and its status is not BUILD.
Settling in ERROR is a failure and reports the server's fault message. A deleted
server answers 404, which is what waiting for a delete looks for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ironbark.cli.client import ApiError

DEFAULT_TIMEOUT = 600.0
POLL_INTERVAL = 0.5


class ServerSource(Protocol):
    """What the wait loop needs from the API client."""

    def get_server(self, server_id: str) -> dict[str, Any]: ...


class WaitError(Exception):
    """The server ended in ERROR, or did not settle in time; the message says which."""

    def __init__(self, message: str, server: dict[str, Any]) -> None:
        super().__init__(message)
        self.server = server


def describe(server: dict[str, Any]) -> str:
    """``server 'web1' (<id>)``: how messages name a server."""
    return f"server {server.get('name')!r} ({server.get('id')})"


def is_settled(server: dict[str, Any]) -> bool:
    """No task in flight and past BUILD: nothing is going to change on its own."""
    return server.get("task_state") is None and server.get("status") != "BUILD"


def fault_message(server: dict[str, Any]) -> str:
    fault = server.get("fault")
    if isinstance(fault, dict) and fault.get("message"):
        return str(fault["message"])
    return "no fault message was recorded"


def _timed_out(server: dict[str, Any], timeout: float) -> WaitError:
    state = str(server.get("status"))
    if server.get("task_state"):
        state += f" (task {server['task_state']})"
    elif server.get("status") == "ERROR":
        state += f": {fault_message(server)}"
    return WaitError(
        f"timed out after {timeout:g} s waiting for {describe(server)}: it is still {state}",
        server,
    )


def wait_for_server(
    source: ServerSource,
    server: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Poll until the server settles; returns it, or raises ``WaitError``.

    The first poll is immediate and the 202 body is not trusted as the current
    state: the action may not show in it yet. ``deadline`` (a ``clock()`` value)
    lets several waits share one budget.
    """
    end = deadline if deadline is not None else clock() + timeout
    while True:
        current = source.get_server(server["id"])
        if is_settled(current):
            if current.get("status") == "ERROR":
                raise WaitError(
                    f"{describe(current)} went to ERROR: {fault_message(current)}", current
                )
            return current
        remaining = end - clock()
        if remaining <= 0:
            raise _timed_out(current, timeout)
        sleep(min(interval, remaining))


def wait_for_delete(
    source: ServerSource,
    server: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    deadline: float | None = None,
) -> None:
    """Poll until the server answers 404 (or shows DELETED); raises ``WaitError``.

    ``server`` is the object the DELETE answered. A server that settles in ERROR
    instead of disappearing failed to delete, but deleting a server that was
    *already* in ERROR is the usual clean-up, so ERROR only counts as a failure once
    the delete has visibly run: a task was seen in flight, or the fault changed.
    """
    end = deadline if deadline is not None else clock() + timeout
    started_fault = server.get("fault")
    saw_task = server.get("task_state") is not None
    while True:
        try:
            current = source.get_server(server["id"])
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        if current.get("status") == "DELETED":
            return
        saw_task = saw_task or current.get("task_state") is not None
        if (
            is_settled(current)
            and current.get("status") == "ERROR"
            and (saw_task or current.get("fault") != started_fault)
        ):
            raise WaitError(
                f"{describe(current)} failed to delete: {fault_message(current)}", current
            )
        remaining = end - clock()
        if remaining <= 0:
            raise _timed_out(current, timeout)
        sleep(min(interval, remaining))
