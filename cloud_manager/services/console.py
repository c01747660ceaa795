"""A server's console log: the tail of its serial output, read on its host.

The read travels the usual path (Cloud Manager -> group -> host) as one call, so the
answer is the log as it is now. A server with no host (still scheduling, or never
placed) has no log yet: 409. A host or group that cannot answer: 503, naming it.
"""

from __future__ import annotations

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.errors import BadInput, Conflict, Unavailable
from cloud_manager.services.servers import get, group_target
from message_bus.errors import BusError
from message_bus.messages import CONSOLE_MAX_BYTES, ConsoleOutput, GetConsoleOutput

MAX_LINES = 10000
CALL_TIMEOUT = 15.0  # longer than the group's own wait for the host (10 s)


def parse_lines(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_LINES:
        raise BadInput(f"field 'lines': expected a whole number from 1 to {MAX_LINES}, got "
                       f"'{value}'", field="lines")
    return int(value)


def read(ctx: CloudContext, principal: Principal, server_id: str,
         lines: int | None = None) -> str:
    with ctx.sessions() as session:
        instance = get(session, principal, server_id)
        group, host = instance.group_name, instance.host
    if group is None or host is None:
        raise Conflict(f"server '{server_id}' has no host yet, so no console log")
    try:
        reply = ctx.bus.call(group_target(group),
                             GetConsoleOutput(instance_id=server_id,
                                              max_bytes=CONSOLE_MAX_BYTES),
                             timeout=CALL_TIMEOUT)
    except BusError as exc:
        raise Unavailable(f"group '{group}' did not answer ({exc})") from exc
    assert isinstance(reply, ConsoleOutput)
    if reply.output is None:
        raise Unavailable(f"cannot read the console log of server '{server_id}': {reply.note}")
    if lines is None:
        return reply.output
    return "".join(reply.output.splitlines(keepends=True)[-lines:])
