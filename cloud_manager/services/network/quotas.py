"""Neutron's per-project quotas, kept in the same ``quotas`` table as the compute ones
(the resource names do not collide), checked when a network object is made."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.db.models import Network, Port, Quota, SecurityGroup, SecurityGroupRule, Subnet
from cloud_manager.errors import BadInput
from cloud_manager.services import quotas as shared
from cloud_manager.services.quotas import QuotaExceeded, lock_project

DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "security_group": 10,
            "security_group_rule": 100, "router": 10, "floatingip": 50, "rbac_policy": 10,
            "subnetpool": -1}
_COUNTED = {"network": Network, "subnet": Subnet, "port": Port,
            "security_group": SecurityGroup, "security_group_rule": SecurityGroupRule}


def limits(session: Session, project_id: str) -> dict[str, int]:
    own = {q.resource: q.hard_limit for q in session.scalars(
        sa.select(Quota).where(Quota.project_id == project_id,
                               Quota.resource.in_(list(DEFAULTS))))}
    return {k: own.get(k, v) for k, v in DEFAULTS.items()}


def usage(session: Session, project_id: str) -> dict[str, int]:
    used = dict.fromkeys(DEFAULTS, 0)
    for name, model in _COUNTED.items():
        used[name] = int(session.scalar(sa.select(sa.func.count()).select_from(model)
                                        .where(model.project_id == project_id)) or 0)
    return used


def update(session: Session, project_id: str, changes: dict[str, Any]) -> None:
    """Set limits (admin), Neutron's names and rules: integers, -1 for unlimited."""
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise BadInput(f"Unrecognized attribute(s) '{key}'", field=f"quota.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise BadInput(f"Invalid input for {key}. Reason: '{value}' is not an integer "
                           f">= -1.", field=f"quota.{key}")
    shared.store(session, project_id, changes)


def reset(session: Session, project_id: str) -> None:
    shared.reset(session, project_id, DEFAULTS)


def check(session: Session, project_id: str, resource: str, more: int = 1) -> None:
    lock_project(session, project_id)
    limit = limits(session, project_id)[resource]
    if limit < 0:
        return
    used = usage(session, project_id)[resource]
    if used + more > limit:
        raise QuotaExceeded(f"Quota exceeded for resources: ['{resource}'].", field=resource)
