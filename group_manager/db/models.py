"""The Group Manager's database: its hosts and the resource claims placed on them.

A host row keeps its capacity inputs (total, reserved, allocation ratio per
resource) and the sum of its active claims in ``*_used``; a claim and that sum
change in one transaction, by a conditional UPDATE that only succeeds while the
claim fits (see ``group_manager.claims``). A released claim stays as a tombstone,
so that a redelivered build for a deleted instance is not placed again.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ironbark.db import NAMING, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Host(Base):
    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    group_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    state: Mapped[str] = mapped_column(sa.String(8), default="up")  # up | down
    enabled: Mapped[bool] = mapped_column(default=True)
    hypervisor_type: Mapped[str] = mapped_column(sa.String(32))
    boot_id: Mapped[str] = mapped_column(sa.String(36))

    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    reserved_vcpus: Mapped[int] = mapped_column(default=0)
    reserved_memory_mb: Mapped[int] = mapped_column(default=0)
    reserved_disk_gb: Mapped[int] = mapped_column(default=0)
    cpu_allocation_ratio: Mapped[float]
    ram_allocation_ratio: Mapped[float]
    disk_allocation_ratio: Mapped[float]

    vcpus_used: Mapped[int] = mapped_column(default=0)
    memory_mb_used: Mapped[int] = mapped_column(default=0)
    disk_gb_used: Mapped[int] = mapped_column(default=0)
    instances: Mapped[int] = mapped_column(default=0)

    unknown_domains: Mapped[list] = mapped_column(sa.JSON, default=list)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Claim(Base):
    __tablename__ = "claims"

    instance_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    group_name: Mapped[str] = mapped_column(sa.String(255))
    host: Mapped[str | None] = mapped_column(sa.ForeignKey("hosts.name"), index=True)
    project_id: Mapped[str] = mapped_column(sa.String(36))
    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    # active: counts against the host | released: instance deleted | failed: never placed
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    server_group_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    power_state: Mapped[str | None] = mapped_column(sa.String(16))
    power_state_at: Mapped[float | None] = mapped_column(sa.Float)  # host clock
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ServerGroup(Base):
    """A server group some instance of this group joined. Its row is the lock that
    serialises the placement of its members: a member is placed inside a transaction
    that holds this row, so two concurrent members see each other's claims."""

    __tablename__ = "server_groups"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    policy: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessedMessage(Base):
    __tablename__ = "group_processed_messages"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    processed_at: Mapped[float] = mapped_column(sa.Float, index=True)
