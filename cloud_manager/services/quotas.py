"""Per-project quotas (Nova's os-quota-sets): limits, usage, and the atomic check.

A limit is the project's own row in ``quotas`` or else the default (Nova's defaults);
-1 means unlimited. Checks run inside the transaction that writes what they count,
after locking the project's row: two creates of one project are serialised, so
together they can never pass a limit (creates of different projects do not wait
for each other on PostgreSQL; SQLite serialises every writer anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.db.models import Instance, KeyPair, Project, Quota, ServerGroup
from cloud_manager.errors import BadInput, Forbidden

# Nova's defaults, and the order its API lists them in.
DEFAULTS: dict[str, int] = {
    "cores": 20, "fixed_ips": -1, "floating_ips": 10, "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255, "injected_files": 5, "instances": 10, "key_pairs": 100,
    "metadata_items": 128, "ram": 51200, "security_group_rules": 20, "security_groups": 10,
    "server_group_members": 10, "server_groups": 10,
}
# What is counted here; the rest are limits other parts of the API (or nothing) apply.
COUNTED = ("instances", "cores", "ram", "key_pairs", "server_groups")


class QuotaExceeded(Forbidden):
    """Nova answers 403 (``forbidden``) when a request would pass a quota."""


def merged_defaults(configured: dict[str, int]) -> dict[str, int]:
    """Nova's defaults with ``[cloud] quota_defaults`` over them; an unknown resource or
    a limit below -1 is a configuration error, said at start."""
    unknown = sorted(set(configured) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"cloud.quota_defaults: unknown resource '{unknown[0]}' (known: "
                         f"{', '.join(DEFAULTS)})")
    low = sorted(k for k, v in configured.items() if v < -1)
    if low:
        raise ValueError(f"cloud.quota_defaults.{low[0]}: must be -1 (unlimited) or more")
    return {**DEFAULTS, **configured}


def defaults(session: Session) -> dict[str, int]:
    return dict(session.info.get("quota_defaults", DEFAULTS))


def limits(session: Session, project_id: str) -> dict[str, int]:
    own = {q.resource: q.hard_limit for q in session.scalars(
        sa.select(Quota).where(Quota.project_id == project_id))}
    return {name: own.get(name, default) for name, default in defaults(session).items()}


def usage(session: Session, project_id: str) -> dict[str, int]:
    live = sa.and_(Instance.project_id == project_id, Instance.deleted_at.is_(None))
    count, cores, ram = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(Instance.vcpus), 0),
                  sa.func.coalesce(sa.func.sum(Instance.memory_mb), 0)).where(live)).one()
    keys = session.scalar(sa.select(sa.func.count()).select_from(KeyPair)
                          .where(KeyPair.project_id == project_id))
    groups = session.scalar(sa.select(sa.func.count()).select_from(ServerGroup)
                            .where(ServerGroup.project_id == project_id))
    used = dict.fromkeys(DEFAULTS, 0)
    used.update(instances=int(count), cores=int(cores), ram=int(ram), key_pairs=int(keys or 0),
                server_groups=int(groups or 0))
    return used


def lock_project(session: Session, project_id: str) -> None:
    session.execute(sa.select(Project.id).where(Project.id == project_id).with_for_update())


def servers_allowed(session: Session, project_id: str, vcpus: int, memory_mb: int,
                    min_count: int, max_count: int) -> int:
    """How many servers of this size (up to ``max_count``) fit the project's quotas now;
    QuotaExceeded naming the first resource when not even ``min_count`` do. Locks the
    project's row until the caller's transaction ends."""
    lock_project(session, project_id)
    limit, used = limits(session, project_id), usage(session, project_id)
    fits = max_count
    per_server = {"instances": 1, "cores": vcpus, "ram": memory_mb}
    for resource, each in per_server.items():
        if limit[resource] < 0 or each == 0:
            continue
        fits = min(fits, (limit[resource] - used[resource]) // each)
    if fits < min_count:
        for resource, each in per_server.items():
            wanted = each * min_count
            if 0 <= limit[resource] < used[resource] + wanted:
                raise QuotaExceeded(
                    f"Quota exceeded for {resource}: Requested {wanted}, but already used "
                    f"{used[resource]} of {limit[resource]} {resource}", field=resource)
    return fits


def check_one_more(session: Session, project_id: str, resource: str) -> None:
    """For one more key pair or server group."""
    lock_project(session, project_id)
    limit = limits(session, project_id)[resource]
    used = usage(session, project_id)[resource]
    if 0 <= limit <= used:
        raise QuotaExceeded(f"Quota exceeded for {resource}: Requested 1, but already used "
                            f"{used} of {limit} {resource}", field=resource)


def check_count(session: Session, project_id: str, resource: str, count: int) -> None:
    """For a number checked as a whole (metadata items, members of one server group)."""
    limit = limits(session, project_id)[resource]
    if 0 <= limit < count:
        raise QuotaExceeded(f"Quota exceeded for {resource}: {count} asked for, at most "
                            f"{limit} allowed", field=resource)


def update(session: Session, project_id: str, changes: dict[str, Any], force: bool) -> None:
    """Set limits (admin). A limit below what is in use is refused unless ``force``."""
    lock_project(session, project_id)
    used = usage(session, project_id)
    for resource, value in changes.items():
        if resource not in DEFAULTS:
            raise BadInput(f"Invalid input for field/attribute quota_set. Additional "
                           f"properties are not allowed ('{resource}' was unexpected)",
                           field=f"quota_set.{resource}")
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise BadInput(f"Invalid input for field/attribute {resource}. Value: {value!r}. "
                           f"must be an integer >= -1", field=f"quota_set.{resource}")
        if not force and 0 <= value < used[resource]:
            raise BadInput(f"Quota limit {value} for {resource} must be greater than or "
                           f"equal to already used and reserved {used[resource]}.",
                           field=f"quota_set.{resource}")
    store(session, project_id, changes)


def store(session: Session, project_id: str, changes: dict[str, int]) -> None:
    """Write checked limits: the one place rows of ``quotas`` are made or changed."""
    for resource, value in changes.items():
        row = session.get(Quota, (project_id, resource))
        if row is None:
            session.add(Quota(project_id=project_id, resource=resource, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()


def reset(session: Session, project_id: str, resources: Iterable[str] = DEFAULTS) -> None:
    """Back to the defaults, for these resources only (compute and network quotas share
    the table, and each API resets its own)."""
    session.execute(sa.delete(Quota).where(Quota.project_id == project_id,
                                           Quota.resource.in_(list(resources))))
