"""Power actions, snapshots, deletes and reconciliation questions about placed instances.

The group knows where each instance runs from its claim; these workflows forward
the work to that host, or answer for an instance that never got one.
"""

from __future__ import annotations

import logging

from group_manager import claims
from group_manager.context import GroupContext, host_target
from group_manager.db.models import Claim, Host
from message_bus.errors import BusError
from message_bus.lifecycle import Event, PowerState
from message_bus.messages import (
    ConsoleOutput,
    DeleteInstance,
    DescribeDomain,
    DescribeInstance,
    Destroy,
    DomainReport,
    GetConsoleOutput,
    InstanceAction,
    InstanceObservation,
    InstanceUpdate,
    PowerAction,
    SnapshotDisk,
    SnapshotInstance,
)

log = logging.getLogger(__name__)


def _claim(ctx: GroupContext, instance_id: str) -> Claim | None:
    with ctx.sessions() as session:
        return session.get(Claim, instance_id)


def _placed_host(ctx: GroupContext, instance_id: str, task_id: str) -> str | None:
    """The host an instance runs on; None (and the task failed) if it has none here."""
    claim = _claim(ctx, instance_id)
    if claim is None or claim.state != "active":
        ctx.to_cloud(InstanceUpdate(instance_id=instance_id, task_id=task_id,
                                    event=Event.ACTION_FAILED, group=ctx.name,
                                    reason=f"the instance has no host in group '{ctx.name}'"))
        return None
    assert claim.host is not None
    return claim.host


def act(ctx: GroupContext, msg: InstanceAction) -> None:
    host = _placed_host(ctx, msg.instance_id, msg.task_id)
    if host is not None:
        ctx.to_host(host, PowerAction(instance_id=msg.instance_id, action=msg.action,
                                      task_id=msg.task_id))


def snapshot(ctx: GroupContext, msg: SnapshotInstance) -> None:
    """The disk lives on the instance's host: that host exports and uploads it."""
    host = _placed_host(ctx, msg.instance_id, msg.task_id)
    if host is not None:
        ctx.to_host(host, SnapshotDisk(instance_id=msg.instance_id, task_id=msg.task_id,
                                       image_id=msg.image_id))


def delete(ctx: GroupContext, msg: DeleteInstance) -> None:
    """Destroy on the host (the claim is released when the host confirms), or, for an
    instance that was never placed, confirm at once and leave a tombstone."""
    claim = _claim(ctx, msg.instance_id)
    if claim is not None and claim.state == "active":
        assert claim.host is not None
        ctx.to_host(claim.host, Destroy(instance_id=msg.instance_id, task_id=msg.task_id))
        return
    if claim is None:
        with ctx.sessions.begin() as session:
            claims.tombstone(session, ctx.name, msg.instance_id, project_id="")
    ctx.to_cloud(InstanceUpdate(instance_id=msg.instance_id, task_id=msg.task_id,
                                event=Event.DESTROYED, group=ctx.name,
                                power_state=PowerState.MISSING))


def describe(ctx: GroupContext, msg: DescribeInstance) -> InstanceObservation:
    """What can be known about an instance now: asks its host, with a short timeout."""
    claim = _claim(ctx, msg.instance_id)
    if claim is None:
        return InstanceObservation(instance_id=msg.instance_id, host=None, power_state=None,
                                   note=f"group '{ctx.name}' never received its build")
    if claim.state == "failed":
        return InstanceObservation(instance_id=msg.instance_id, host=None, power_state=None,
                                   note="it was never placed (no valid host)")
    if claim.state == "released":
        return InstanceObservation(instance_id=msg.instance_id, host=claim.host,
                                   power_state=PowerState.MISSING, note="it was destroyed")
    assert claim.host is not None
    down = _host_down(ctx, claim.host)
    if down:
        return InstanceObservation(instance_id=msg.instance_id, host=claim.host,
                                   power_state=None, note=down)
    try:
        reply = ctx.bus.call(host_target(claim.host),
                             DescribeDomain(instance_id=msg.instance_id),
                             timeout=min(ctx.rpc_timeout, 5.0))
    except BusError as exc:
        return InstanceObservation(instance_id=msg.instance_id, host=claim.host,
                                   power_state=None, note=f"host did not answer: {exc}")
    assert isinstance(reply, DomainReport)
    return InstanceObservation(instance_id=msg.instance_id, host=claim.host,
                               power_state=reply.power_state)


def _host_down(ctx: GroupContext, name: str) -> str:
    """Why the host cannot be asked now ("" if it is up)."""
    with ctx.sessions() as session:
        host = session.get(Host, name)
        if host is not None and host.state != "up":
            return f"host {name} is down (last report {host.last_seen_at:%H:%M:%S} UTC)"
    return ""


def console(ctx: GroupContext, msg: GetConsoleOutput) -> ConsoleOutput:
    """Forward the read to the instance's host; a note says why when there is none."""
    claim = _claim(ctx, msg.instance_id)
    note = ""
    if claim is None or claim.state == "failed" or claim.host is None:
        note = "it has no host (it was never placed)"
    elif claim.state == "released":
        note = "it was destroyed"
    else:
        note = _host_down(ctx, claim.host)
    if note:
        return ConsoleOutput(instance_id=msg.instance_id, output=None, note=note)
    assert claim is not None and claim.host is not None
    try:
        reply = ctx.bus.call(host_target(claim.host), msg, timeout=min(ctx.rpc_timeout, 10.0))
    except BusError as exc:
        return ConsoleOutput(instance_id=msg.instance_id, output=None,
                             note=f"host {claim.host} did not answer: {exc}")
    assert isinstance(reply, ConsoleOutput)
    return reply
