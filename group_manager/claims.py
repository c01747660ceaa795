"""Atomic resource claims.

A claim is one conditional UPDATE of the host row: it adds the request to the
host's ``*_used`` columns only WHERE every resource still fits under
``(total - reserved) x ratio`` and the host is up and enabled. The database
evaluates that condition under the row's write lock, so concurrent claims (threads,
scheduler processes, Group Managers sharing a PostgreSQL server) can never push a
host past capacity: the loser's UPDATE matches no row and it tries the next host.
The claim row is inserted in the same transaction, so the sum of active claims and
the host's counters cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from group_manager.capacity import RESOURCES
from group_manager.db.models import Claim, Host
from ironbark.db import utcnow
from message_bus.lifecycle import PowerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    instance_id: str
    project_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int

    def amount(self, key: str) -> int:
        return int(getattr(self, key))

    def describe(self) -> str:
        return f"{self.vcpus} vCPU, {self.memory_mb} MiB RAM, {self.disk_gb} GB disk"


def try_claim(session: Session, host_name: str, group: str, request: Request) -> bool:
    """Claim ``request`` on ``host_name`` inside the caller's transaction; False if it
    no longer fits there (another claim got there first)."""
    fits = [
        getattr(Host, r.used) + request.amount(r.key)
        <= (getattr(Host, r.total) - getattr(Host, r.reserved)) * getattr(Host, r.ratio)
        for r in RESOURCES
    ]
    values = {r.used: getattr(Host, r.used) + request.amount(r.key) for r in RESOURCES}
    result = session.execute(
        sa.update(Host)
        .where(Host.name == host_name, Host.state == "up", Host.enabled.is_(True), *fits)
        .values(instances=Host.instances + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    session.add(Claim(
        instance_id=request.instance_id, group_name=group, host=host_name,
        project_id=request.project_id, vcpus=request.vcpus, memory_mb=request.memory_mb,
        disk_gb=request.disk_gb, state="active",
    ))
    session.flush()
    return True


def record_failure(session: Session, group: str, request: Request) -> None:
    """Remember that this instance was never placed, so a redelivery does not retry."""
    session.add(Claim(
        instance_id=request.instance_id, group_name=group, host=None,
        project_id=request.project_id, vcpus=request.vcpus, memory_mb=request.memory_mb,
        disk_gb=request.disk_gb, state="failed",
    ))


def release(session: Session, instance_id: str, state: str = "released") -> Claim | None:
    """Give an active claim's resources back to its host; None if it was not active.

    The state change is conditional too, so a release that races another (a
    redelivered destroy event) gives the resources back exactly once.
    """
    result = session.execute(
        sa.update(Claim)
        .where(Claim.instance_id == instance_id, Claim.state == "active")
        .values(state=state, released_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    claim = session.get(Claim, instance_id, populate_existing=True)
    assert claim is not None and claim.host is not None
    values = {r.used: getattr(Host, r.used) - getattr(claim, r.key) for r in RESOURCES}
    session.execute(
        sa.update(Host).where(Host.name == claim.host)
        .values(instances=Host.instances - 1, **values)
        .execution_options(synchronize_session=False)
    )
    return claim


def record_power_state(session: Session, instance_id: str, power: PowerState,
                       observed_at: float) -> None:
    """Remember an instance's power state unless newer news (by host clock) is known."""
    claim = session.get(Claim, instance_id)
    if claim is not None and (claim.power_state_at or 0) <= observed_at:
        claim.power_state, claim.power_state_at = power.value, observed_at


def tombstone(session: Session, group: str, instance_id: str, project_id: str) -> None:
    """Mark an instance that was never placed as deleted, so a late build is ignored."""
    session.add(Claim(instance_id=instance_id, group_name=group, host=None,
                      project_id=project_id, vcpus=0, memory_mb=0, disk_gb=0,
                      state="released", released_at=utcnow()))
