"""The deadline sweep: no instance stays in a transitional state forever.

Every task has a deadline (lifecycle table, overridable in configuration). A task
that outlives it was lost somewhere (a message, a host, a Group Manager): ask the
instance's group what its host reports now and settle the instance accordingly
(``lifecycle.reconcile``), with a fault message that says what happened.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from cloud_manager.services import snapshots
from cloud_manager.services.network import server_ports
from cloud_manager.services.notify import state_changed
from cloud_manager.services.servers import group_target
from ironbark.db import utcnow
from message_bus import context
from message_bus.errors import BusError
from message_bus.lifecycle import (
    Event,
    Outcome,
    PowerState,
    TaskState,
    VmState,
    apply_event,
    reconcile,
    status,
)
from message_bus.messages import DescribeInstance, InstanceObservation

log = logging.getLogger(__name__)

_BATCH = 100


def sweep(ctx: CloudContext) -> int:
    """Settle every overdue task; returns how many were settled."""
    with ctx.sessions() as session:
        overdue = session.scalars(
            sa.select(Instance.id).where(Instance.task_deadline < utcnow(),
                                         Instance.deleted_at.is_(None)).limit(_BATCH)
        ).all()
    settled = 0
    for instance_id in overdue:
        with context.bound(instance_id=instance_id):
            settled += settle(ctx, instance_id)
    return settled


def settle(ctx: CloudContext, instance_id: str) -> bool:
    with ctx.sessions() as session:
        before = session.get(Instance, instance_id)
        if before is None or before.task_state is None or before.task_deadline is None:
            return False
        task_id, task_state, vm_state = before.task_id, before.task_state, before.vm_state
        group, host = before.group_name, before.host
    observed: PowerState | None = None
    if group is None:
        note = "no group was chosen"
    else:
        try:
            reply = ctx.bus.call(group_target(group), DescribeInstance(instance_id=instance_id),
                                 timeout=min(ctx.config.bus.rpc_timeout, 10.0))
            assert isinstance(reply, InstanceObservation)
            observed, note, host = reply.power_state, reply.note, reply.host or host
        except BusError as exc:
            note = f"group '{group}' did not answer ({exc})"
    deadline = ctx.deadline_seconds(TaskState(task_state))
    outcome = reconcile(vm_state, task_state, observed, deadline, host, note)
    snapshot = snapshots.is_snapshot_task(task_state)
    if snapshot:
        outcome = _overdue_snapshot(ctx, task_id, vm_state, task_state, outcome)
    with ctx.sessions.begin() as session:
        instance = session.get(Instance, instance_id, with_for_update=True)
        if instance is None or instance.task_id != task_id:
            return False  # the task ended on its own while we asked
        instance.vm_state, instance.task_state = outcome.vm_state.value, None
        instance.task_id = instance.task_deadline = None
        instance.host = host
        if observed is not None:
            instance.power_state = observed.value
        if outcome.fault is not None:
            instance.fault, instance.fault_at = outcome.fault, utcnow()
        if outcome.vm_state is VmState.DELETED:
            instance.deleted_at = utcnow()
            server_ports.release(session, [instance.id])
    log.warning("task %s past its deadline: now %s%s", task_state,
                status(instance.vm_state, None),
                f" ({outcome.fault})" if outcome.fault else "")
    state_changed(ctx, instance)
    if snapshot and outcome.fault is not None:
        snapshots.discard_image(ctx, task_id, "the snapshot did not finish in time")
    return True


def _overdue_snapshot(ctx: CloudContext, image_id: str, vm_state: str, task_state: str,
                      outcome: Outcome) -> Outcome:
    """No power state shows that a snapshot finished, but its image does: an active
    image means only the host's report was lost. Otherwise the image is deleted (once
    the task is settled) and the fault says so."""
    if snapshots.image_is_active(ctx, image_id):
        return Outcome(apply_event(Event.ACTION_DONE, vm_state, task_state)[0], None)
    return Outcome(outcome.vm_state, f"{outcome.fault}; its image {image_id} is deleted")
