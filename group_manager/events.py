"""Instance events from the hosts: record what changed, release claims, tell the cloud."""

from __future__ import annotations

import logging

from group_manager import claims
from group_manager.context import GroupContext
from message_bus.lifecycle import Event
from message_bus.messages import InstanceEvent, InstanceUpdate

log = logging.getLogger(__name__)


def on_instance_event(ctx: GroupContext, msg: InstanceEvent) -> None:
    reason = msg.reason
    if msg.event in (Event.DESTROYED, Event.BUILD_FAILED):
        with ctx.sessions.begin() as session:
            released = claims.release(
                session, msg.instance_id,
                state="released" if msg.event is Event.DESTROYED else "failed",
            )
        if released is not None:
            assert released.host is not None
            ctx.scheduler.released(released.host, claims.request_of(released))
            log.info("released the claim on host %s (%s)", msg.host, msg.event.value)
        if msg.event is Event.BUILD_FAILED:
            reason = f"spawn on host {msg.host} failed: {msg.reason}"
    else:
        with ctx.sessions.begin() as session:
            claims.record_power_state(session, msg.instance_id, msg.power_state,
                                      msg.observed_at)
    ctx.to_cloud(InstanceUpdate(
        instance_id=msg.instance_id, task_id=msg.task_id, event=msg.event, group=ctx.name,
        host=msg.host, power_state=msg.power_state, reason=reason,
        observed_at=msg.observed_at,
    ))

