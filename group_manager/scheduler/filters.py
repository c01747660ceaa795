"""Host filters: each one rejects the hosts a request cannot go to, and says why.

A filter answers per host (``reject``) and, for the hosts it rejected, writes one
sentence for the user (``explain``), so that "no valid host" always comes with the
reasons: "3 hosts: not enough RAM (need 4096 MiB, largest free 2048 MiB); 1 host: down".
"""

from __future__ import annotations

import math
from typing import Protocol

from group_manager.capacity import RESOURCES, Resource, free
from group_manager.claims import Request
from group_manager.db.models import Host


class Filter(Protocol):
    name: str

    def reject(self, host: Host, request: Request) -> str | None:
        """None if the host passes; else a short reason key."""

    def explain(self, reason: str, hosts: list[Host], request: Request) -> str:
        """One sentence about the hosts rejected for ``reason``."""


class EnabledFilter:
    name = "enabled"

    def reject(self, host: Host, request: Request) -> str | None:
        return None if host.enabled else "disabled"

    def explain(self, reason: str, hosts: list[Host], request: Request) -> str:
        return "disabled by an operator"


class AliveFilter:
    name = "alive"

    def reject(self, host: Host, request: Request) -> str | None:
        return None if host.state == "up" else "down"

    def explain(self, reason: str, hosts: list[Host], request: Request) -> str:
        return "down (no report from the host)"


class CapacityFilter:
    """vCPU, RAM and disk against (total - reserved) x allocation ratio."""

    name = "capacity"

    def reject(self, host: Host, request: Request) -> str | None:
        for resource in RESOURCES:
            if free(host, resource) + 1e-9 < request.amount(resource.key):
                return resource.key
        return None

    def explain(self, reason: str, hosts: list[Host], request: Request) -> str:
        resource = _by_key(reason)
        largest = max(math.floor(free(h, resource) + 1e-9) for h in hosts)
        return (f"not enough {resource.label} (need {request.amount(reason)} {resource.unit}, "
                f"largest free {max(largest, 0)} {resource.unit})")


def _by_key(key: str) -> Resource:
    return next(r for r in RESOURCES if r.key == key)


DEFAULT_FILTERS: tuple[Filter, ...] = (EnabledFilter(), AliveFilter(), CapacityFilter())
