"""Servers: create, list, show, act on and delete, on behalf of a project.

Creating is ``services.server_create`` (one request may make several servers); its
entry points are re-exported here.

Every change of state goes through ``message_bus.lifecycle``: the table says whether
an action is legal now (409 otherwise, naming the status) and which task it starts.
The row is written before the bus message is sent; if the bus refuses the message,
the change is undone and the caller gets 503, so a failed request changes nothing.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from cloud_manager.errors import Conflict, NotFound, Unavailable
from cloud_manager.services import snapshots
from cloud_manager.services.network import server_ports
from cloud_manager.services.notify import state_changed
from cloud_manager.services.server_create import (  # noqa: F401 (re-exported)
    Created,
    CreateRequest,
    create,
    group_target,
)
from ironbark.db import utcnow
from message_bus.lifecycle import Action, InvalidAction, VmState, begin, status
from message_bus.messages import DeleteInstance, InstanceAction

log = logging.getLogger(__name__)

STATUSES = ("BUILD", "ACTIVE", "PAUSED", "SUSPENDED", "SHUTOFF", "REBOOT", "HARD_REBOOT",
            "ERROR")


def _scoped(principal: Principal, all_projects: bool = False) -> sa.ColumnElement[bool]:
    live = Instance.deleted_at.is_(None)
    if principal.is_admin and all_projects:
        return live
    return sa.and_(live, Instance.project_id == principal.project_id)


def get(session: Session, principal: Principal, server_id: str, *,
        for_update: bool = False) -> Instance:
    """A live server of the principal's project (any project's, for the admin)."""
    query = sa.select(Instance).where(Instance.id == server_id,
                                      _scoped(principal, all_projects=True))
    if for_update:
        query = query.with_for_update()
    instance = session.scalars(query).first()
    if instance is None:
        raise NotFound(f"server '{server_id}' not found")
    return instance


def listing(session: Session, principal: Principal, *, all_projects: bool = False,
            status_filter: str | None = None, name: str | None = None,
            reservation_id: str | None = None) -> list[Instance]:
    query = sa.select(Instance).where(_scoped(principal, all_projects))
    if name is not None:
        query = query.where(Instance.name == name)
    if reservation_id is not None:
        query = query.where(Instance.reservation_id == reservation_id)
    rows = session.scalars(query.order_by(Instance.created_at, Instance.id)).all()
    if status_filter is not None:
        rows = [r for r in rows if status(r.vm_state, r.task_state) == status_filter]
    return list(rows)


def act(ctx: CloudContext, principal: Principal, server_id: str, action: Action) -> Instance:
    """Start a power action: check it is legal, mark the task, send it to the group."""
    now = utcnow()
    with ctx.sessions.begin() as session:
        instance = get(session, principal, server_id, for_update=True)
        try:
            task = begin(action, instance.vm_state, instance.task_state,
                         has_host=instance.host is not None)
        except InvalidAction as exc:
            raise Conflict(f"{exc}") from None
        previous = (instance.task_state, instance.task_id, instance.task_deadline)
        instance.task_state, instance.task_id = task.task_state.value, str(uuid.uuid4())
        instance.task_deadline = ctx.deadline(task.task_state, now)
        message = InstanceAction(instance_id=instance.id, action=action,
                                 task_id=instance.task_id)
        group = instance.group_name
    assert group is not None  # has_host implies it was built by a group
    _send_or_undo(ctx, group, message, instance.id, previous)
    state_changed(ctx, instance)
    return instance


def delete(ctx: CloudContext, principal: Principal, server_id: str) -> Instance:
    now = utcnow()
    with ctx.sessions.begin() as session:
        instance = get(session, principal, server_id, for_update=True)
        try:
            task = begin(Action.DELETE, instance.vm_state, instance.task_state,
                         has_host=instance.host is not None)
        except InvalidAction as exc:
            raise Conflict(f"{exc}") from None
        previous = (instance.task_state, instance.task_id, instance.task_deadline)
        group = instance.group_name
        if group is None:  # never sent to any group: nothing exists anywhere else
            instance.vm_state, instance.task_state = VmState.DELETED.value, None
            instance.task_id = instance.task_deadline = None
            instance.deleted_at = now
            server_ports.release(session, [instance.id])
        else:
            instance.task_state, instance.task_id = task.task_state.value, str(uuid.uuid4())
            instance.task_deadline = ctx.deadline(task.task_state, now)
            message = DeleteInstance(instance_id=instance.id, task_id=instance.task_id)
    if group is not None:
        _send_or_undo(ctx, group, message, instance.id, previous)
    if snapshots.is_snapshot_task(previous[0]) and previous[1] is not None:
        # A delete overrides a snapshot in flight (the image id is its task id): an
        # image the host never finished would stay queued or saving for ever.
        image_id = str(previous[1])
        if not snapshots.image_is_active(ctx, image_id):
            snapshots.discard_image(ctx, image_id, f"server {instance.id} was deleted "
                                    "during its snapshot")
    state_changed(ctx, instance)
    return instance


def _send_or_undo(ctx: CloudContext, group: str, message: InstanceAction | DeleteInstance,
                  instance_id: str, previous: tuple[object, object, object]) -> None:
    try:
        ctx.bus.cast(group_target(group), message)
    except Exception as exc:
        with ctx.sessions.begin() as session:
            session.execute(
                sa.update(Instance).where(Instance.id == instance_id,
                                          Instance.task_id == message.task_id)
                .values(task_state=previous[0], task_id=previous[1], task_deadline=previous[2]))
        raise Unavailable(f"the message bus is unavailable ({exc}); nothing was changed") \
            from exc
