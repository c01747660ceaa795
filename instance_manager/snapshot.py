"""The snapshot workflow: the instance's disk as a raw file, then only its new chunks.

The driver writes a consistent raw image of the disk to a sparse temporary file in
the instance's directory; the image store's client cuts it the way the store does
and uploads only the chunks the store lacks (a disk that is mostly its base image
costs little more than the blocks the guest changed). The temporary file is removed
whatever happens, and the outcome goes back as an ``instance_event``.

Redelivery-safe: a snapshot whose image is already active (the host died after the
upload but before reporting) is reported done without a second upload; one whose
image is no longer ``queued`` (an upload cut half way, a deleted image) fails with a
reason rather than write into it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from image_store.client import ImageStoreClient, ImageStoreClientError, NotFound
from instance_manager.context import HostContext
from instance_manager.driver.base import DriverError, InstanceNotFound
from message_bus.lifecycle import Event, PowerState
from message_bus.messages import SnapshotDisk

log = logging.getLogger(__name__)


def export_path(ctx: HostContext, msg: SnapshotDisk) -> Path:
    """Where the raw export of this task is written (named by task: a retry overwrites
    a crashed attempt's leftover instead of adding another)."""
    assert ctx.options.state_dir is not None
    return ctx.options.state_dir / "instances" / msg.instance_id / f"snapshot-{msg.task_id}.raw"


def snapshot(ctx: HostContext, msg: SnapshotDisk) -> dict[str, int] | None:
    """Export and upload; the upload's counters, or None if nothing was sent (the
    snapshot failed, or its image was already filled). The outcome is always emitted."""
    store = ctx.store
    if store is None:
        _failed(ctx, msg, f"host {ctx.name} has no image store client to upload to")
        return None
    try:
        status = store.get(msg.image_id).get("status")
    except NotFound:
        _failed(ctx, msg, f"image {msg.image_id} no longer exists in the image store")
        return None
    except ImageStoreClientError as exc:
        _failed(ctx, msg, f"the image store cannot be asked about image {msg.image_id}: {exc}")
        return None
    if status == "active":
        log.info("image %s is already active: the snapshot was done before", msg.image_id)
        ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_DONE,
                 ctx.driver.power_state(msg.instance_id))
        return None
    if status != "queued":
        _failed(ctx, msg, f"image {msg.image_id} is {status}, not queued: it cannot take "
                          "a snapshot")
        return None
    try:
        counters = _export_and_upload(ctx, store, msg)
    except InstanceNotFound as exc:
        _failed(ctx, msg, f"snapshot into image {msg.image_id} failed: {exc}",
                PowerState.MISSING)
        return None
    except Exception as exc:
        if not isinstance(exc, DriverError | ImageStoreClientError | OSError):
            log.exception("unexpected error in the snapshot into image %s", msg.image_id)
        _failed(ctx, msg, f"snapshot into image {msg.image_id} failed: {exc}")
        return None
    log.info("snapshot of %s into image %s: sent %d of %d chunks (%d bytes)",
             msg.instance_id, msg.image_id, counters["sent_chunks"], counters["chunks"],
             counters["sent_bytes"])
    ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_DONE,
             ctx.driver.power_state(msg.instance_id))
    return counters


def _export_and_upload(ctx: HostContext, store: ImageStoreClient,
                       msg: SnapshotDisk) -> dict[str, int]:
    dest = export_path(ctx, msg)
    try:
        ctx.driver.export_disk(msg.instance_id, dest)
        _, counters = store.upload_deduplicated(msg.image_id, dest,
                                                ctx.options.image_fetch_workers)
        return counters
    finally:
        dest.unlink(missing_ok=True)


def _failed(ctx: HostContext, msg: SnapshotDisk, reason: str,
            power: PowerState | None = None) -> None:
    log.error("%s", reason)
    ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_FAILED,
             power if power is not None else ctx.driver.power_state(msg.instance_id),
             reason=reason)
