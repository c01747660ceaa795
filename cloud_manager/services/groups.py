"""Groups as the Cloud Manager sees them (from their summaries), and the choice of a
group for a new server."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.db.models import Flavor, Group
from cloud_manager.errors import BadInput
from ironbark.db import utcnow
from message_bus.messages import GroupSummary


def record_summary(session: Session, summary: GroupSummary) -> None:
    group = session.get(Group, summary.group, with_for_update=True)
    if group is None:
        group = Group(name=summary.group)
        session.add(group)
    group.policy, group.hosts_up, group.hosts_down = (summary.policy, summary.hosts_up,
                                                      summary.hosts_down)
    group.summary = summary.model_dump(mode="json")
    group.last_seen_at = utcnow()


def all_groups(session: Session) -> list[Group]:
    return list(session.scalars(sa.select(Group).order_by(Group.name)))


def is_fresh(group: Group, stale_after: float, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return (now - group.last_seen_at).total_seconds() <= stale_after


def _fits(group: Group, flavor: Flavor) -> bool:
    free = group.summary.get("largest_free", {})
    return (free.get("vcpus", 0) >= flavor.vcpus and free.get("memory_mb", 0) >= flavor.memory_mb
            and free.get("disk_gb", 0) >= flavor.disk_gb)


def choose(session: Session, requested: str | None, flavor: Flavor,
           stale_after: float) -> str | None:
    """The group a new server goes to; None when no Group Manager is reporting.

    A requested group is used as asked (its queue is durable: a group that is briefly
    away gets the build when it returns). Otherwise: among fresh groups with hosts
    up, one where a single host can fit the flavor, the one with most free RAM; if
    none fits, the freshest group anyway, whose scheduler then says why nothing fits.
    """
    groups = all_groups(session)
    if requested is not None:
        if not any(g.name == requested for g in groups):
            known = ", ".join(g.name for g in groups) or "none"
            raise BadInput(f"no group named '{requested}' (known: {known})", field="group")
        return requested
    fresh = [g for g in groups if is_fresh(g, stale_after) and g.hosts_up > 0]
    if not fresh:
        return None
    fitting = [g for g in fresh if _fits(g, flavor)]
    if fitting:
        return max(fitting, key=lambda g: (g.summary["largest_free"]["memory_mb"], g.name)).name
    return max(fresh, key=lambda g: g.last_seen_at).name
