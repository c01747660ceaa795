"""Server snapshots (Nova's createImage): an instance's disk into a new image.

The lifecycle table says when a snapshot is legal (409 otherwise, naming the
status); the image is created ``queued`` in the image store, owned by the
instance's project (whoever asks, an admin included, as Nova does); the task is
marked and ``snapshot_instance`` goes to the instance's group, whose host exports
the disk and uploads only the chunks the store lacks.

The snapshot task's id *is* the id of the image it fills. Every later step (the
host's outcome, the deadline sweep, a bus that refused the message) can thus find
the image from the task alone, without a column in the instance table. An image
whose snapshot did not succeed is deleted, never left ``queued`` or ``saving``:
a snapshot that failed leaves nothing behind but the instance's fault message.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from cloud_manager.errors import CloudError, Conflict, Unavailable
from cloud_manager.services import images, servers
from cloud_manager.services.notify import state_changed
from image_store.client import ImageStoreClientError, NotFound
from ironbark.db import utcnow
from message_bus.lifecycle import Action, InvalidAction, Task, TaskState, begin
from message_bus.messages import SnapshotInstance

log = logging.getLogger(__name__)

# Set by the cloud on every snapshot (Nova's names); a request may not set them.
SYSTEM_PROPERTIES = ("image_type", "instance_uuid", "base_image_ref")


def _begin(instance: Instance) -> Task:
    try:
        return begin(Action.SNAPSHOT, instance.vm_state, instance.task_state,
                     has_host=instance.host is not None)
    except InvalidAction as exc:
        raise Conflict(f"{exc}") from None


def create_image(ctx: CloudContext, principal: Principal, server_id: str, *, name: str,
                 properties: dict[str, str] | None = None) -> tuple[Instance, dict[str, Any]]:
    """Start a snapshot of a server; returns the server and the new (queued) image."""
    # Checked first without a lock, so that a refused snapshot creates no image...
    with ctx.sessions() as session:
        instance = servers.get(session, principal, server_id)
        _begin(instance)
        owner, base_image, disk_gb = instance.project_id, instance.image_id, instance.disk_gb
    image_id = str(uuid.uuid4())
    system = {"image_type": "snapshot", "instance_uuid": instance.id,
              "base_image_ref": base_image}
    with images.store_errors():
        record = ctx.images.create(name=name, disk_format="raw", owner=owner,
                                   visibility="private", image_id=image_id,
                                   properties={**(properties or {}), **system},
                                   min_disk=disk_gb)
    # ...and again under the row lock: another action may have started meanwhile.
    now = utcnow()
    try:
        with ctx.sessions.begin() as session:
            instance = servers.get(session, principal, server_id, for_update=True)
            task = _begin(instance)
            previous = (instance.task_state, instance.task_id, instance.task_deadline)
            instance.task_state, instance.task_id = task.task_state.value, image_id
            instance.task_deadline = ctx.deadline(task.task_state, now)
            group = instance.group_name
    except CloudError:
        discard_image(ctx, image_id, "the snapshot was refused")
        raise
    assert group is not None  # has_host implies it was built by a group
    message = SnapshotInstance(instance_id=instance.id, task_id=image_id, image_id=image_id)
    try:
        ctx.bus.cast(servers.group_target(group), message)
    except Exception as exc:
        _undo_task(ctx, instance.id, image_id, previous)
        discard_image(ctx, image_id, "the message bus refused the snapshot")
        raise Unavailable(f"the message bus is unavailable ({exc}); nothing was changed") \
            from exc
    log.info("snapshot of server %s into image %s (%s) sent to group %s", instance.id,
             image_id, name, group)
    state_changed(ctx, instance)
    return instance, record


def _undo_task(ctx: CloudContext, instance_id: str, task_id: str,
               previous: tuple[object, object, object]) -> None:
    """Put the task back as it was, unless something else has replaced it since."""
    with ctx.sessions.begin() as session:
        session.execute(
            sa.update(Instance).where(Instance.id == instance_id, Instance.task_id == task_id)
            .values(task_state=previous[0], task_id=previous[1], task_deadline=previous[2]))


def image_is_active(ctx: CloudContext, image_id: str) -> bool:
    """Whether the snapshot's image was filled (its outcome may still be on the way)."""
    try:
        return ctx.images.get(image_id).get("status") == "active"
    except ImageStoreClientError:
        return False


def discard_image(ctx: CloudContext, image_id: str, why: str) -> None:
    """Delete the image of a snapshot that did not succeed (gone already is fine).

    Never raises: the snapshot's outcome is recorded whatever the store says; an
    image the store could not delete now stays visible to its owner, who may
    delete it.
    """
    try:
        ctx.images.delete(image_id)
    except NotFound:
        return
    except ImageStoreClientError as exc:
        log.error("could not delete image %s of a snapshot that failed (%s): %s", image_id,
                  why, exc)
        return
    log.info("deleted image %s: %s", image_id, why)


def is_snapshot_task(task_state: str | None) -> bool:
    return task_state == TaskState.IMAGE_UPLOADING.value
