"""Overcommit arithmetic: capacity = (total - reserved) x allocation_ratio, per resource.

The same formula is used three ways: in SQL by the claim (the truth, atomic), in
Python by the scheduler's filters (a fast first cut on a snapshot) and in the views
shown to operators. ``RESOURCES`` names the columns once for all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from group_manager.db.models import Host
from message_bus.messages import HostView, ResourceView


@dataclass(frozen=True)
class Resource:
    key: str  # the request's field and the view's key
    label: str  # for people: "not enough RAM"
    unit: str
    total: str  # Host column names
    reserved: str
    ratio: str
    used: str


RESOURCES = (
    Resource("vcpus", "vCPUs", "vCPU", "vcpus", "reserved_vcpus", "cpu_allocation_ratio",
             "vcpus_used"),
    Resource("memory_mb", "RAM", "MiB", "memory_mb", "reserved_memory_mb",
             "ram_allocation_ratio", "memory_mb_used"),
    Resource("disk_gb", "disk", "GB", "disk_gb", "reserved_disk_gb", "disk_allocation_ratio",
             "disk_gb_used"),
)


def capacity(total: int, reserved: int, ratio: float) -> float:
    return max(total - reserved, 0) * ratio


def free(host: Host, resource: Resource) -> float:
    cap = capacity(getattr(host, resource.total), getattr(host, resource.reserved),
                   getattr(host, resource.ratio))
    return cap - getattr(host, resource.used)


def resource_view(host: Host, resource: Resource) -> ResourceView:
    total, reserved = getattr(host, resource.total), getattr(host, resource.reserved)
    ratio, used = getattr(host, resource.ratio), getattr(host, resource.used)
    cap = math.floor(capacity(total, reserved, ratio) + 1e-9)
    return ResourceView(total=total, reserved=reserved, allocation_ratio=ratio, capacity=cap,
                        used=used, free=cap - used)


def host_view(host: Host) -> HostView:
    views = {r.key: resource_view(host, r) for r in RESOURCES}
    return HostView(
        name=host.name, group=host.group_name, state=host.state, enabled=host.enabled,
        hypervisor_type=host.hypervisor_type, instances=host.instances,
        last_seen_at=host.last_seen_at.timestamp() if host.last_seen_at else None,
        unknown_domains=list(host.unknown_domains or []), **views,
    )
