"""Flavors: the sizes servers come in. A server keeps a copy of its flavor."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import Flavor
from cloud_manager.errors import Conflict, NotFound

# The classic OpenStack flavors, with their classic ids.
CLASSIC = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
)


def visible(session: Session, principal: Principal) -> list[Flavor]:
    query = sa.select(Flavor).order_by(Flavor.memory_mb, Flavor.vcpus, Flavor.name)
    if not principal.is_admin:
        query = query.where(Flavor.is_public.is_(True))
    return list(session.scalars(query))


def find(session: Session, principal: Principal, ref: str) -> Flavor | None:
    flavor = session.get(Flavor, ref) or session.scalars(
        sa.select(Flavor).where(Flavor.name == ref)).first()
    if flavor is not None and not flavor.is_public and not principal.is_admin:
        return None
    return flavor


def get(session: Session, principal: Principal, ref: str) -> Flavor:
    flavor = find(session, principal, ref)
    if flavor is None:
        raise NotFound(f"flavor '{ref}' not found")
    return flavor


def create(session: Session, *, name: str, vcpus: int, memory_mb: int, disk_gb: int,
           flavor_id: str | None, is_public: bool) -> Flavor:
    if session.scalars(sa.select(Flavor).where(Flavor.name == name)).first() is not None:
        raise Conflict(f"a flavor named '{name}' exists", field="name")
    if flavor_id is not None and session.get(Flavor, flavor_id) is not None:
        raise Conflict(f"a flavor with id '{flavor_id}' exists", field="id")
    flavor = Flavor(id=flavor_id or str(uuid.uuid4()), name=name, vcpus=vcpus,
                    memory_mb=memory_mb, disk_gb=disk_gb, is_public=is_public)
    session.add(flavor)
    session.flush()
    return flavor


def delete(session: Session, principal: Principal, ref: str) -> None:
    session.delete(get(session, principal, ref))


def seed_classic(session: Session) -> None:
    for flavor_id, name, vcpus, memory_mb, disk_gb in CLASSIC:
        exists = session.get(Flavor, flavor_id) or session.scalars(
            sa.select(Flavor).where(Flavor.name == name)).first()
        if exists is None:
            session.add(Flavor(id=flavor_id, name=name, vcpus=vcpus, memory_mb=memory_mb,
                               disk_gb=disk_gb, is_public=True))
