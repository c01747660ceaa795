"""Host reports: capacity from the hypervisor and every domain's power state.

Sent at start (so a restarted Instance Manager re-reports everything it finds),
every ``report_interval`` (the heartbeat) and soon after every change.
"""

from __future__ import annotations

import time
import uuid

from instance_manager.context import HostContext
from message_bus.messages import DomainState, HostReport, Resources


class Reporter:
    def __init__(self, ctx: HostContext):
        self._ctx = ctx
        self.boot_id = str(uuid.uuid4())  # tells the group this is a fresh start

    def build(self) -> HostReport:
        ctx, opts = self._ctx, self._ctx.options
        observed_at = time.time()  # before reading: any later event is newer news
        inventory = ctx.driver.inventory()
        info = ctx.driver.host_info()
        return HostReport(
            host=ctx.name, group=opts.group, boot_id=self.boot_id,
            hypervisor_type=info.hypervisor_type,
            capacity=Resources(vcpus=info.vcpus, memory_mb=info.memory_mb,
                               disk_gb=info.disk_gb),
            reserved=Resources(vcpus=opts.reserved_vcpus, memory_mb=opts.reserved_memory_mb,
                               disk_gb=opts.reserved_disk_gb),
            domains=[DomainState(instance_id=d.instance_id, power_state=d.power_state)
                     for d in inventory.instances],
            unknown_domains=sorted(inventory.foreign),
            observed_at=observed_at,
        )

    def send(self) -> None:
        # A heartbeat older than three intervals says nothing true: let it expire.
        self._ctx.bus.cast(self._ctx.group_target, self.build(),
                           ttl=self._ctx.options.report_interval * 3)
