"""What the groups report back: task outcomes, power-state changes, capacity summaries.

An update applies only to the task it belongs to (same task id) and only through a
transition the lifecycle table allows; anything else is a late or duplicated
message and is dropped with a log line, so it can never corrupt an instance.
"""

from __future__ import annotations

import datetime as dt
import logging

from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from cloud_manager.services import groups, snapshots
from cloud_manager.services.network import server_ports
from cloud_manager.services.notify import state_changed
from ironbark.db import utcnow
from message_bus.lifecycle import (
    SPAWN,
    Event,
    InvalidAction,
    VmState,
    apply_event,
    status,
    vm_state_for_power,
)
from message_bus.messages import GroupSummary, InstanceUpdate, PowerStateSync

log = logging.getLogger(__name__)


def _timestamp(seconds: float | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds is not None else utcnow()


def apply_update(ctx: CloudContext, msg: InstanceUpdate) -> None:
    now = utcnow()
    with ctx.sessions.begin() as session:
        instance = session.get(Instance, msg.instance_id, with_for_update=True)
        if instance is None or instance.deleted_at is not None:
            log.info("%s for an unknown or deleted instance dropped", msg.event.value)
            return
        if msg.task_id != instance.task_id:
            log.info("late %s of task %s dropped (task now %s)", msg.event.value, msg.task_id,
                     instance.task_id)
            return
        try:
            vm_state, task_state = apply_event(msg.event, instance.vm_state,
                                               instance.task_state)
        except InvalidAction as exc:
            log.warning("%s dropped: %s", msg.event.value, exc)
            return
        failed_snapshot = (snapshots.is_snapshot_task(instance.task_state)
                           and msg.event is Event.ACTION_FAILED)
        if msg.host is not None:
            instance.host = msg.host
        if msg.power_state is not None:
            instance.power_state = msg.power_state.value
            instance.power_state_at = _timestamp(msg.observed_at)
        if msg.event in (Event.BUILD_FAILED, Event.ACTION_FAILED):
            instance.fault, instance.fault_at = msg.reason, now
        elif task_state is None:
            instance.fault = instance.fault_at = None
        if msg.event is Event.SPAWNED:
            instance.launched_at = now
        if msg.event is Event.SCHEDULED:
            instance.task_deadline = now + dt.timedelta(
                seconds=ctx.config.task_deadline(SPAWN.task_state.value, SPAWN.deadline))
        if vm_state is VmState.DELETED:
            instance.deleted_at = now
            server_ports.release(session, [instance.id])
        instance.vm_state = vm_state.value
        instance.task_state = task_state.value if task_state is not None else None
        if task_state is None:
            instance.task_id = instance.task_deadline = None
        log.info("%s: now %s", msg.event.value, status(instance.vm_state, instance.task_state))
    state_changed(ctx, instance)
    if failed_snapshot:
        snapshots.discard_image(ctx, msg.task_id, f"the snapshot failed: {msg.reason}")


def apply_power_sync(ctx: CloudContext, msg: PowerStateSync) -> None:
    """Follow guests that changed outside any task (shut down inside, or vanished)."""
    for change in msg.changes:
        observed_at = _timestamp(change.observed_at)
        with ctx.sessions.begin() as session:
            instance = session.get(Instance, change.instance_id, with_for_update=True)
            if instance is None or instance.deleted_at is not None:
                continue
            if instance.power_state_at is not None and instance.power_state_at >= observed_at:
                continue  # we already know something newer
            if instance.host != change.host:
                continue
            instance.power_state, instance.power_state_at = change.power_state.value, observed_at
            if instance.task_state is not None or instance.vm_state in (
                    VmState.BUILDING, VmState.ERROR):
                continue  # a task in flight owns the state; errors stay for a person to see
            settled = vm_state_for_power(change.power_state)
            if settled is None:
                instance.vm_state = VmState.ERROR.value
                instance.fault = (f"the guest's domain disappeared from host {change.host}")
                instance.fault_at = utcnow()
            elif settled.value != instance.vm_state:
                instance.vm_state = settled.value
            else:
                continue
            log.warning("instance %s found %s on host %s: now %s", instance.id,
                        change.power_state.value, change.host,
                        status(instance.vm_state, instance.task_state))
        state_changed(ctx, instance)


def apply_summary(ctx: CloudContext, msg: GroupSummary) -> None:
    with ctx.sessions.begin() as session:
        groups.record_summary(session, msg)
