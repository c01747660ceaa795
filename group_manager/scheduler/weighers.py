"""Weighers: order the hosts that passed the filters, by policy.

``spread`` puts the next instance where the most is free (least loaded first);
``pack`` where the least is free that still fits (consolidation: empty hosts stay
empty). Free RAM and free vCPU are each normalised to 0..1 across the candidates and
summed, so neither unit dominates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from group_manager.capacity import RESOURCES, free
from group_manager.db.models import Host

_WEIGHED = [r for r in RESOURCES if r.key in ("memory_mb", "vcpus")]


def _normalised_free(hosts: Sequence[Host]) -> dict[str, float]:
    score = dict.fromkeys((h.name for h in hosts), 0.0)
    for resource in _WEIGHED:
        values = {h.name: free(h, resource) for h in hosts}
        low, high = min(values.values()), max(values.values())
        span = high - low
        for name, value in values.items():
            score[name] += (value - low) / span if span > 0 else 0.0
    return score


def spread(hosts: Sequence[Host]) -> list[Host]:
    score = _normalised_free(hosts)
    return sorted(hosts, key=lambda h: (-score[h.name], h.name))


def pack(hosts: Sequence[Host]) -> list[Host]:
    score = _normalised_free(hosts)
    return sorted(hosts, key=lambda h: (score[h.name], h.name))


POLICIES: dict[str, Callable[[Sequence[Host]], list[Host]]] = {"spread": spread, "pack": pack}
