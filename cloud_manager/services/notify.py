"""Instance state-change notifications on the bus's topic exchange, for any listener."""

from __future__ import annotations

import logging

from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from message_bus.lifecycle import status
from message_bus.messages import InstanceStateChanged

log = logging.getLogger(__name__)


def state_changed(ctx: CloudContext, instance: Instance) -> None:
    """Publish where an instance is now. Best effort: a notification is not state."""
    try:
        ctx.bus.publish(InstanceStateChanged(
            instance_id=instance.id, project_id=instance.project_id,
            status=status(instance.vm_state, instance.task_state), vm_state=instance.vm_state,
            task_state=instance.task_state, power_state=instance.power_state,
            host=instance.host, fault=instance.fault,
        ))
    except Exception:
        log.warning("could not publish the state of %s", instance.id, exc_info=True)
