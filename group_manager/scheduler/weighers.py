"""Weighers: the order in which the scheduler tries the hosts that pass the filters.

- ``spread`` puts the next instance where the most is free (least loaded first).
- ``pack`` puts it where the least is free that still fits (consolidation).
- ``round-robin`` rotates the starting host: each placement starts at the host after
  the one chosen last, in name order (Eucalyptus' ROUNDROBIN), whatever the load.
- ``power-save`` fills hosts already running instances (most loaded first) and wakes
  an empty host only when none of them fits (Eucalyptus' POWERSAVE), so as many hosts
  as possible stay empty and can be powered down. It differs from ``pack`` when
  hosts differ in size: pack prefers a small empty host (little free) to a big busy
  one; power-save never wakes a host while a running one fits.

Each policy gives every host a sort key computed from that host alone, so the
scheduler can keep its hosts sorted and move only the host a claim changed, instead
of re-weighing every host for every request (at 1,000 hosts that re-weighing alone
costs more than the claim). Free RAM and free vCPU are each divided by the largest
capacity of that resource in the group (``Scale``) and summed, so neither unit
dominates.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from group_manager.capacity import RESOURCES, Resource, capacity, free
from group_manager.db.models import Host

_WEIGHED = tuple(r for r in RESOURCES if r.key in ("memory_mb", "vcpus"))

SortKey = tuple[object, ...]


@dataclass(frozen=True)
class Scale:
    """Per weighed resource, the largest capacity of any host of the group."""

    largest: tuple[float, ...]

    @classmethod
    def of(cls, hosts: Iterable[Host]) -> Scale:
        largest = [1.0] * len(_WEIGHED)
        for host in hosts:
            for i, r in enumerate(_WEIGHED):
                largest[i] = max(largest[i], _capacity(host, r))
        return cls(tuple(largest))

    def free_score(self, host: Host) -> float:
        return sum(free(host, r) / self.largest[i] for i, r in enumerate(_WEIGHED))


def _capacity(host: Host, r: Resource) -> float:
    return capacity(getattr(host, r.total), getattr(host, r.reserved), getattr(host, r.ratio))


class Policy(Protocol):
    def key(self, host: Host, scale: Scale) -> SortKey:
        """Smaller keys are tried first."""

    def start(self, group: str) -> SortKey | None:
        """Where in key order the walk begins (it wraps round); None: at the start."""

    def chosen(self, group: str, host: str) -> None:
        """A claim on ``host`` succeeded (for policies that remember)."""


class _Stateless:
    def start(self, group: str) -> SortKey | None:
        return None

    def chosen(self, group: str, host: str) -> None:
        pass


class Spread(_Stateless):
    def key(self, host: Host, scale: Scale) -> SortKey:
        return (-scale.free_score(host), host.name)


class Pack(_Stateless):
    def key(self, host: Host, scale: Scale) -> SortKey:
        return (scale.free_score(host), host.name)


class PowerSave(_Stateless):
    def key(self, host: Host, scale: Scale) -> SortKey:
        return (host.instances == 0, scale.free_score(host), host.name)


class RoundRobin:
    """Remembers, per group, the host chosen last. In memory, like Eucalyptus' cluster
    controller: a restarted scheduler starts again from the first host, and two
    scheduler processes of one group rotate independently (claims stay atomic)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def key(self, host: Host, scale: Scale) -> SortKey:
        return (host.name,)

    def start(self, group: str) -> SortKey | None:
        with self._lock:
            last = self._last.get(group)
        # The first key after the last host's: its name followed by the smallest suffix.
        return None if last is None else (last + "\0",)

    def chosen(self, group: str, host: str) -> None:
        with self._lock:
            self._last[group] = host


def order(policy: Policy, group: str, hosts: Sequence[Host]) -> list[Host]:
    """All of ``hosts`` in the order the policy tries them (for tests and reasons)."""
    scale = Scale.of(hosts)
    keyed = sorted(((policy.key(h, scale), h) for h in hosts), key=lambda kh: kh[0])
    start = policy.start(group)
    if start is not None:
        cut = next((i for i, (k, _) in enumerate(keyed) if k >= start), len(keyed))
        keyed = keyed[cut:] + keyed[:cut]
    return [h for _, h in keyed]


POLICIES: dict[str, type[Policy]] = {
    "spread": Spread, "pack": Pack, "round-robin": RoundRobin, "power-save": PowerSave,
}
"""Policy classes by name: each scheduler makes its own (round-robin remembers)."""
