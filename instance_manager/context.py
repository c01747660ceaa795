"""What every Instance Manager workflow needs: its host's driver, bus, image cache and
image store."""

from __future__ import annotations

import time
from dataclasses import dataclass

from image_store.client import ImageStoreClient
from instance_manager.driver.base import HypervisorDriver
from instance_manager.image_cache import ImageCache
from ironbark.config import HostOptions
from message_bus import Bus
from message_bus.lifecycle import Event, PowerState
from message_bus.messages import InstanceEvent


@dataclass
class HostContext:
    """``store`` is the image store's client for what the host uploads (snapshots):
    the one the cache fetches with. None: this host cannot upload (a snapshot fails
    with that reason)."""

    options: HostOptions
    driver: HypervisorDriver
    bus: Bus
    images: ImageCache
    store: ImageStoreClient | None = None

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def group_target(self) -> str:
        return f"group.{self.options.group}"

    def emit(self, instance_id: str, task_id: str, event: Event, power: PowerState,
             reason: str = "") -> None:
        """Tell the group how a task ended, stamped with the host's clock."""
        self.bus.cast(self.group_target, InstanceEvent(
            instance_id=instance_id, host=self.name, task_id=task_id, event=event,
            power_state=power, reason=reason, observed_at=time.time(),
        ))
