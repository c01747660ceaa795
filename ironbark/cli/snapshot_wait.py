"""``server image create --wait``: poll until a server's snapshot is over.

The action answers 202 at once with the new image ``queued``. The snapshot is over
when the server has no task in flight any more and its image has settled:
``active`` is success; ``killed``, or the image gone (the cloud deletes the image of
a snapshot that failed), is failure, reported with the server's fault message. The
decisions are kept apart from the printing, as in ``ironbark.cli.wait``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ironbark.cli.client import ApiError
from ironbark.cli.wait import DEFAULT_TIMEOUT, POLL_INTERVAL, WaitError, describe, fault_message


class SnapshotSource(Protocol):
    """What the wait loop needs from the API client."""

    def get_server(self, server_id: str) -> dict[str, Any]: ...

    def get_image(self, ref: str) -> dict[str, Any]: ...


def _get_or_none(get: Callable[[str], dict[str, Any]], ref: str) -> dict[str, Any] | None:
    try:
        return get(ref)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def wait_for_snapshot(
    source: SnapshotSource,
    image: dict[str, Any],
    server_id: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the snapshot into ``image`` is over; returns the active image, or
    raises ``WaitError`` saying why it failed or what it is still doing."""
    end = clock() + timeout
    while True:
        # A server deleted meanwhile has no task any more: its image alone tells.
        server = _get_or_none(source.get_server, server_id) or {"id": server_id}
        busy = server.get("task_state") is not None
        current = _get_or_none(source.get_image, image["id"])
        if not busy:
            if current is None:
                raise WaitError(f"the snapshot of {describe(server)} failed: "
                                f"{fault_message(server)} (its image {image['id']} was "
                                "deleted)", server)
            if current.get("status") == "killed":
                raise WaitError(f"the snapshot of {describe(server)} failed: image "
                                f"{image['id']} was killed ({fault_message(server)})", server)
            if current.get("status") == "active":
                return current
        remaining = end - clock()
        if remaining <= 0:
            doing = f"task {server['task_state']}" if busy else "no task"
            shown = current.get("status") if current is not None else "gone"
            raise WaitError(f"timed out after {timeout:g} s waiting for the snapshot of "
                            f"{describe(server)}: image {image['id']} is {shown}, the server "
                            f"has {doing}", server)
        sleep(min(interval, remaining))
