"""The build workflows: place new instances, claim their resources, have them spawned.

Redelivery-safe: a build whose instance already holds a claim (the Group Manager
died after claiming but before acknowledging) resumes from the claim instead of
claiming twice; one whose claim was released or failed is not placed again.

A multi-create (``BuildInstances``) is all or nothing down to ``min_count``: its
instances are placed one after the other, and if fewer than ``min_count`` fit, the
claims already made are given back and every instance fails with the reason.
"""

from __future__ import annotations

import logging

from group_manager import claims
from group_manager.claims import Request
from group_manager.context import GroupContext
from group_manager.db.models import Claim
from group_manager.scheduler import NoValidHost
from message_bus.lifecycle import Event
from message_bus.messages import BuildInstance, BuildInstances, InstanceUpdate, Spawn

log = logging.getLogger(__name__)


def build(ctx: GroupContext, msg: BuildInstance) -> None:
    state, host = _existing(ctx, msg.instance_id)
    if state is not None and state != "active":
        log.info("build skipped: the instance's claim is %s", state)
        return
    if host is None:
        try:
            host = ctx.scheduler.place(_request(msg))
        except NoValidHost as exc:
            log.warning("%s", exc)
            _fail(ctx, msg, str(exc))
            return
    else:
        log.info("resuming a build already placed on host %s", host)
    _dispatch(ctx, msg, host)


def build_many(ctx: GroupContext, msg: BuildInstances) -> None:
    placed: list[tuple[BuildInstance, str]] = []
    unplaced: list[BuildInstance] = []
    refusal: str | None = None
    for one in msg.builds:
        state, host = _existing(ctx, one.instance_id)
        if state is not None and state != "active":
            unplaced.append(one)  # refused or given back by an earlier delivery
            continue
        if host is None and refusal is None:
            try:
                host = ctx.scheduler.place(_request(one))
            except NoValidHost as exc:
                refusal = str(exc)
        if host is None:
            unplaced.append(one)
        else:
            placed.append((one, host))
    why = refusal or "refused by an earlier delivery of this request"
    if len(placed) < msg.min_count:
        log.warning("reservation %s: only %d of min_count %d fit; giving back %d claims",
                    msg.reservation_id, len(placed), msg.min_count, len(placed))
        _give_back(ctx, [one for one, _ in placed])
        reason = (f"only {len(placed)} of the {msg.min_count} servers this request needs "
                  f"at least could be placed, so none was: {why}")
        for one in msg.builds:
            _fail(ctx, one, reason)
        return
    for one, host in placed:
        _dispatch(ctx, one, host)
    for one in unplaced:
        _fail(ctx, one, f"{len(placed)} of {len(msg.builds)} servers placed (min_count "
                        f"{msg.min_count} met); this one did not fit: {why}")


def _request(msg: BuildInstance) -> Request:
    return Request(msg.instance_id, msg.project_id, msg.flavor.vcpus, msg.flavor.memory_mb,
                   msg.flavor.disk_gb, msg.server_group)


def _existing(ctx: GroupContext, instance_id: str) -> tuple[str | None, str | None]:
    """(claim state, host) of an instance this group already saw, or (None, None)."""
    with ctx.sessions() as session:
        claim = session.get(Claim, instance_id)
        return (claim.state, claim.host) if claim else (None, None)


def _dispatch(ctx: GroupContext, msg: BuildInstance, host: str) -> None:
    ctx.to_cloud(InstanceUpdate(instance_id=msg.instance_id, task_id=msg.task_id,
                                event=Event.SCHEDULED, group=ctx.name, host=host))
    ctx.to_host(host, Spawn(instance_id=msg.instance_id, name=msg.name, flavor=msg.flavor,
                            image=msg.image, task_id=msg.task_id, boot=msg.boot,
                            guest=msg.guest))


def _fail(ctx: GroupContext, msg: BuildInstance, reason: str) -> None:
    with ctx.sessions.begin() as session:
        if session.get(Claim, msg.instance_id) is None:
            claims.record_failure(session, ctx.name, _request(msg))
    ctx.to_cloud(InstanceUpdate(instance_id=msg.instance_id, task_id=msg.task_id,
                                event=Event.BUILD_FAILED, group=ctx.name, reason=reason))


def _give_back(ctx: GroupContext, builds: list[BuildInstance]) -> None:
    with ctx.sessions.begin() as session:
        released = [claims.release(session, one.instance_id, state="failed") for one in builds]
    for claim in released:
        if claim is not None and claim.host is not None:
            ctx.scheduler.released(claim.host, claims.request_of(claim))
