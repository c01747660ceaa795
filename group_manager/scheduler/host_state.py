"""A host as the scheduler holds it in memory, beside the ORM row it mirrors."""

from __future__ import annotations

from dataclasses import dataclass

from group_manager.db.models import Host


@dataclass(slots=True)
class HostState:
    """The columns of a host row the filters and weighers read (same names as
    ``Host``, so they work on either)."""

    name: str
    group_name: str
    state: str
    enabled: bool
    vcpus: int
    memory_mb: int
    disk_gb: int
    reserved_vcpus: int
    reserved_memory_mb: int
    reserved_disk_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    vcpus_used: int
    memory_mb_used: int
    disk_gb_used: int
    instances: int


HostLike = Host | HostState
"""What filters and weighers read: they use only the columns both have."""
