"""The spawn workflow: image into the cache, disk and domain from the driver, event back.

Redelivery-safe: a spawn for an instance whose domain already exists (the Instance
Manager died after creating it but before acknowledging) finishes the job and
reports, instead of creating a second guest.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from instance_manager import config_drive
from instance_manager.context import HostContext
from instance_manager.driver.base import InstanceSpec
from instance_manager.image_cache import boot_pin
from message_bus.lifecycle import Event, PowerState
from message_bus.messages import Spawn

log = logging.getLogger(__name__)


def spawn(ctx: HostContext, msg: Spawn) -> None:
    driver = ctx.driver
    current = driver.power_state(msg.instance_id)
    if current is not PowerState.MISSING:
        log.info("domain already exists (%s): completing the spawn", current.value)
        if current is not PowerState.RUNNING:
            driver.power_on(msg.instance_id)
        ctx.emit(msg.instance_id, msg.task_id, Event.SPAWNED,
                 driver.power_state(msg.instance_id))
        return
    assert ctx.options.state_dir is not None
    instance_dir = ctx.options.state_dir / "instances" / msg.instance_id
    made_dir = not instance_dir.exists()
    try:
        base = ctx.images.ensure(msg.image, msg.instance_id)
        kernel, ramdisk = _boot_files(ctx, msg)
        drive = None
        if msg.guest is not None:
            instance_dir.mkdir(parents=True, exist_ok=True)
            drive = config_drive.build(instance_dir, msg.instance_id, msg.name, msg.guest)
        power = driver.spawn(InstanceSpec(
            instance_id=msg.instance_id, name=msg.name, vcpus=msg.flavor.vcpus,
            memory_mb=msg.flavor.memory_mb, disk_gb=msg.flavor.disk_gb,
            image_id=msg.image.id, image_path=base, image_format=msg.image.disk_format,
            instance_dir=instance_dir, kernel_path=kernel, ramdisk_path=ramdisk,
            kernel_cmdline=msg.boot.cmdline if msg.boot is not None else None,
            config_drive=drive,
        ))
    except Exception as exc:
        log.error("spawn failed: %s", exc)
        if made_dir:  # the driver removes only what it made
            shutil.rmtree(instance_dir, ignore_errors=True)
        # The driver undid the spawn and the group drops its claim on BUILD_FAILED (no
        # destroy will come here): the base is no longer this instance's to keep.
        ctx.images.release(msg.instance_id)
        ctx.emit(msg.instance_id, msg.task_id, Event.BUILD_FAILED, PowerState.MISSING,
                 reason=str(exc))
        return
    log.info("spawned %s (%d vCPU, %d MiB) from image %s: %s", msg.name, msg.flavor.vcpus,
             msg.flavor.memory_mb, msg.image.name, power.value)
    ctx.emit(msg.instance_id, msg.task_id, Event.SPAWNED, power)


def _boot_files(ctx: HostContext, msg: Spawn) -> tuple[Path | None, Path | None]:
    """The cached kernel and ramdisk of a direct kernel boot, kept for the instance
    (released with its base image)."""
    if msg.boot is None:
        return None, None
    kernel = ctx.images.ensure(msg.boot.kernel, boot_pin(msg.instance_id, "kernel"))
    ramdisk = (None if msg.boot.ramdisk is None else
               ctx.images.ensure(msg.boot.ramdisk, boot_pin(msg.instance_id, "ramdisk")))
    return kernel, ramdisk
