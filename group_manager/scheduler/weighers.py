"""Weighers: order the hosts that passed the filters, by policy.

- ``spread`` puts the next instance where the most is free (least loaded first).
- ``pack`` puts it where the least is free that still fits (consolidation).
- ``round-robin`` rotates the starting host: each placement starts at the host after
  the one chosen last, in name order (Eucalyptus' ROUNDROBIN), whatever the load.
- ``power-save`` fills hosts already running instances (most loaded first) and wakes
  an empty host only when none of them fits (Eucalyptus' POWERSAVE), so as many hosts
  as possible stay empty and can be powered down. It differs from ``pack`` when
  hosts differ in size: pack prefers a small empty host (little free) to a big busy
  one; power-save never wakes a host while a running one fits.

Free RAM and free vCPU are each normalised to 0..1 across the candidates and summed,
so neither unit dominates.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from group_manager.capacity import RESOURCES, free
from group_manager.db.models import Host

_WEIGHED = [r for r in RESOURCES if r.key in ("memory_mb", "vcpus")]


class Policy(Protocol):
    def order(self, group: str, hosts: Sequence[Host]) -> list[Host]:
        """The candidates in the order to try claiming them."""

    def chosen(self, group: str, host: str) -> None:
        """A claim on ``host`` succeeded (for policies that remember)."""


def _normalised_free(hosts: Sequence[Host]) -> dict[str, float]:
    score = dict.fromkeys((h.name for h in hosts), 0.0)
    for resource in _WEIGHED:
        values = {h.name: free(h, resource) for h in hosts}
        low, high = min(values.values()), max(values.values())
        span = high - low
        for name, value in values.items():
            score[name] += (value - low) / span if span > 0 else 0.0
    return score


class _Stateless:
    def chosen(self, group: str, host: str) -> None:
        pass


class Spread(_Stateless):
    def order(self, group: str, hosts: Sequence[Host]) -> list[Host]:
        score = _normalised_free(hosts)
        return sorted(hosts, key=lambda h: (-score[h.name], h.name))


class Pack(_Stateless):
    def order(self, group: str, hosts: Sequence[Host]) -> list[Host]:
        score = _normalised_free(hosts)
        return sorted(hosts, key=lambda h: (score[h.name], h.name))


class PowerSave(_Stateless):
    def order(self, group: str, hosts: Sequence[Host]) -> list[Host]:
        score = _normalised_free(hosts)
        return sorted(hosts, key=lambda h: (h.instances == 0, score[h.name], h.name))


class RoundRobin:
    """Remembers, per group, the host chosen last. In memory, like Eucalyptus' cluster
    controller: a restarted scheduler starts again from the first host, and two
    scheduler processes of one group rotate independently (claims stay atomic)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def order(self, group: str, hosts: Sequence[Host]) -> list[Host]:
        ordered = sorted(hosts, key=lambda h: h.name)
        with self._lock:
            last = self._last.get(group)
        if last is None:
            return ordered
        start = next((i for i, h in enumerate(ordered) if h.name > last), 0)
        return ordered[start:] + ordered[:start]

    def chosen(self, group: str, host: str) -> None:
        with self._lock:
            self._last[group] = host


POLICIES: dict[str, Policy] = {
    "spread": Spread(), "pack": Pack(), "round-robin": RoundRobin(), "power-save": PowerSave(),
}
