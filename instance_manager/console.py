"""The console log: the tail of a guest's serial output, for its owner to read."""

from __future__ import annotations

from instance_manager.context import HostContext
from instance_manager.driver.base import InstanceNotFound
from message_bus.messages import ConsoleOutput, GetConsoleOutput


def read(ctx: HostContext, msg: GetConsoleOutput) -> ConsoleOutput:
    try:
        data, truncated = ctx.driver.console_log(msg.instance_id, msg.max_bytes)
    except InstanceNotFound as exc:
        return ConsoleOutput(instance_id=msg.instance_id, output=None,
                             note=f"host {ctx.name}: {exc}")
    # Guests write bytes; the API speaks JSON: undecodable bytes become U+FFFD.
    return ConsoleOutput(instance_id=msg.instance_id,
                         output=data.decode("utf-8", errors="replace"), truncated=truncated)
