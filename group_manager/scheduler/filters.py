"""Host filters: each one rejects the hosts a request cannot go to, and says why.

A filter answers per host (``reject``) and, for the hosts it rejected, writes one
sentence for the user (``explain``), so that "no valid host" always comes with the
reasons: "3 hosts: not enough RAM (need 4096 MiB, largest free 2048 MiB); 1 host: down".
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Protocol

from group_manager.capacity import RESOURCES, Resource, free
from group_manager.claims import Request
from group_manager.scheduler.host_state import HostLike


class Filter(Protocol):
    name: str

    def reject(self, host: HostLike, request: Request) -> str | None:
        """None if the host passes; else a short reason key."""

    def explain(self, reason: str, hosts: list[HostLike], request: Request) -> str:
        """One sentence about the hosts rejected for ``reason``."""


class EnabledFilter:
    name = "enabled"

    def reject(self, host: HostLike, request: Request) -> str | None:
        return None if host.enabled else "disabled"

    def explain(self, reason: str, hosts: list[HostLike], request: Request) -> str:
        return "disabled by an operator"


class AliveFilter:
    name = "alive"

    def reject(self, host: HostLike, request: Request) -> str | None:
        return None if host.state == "up" else "down"

    def explain(self, reason: str, hosts: list[HostLike], request: Request) -> str:
        return "down (no report from the host)"


class CapacityFilter:
    """vCPU, RAM and disk against (total - reserved) x allocation ratio."""

    name = "capacity"

    def reject(self, host: HostLike, request: Request) -> str | None:
        for resource in RESOURCES:
            if free(host, resource) + 1e-9 < request.amount(resource.key):
                return resource.key
        return None

    def explain(self, reason: str, hosts: list[HostLike], request: Request) -> str:
        resource = _by_key(reason)
        largest = max(math.floor(free(h, resource) + 1e-9) for h in hosts)
        return (f"not enough {resource.label} (need {request.amount(reason)} {resource.unit}, "
                f"largest free {max(largest, 0)} {resource.unit})")


class ServerGroupFilter:
    """The hard server-group policies, given where the group's members run now.

    ``affinity``: once a member runs somewhere, only that host. ``anti-affinity``:
    never a host that runs a member. The soft variants filter nothing (the scheduler
    orders by them instead).
    """

    name = "server-group"

    def __init__(self, members: Counter[str]):
        self.members = members

    def reject(self, host: HostLike, request: Request) -> str | None:
        group = request.server_group
        if group is None or not self.members:
            return None
        if group.policy == "anti-affinity" and self.members[host.name]:
            return "anti-affinity"
        if group.policy == "affinity" and not self.members[host.name]:
            return "affinity"
        return None

    def explain(self, reason: str, hosts: list[HostLike], request: Request) -> str:
        group = request.server_group
        assert group is not None
        label = f"server group '{group.name}' ({group.id})"
        if reason == "anti-affinity":
            return f"already run a member of anti-affinity {label}"
        where = ", ".join(sorted(self.members))
        return f"not where the members of affinity {label} run ({where})"


def _by_key(key: str) -> Resource:
    return next(r for r in RESOURCES if r.key == key)


DEFAULT_FILTERS: tuple[Filter, ...] = (EnabledFilter(), AliveFilter(), CapacityFilter())
