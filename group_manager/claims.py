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
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from group_manager.capacity import RESOURCES
from group_manager.db.models import Claim, Host, ServerGroup
from ironbark.db import utcnow
from message_bus.lifecycle import PowerState
from message_bus.messages import ServerGroupRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    instance_id: str
    project_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    server_group: ServerGroupRef | None = None

    def amount(self, key: str) -> int:
        return int(getattr(self, key))

    def describe(self) -> str:
        return f"{self.vcpus} vCPU, {self.memory_mb} MiB RAM, {self.disk_gb} GB disk"


def request_of(claim: Claim) -> Request:
    """The resources a claim holds, as a request (to give them back in a view)."""
    return Request(claim.instance_id, claim.project_id, claim.vcpus, claim.memory_mb,
                   claim.disk_gb)


_HOSTS, _CLAIMS = Host.__table__, Claim.__table__

# The claim, built once: compiling these expressions costs more than running them.
# Bound parameters: host, group, instance_id, project_id, server_group_id, now, and
# need_<resource> for each resource of the request.
TAKE = (
    sa.update(_HOSTS)
    .where(_HOSTS.c.name == sa.bindparam("host"), _HOSTS.c.state == "up",
           _HOSTS.c.enabled.is_(True),
           *(_HOSTS.c[r.used] + sa.bindparam(f"need_{r.key}")
             <= (_HOSTS.c[r.total] - _HOSTS.c[r.reserved]) * _HOSTS.c[r.ratio]
             for r in RESOURCES))
    .values(instances=_HOSTS.c.instances + 1,
            **{r.used: _HOSTS.c[r.used] + sa.bindparam(f"need_{r.key}") for r in RESOURCES})
)
_CLAIM_COLUMNS = ("instance_id", "group_name", "host", "project_id", "vcpus", "memory_mb",
                  "disk_gb", "state", "created_at", "server_group_id")


def _claim_row(host: sa.ColumnElement[str] | sa.BindParameter[str]) -> sa.Select[tuple]:
    return sa.select(
        sa.bindparam("instance_id", type_=sa.String), sa.bindparam("group", type_=sa.String),
        host, sa.bindparam("project_id", type_=sa.String),
        *(sa.bindparam(f"need_{r.key}", type_=sa.Integer) for r in RESOURCES),
        sa.literal("active"), sa.bindparam("now", type_=_CLAIMS.c.created_at.type),
        sa.bindparam("server_group_id", type_=sa.String))


RECORD = sa.insert(_CLAIMS).from_select(_CLAIM_COLUMNS,
                                         _claim_row(sa.bindparam("host", type_=sa.String)))
# PostgreSQL takes and records in one statement (one round trip, atomic on its own).
_TOOK = TAKE.returning(_HOSTS.c.name).cte("took")
TAKE_AND_RECORD = sa.insert(_CLAIMS).from_select(
    _CLAIM_COLUMNS, _claim_row(_TOOK.c.name).select_from(_TOOK)
).returning(_CLAIMS.c.instance_id)  # (rowcount is -1 for this statement under psycopg)


def claim_params(host_name: str, group: str, request: Request) -> dict[str, object]:
    return {
        "host": host_name, "group": group, "instance_id": request.instance_id,
        "project_id": request.project_id, "now": utcnow(),
        "server_group_id": request.server_group.id if request.server_group else None,
        **{f"need_{r.key}": request.amount(r.key) for r in RESOURCES},
    }


def try_claim(session: Session, host_name: str, group: str, request: Request) -> bool:
    """Claim ``request`` on ``host_name`` inside the caller's transaction; False if it
    no longer fits there (another claim got there first)."""
    conn = session.connection()
    params = claim_params(host_name, group, request)
    if conn.execute(TAKE, params).rowcount != 1:
        return False
    conn.execute(RECORD, params)
    return True


def lock_server_group(session: Session, ref: ServerGroupRef) -> None:
    """Hold the server group's row until the caller's transaction ends.

    Concurrent placements of members (threads, scheduler processes) queue here, so
    each one reads the members' claims after the previous one committed its own:
    under READ COMMITTED every statement sees what committed before it started.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(ServerGroup).values(id=ref.id, name=ref.name, policy=ref.policy,
                                               created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["id"]))
    session.execute(sa.select(ServerGroup.id).where(ServerGroup.id == ref.id)
                    .with_for_update())


def member_hosts(session: Session, server_group_id: str) -> Counter[str]:
    """How many active members of the server group each host runs."""
    rows = session.execute(
        sa.select(Claim.host, sa.func.count())
        .where(Claim.server_group_id == server_group_id, Claim.state == "active",
               Claim.host.is_not(None))
        .group_by(Claim.host)).all()
    return Counter({host: count for host, count in rows})


def record_failure(session: Session, group: str, request: Request) -> None:
    """Remember that this instance was never placed, so a redelivery does not retry."""
    session.add(Claim(
        instance_id=request.instance_id, group_name=group, host=None,
        project_id=request.project_id, vcpus=request.vcpus, memory_mb=request.memory_mb,
        disk_gb=request.disk_gb, state="failed",
        server_group_id=request.server_group.id if request.server_group else None,
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
