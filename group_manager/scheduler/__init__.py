"""Placement: filter the group's hosts, weigh the rest by policy, claim atomically.

Filters and weighers work on a snapshot of the host rows; the claim is the truth.
When a claim loses a race (the host filled up since the snapshot), the next host in
weighed order is tried, and after a full pass the snapshot is re-read, so concurrent
schedulers converge instead of failing spuriously.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from group_manager.claims import Request, try_claim
from group_manager.db.models import Host
from group_manager.scheduler.filters import DEFAULT_FILTERS, Filter
from group_manager.scheduler.weighers import POLICIES

log = logging.getLogger(__name__)

_PASSES = 3


class NoValidHost(Exception):
    """Nothing fits; the message says, per filter, how many hosts were rejected and why."""


def place(
    session_factory: Callable[[], Session],
    group: str,
    policy: str,
    request: Request,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
) -> str:
    """Claim a host for ``request`` and return its name, or raise NoValidHost."""
    weigher = POLICIES[policy]
    for _ in range(_PASSES):
        with session_factory() as session:
            hosts = _snapshot(session, group)
            candidates, rejected = _filter(hosts, request, filters)
            if not candidates:
                raise NoValidHost(_explain(group, request, hosts, rejected, filters))
            for host in weigher.order(group, candidates):
                with session.begin():
                    if try_claim(session, host.name, group, request):
                        weigher.chosen(group, host.name)
                        log.info("claimed %s on host %s", request.describe(), host.name)
                        return host.name
                log.debug("host %s filled up since the snapshot; trying the next", host.name)
    # Every candidate of every pass was taken by concurrent claims: explain afresh.
    with session_factory() as session:
        hosts = _snapshot(session, group)
        _, rejected = _filter(hosts, request, filters)
        raise NoValidHost(_explain(group, request, hosts, rejected, filters))


def _snapshot(session: Session, group: str) -> Sequence[Host]:
    """The group's hosts, read in a short transaction of its own (on SQLite every
    transaction holds the write lock, so it must not span the filtering)."""
    with session.begin():
        return session.scalars(sa.select(Host).where(Host.group_name == group)).all()


def _filter(
    hosts: Sequence[Host], request: Request, filters: Sequence[Filter]
) -> tuple[list[Host], dict[tuple[int, str], list[Host]]]:
    passed: list[Host] = []
    rejected: dict[tuple[int, str], list[Host]] = defaultdict(list)
    for host in hosts:
        for index, flt in enumerate(filters):
            reason = flt.reject(host, request)
            if reason is not None:
                rejected[(index, reason)].append(host)
                break
        else:
            passed.append(host)
    return passed, rejected


def _explain(group: str, request: Request, hosts: Sequence[Host],
             rejected: dict[tuple[int, str], list[Host]], filters: Sequence[Filter]) -> str:
    head = f"No valid host in group '{group}' for {request.describe()}"
    if not hosts:
        return f"{head}: the group has no hosts"
    parts = []
    for (index, reason), rejected_hosts in sorted(rejected.items(), key=lambda kv: kv[0]):
        n = len(rejected_hosts)
        why = filters[index].explain(reason, rejected_hosts, request)
        parts.append(f"{n} host{'s' if n != 1 else ''}: {why}")
    if not parts:
        parts.append(f"{len(hosts)} hosts: taken by concurrent requests")
    return f"{head}: " + "; ".join(parts)
