"""The build workflow: place a new instance, claim its resources, have it spawned.

Redelivery-safe: a build whose instance already holds a claim (the Group Manager
died after claiming but before acknowledging) resumes from the claim instead of
claiming twice; one whose claim was released or failed is not placed again.
"""

from __future__ import annotations

import logging

from group_manager import claims, scheduler
from group_manager.claims import Request
from group_manager.context import GroupContext
from group_manager.db.models import Claim
from message_bus.lifecycle import Event
from message_bus.messages import BuildInstance, InstanceUpdate, Spawn

log = logging.getLogger(__name__)


def build(ctx: GroupContext, msg: BuildInstance) -> None:
    with ctx.sessions() as session:
        existing = session.get(Claim, msg.instance_id)
        state, host = (existing.state, existing.host) if existing else (None, None)
    if state is not None and state != "active":
        log.info("build skipped: the instance's claim is %s", state)
        return
    if host is None:
        request = Request(msg.instance_id, msg.project_id, msg.flavor.vcpus,
                          msg.flavor.memory_mb, msg.flavor.disk_gb)
        try:
            host = scheduler.place(ctx.sessions, ctx.name, ctx.options.scheduler_policy, request)
        except scheduler.NoValidHost as exc:
            log.warning("%s", exc)
            with ctx.sessions.begin() as session:
                claims.record_failure(session, ctx.name, request)
            ctx.to_cloud(InstanceUpdate(instance_id=msg.instance_id, task_id=msg.task_id,
                                        event=Event.BUILD_FAILED, group=ctx.name,
                                        reason=str(exc)))
            return
    else:
        log.info("resuming a build already placed on host %s", host)
    ctx.to_cloud(InstanceUpdate(instance_id=msg.instance_id, task_id=msg.task_id,
                                event=Event.SCHEDULED, group=ctx.name, host=host))
    ctx.to_host(host, Spawn(instance_id=msg.instance_id, name=msg.name, flavor=msg.flavor,
                            image=msg.image, task_id=msg.task_id))
