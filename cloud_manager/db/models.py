"""The Cloud Manager's API database: projects, flavors, key pairs, server groups,
instances.

Image records are not here: the image store owns them (its own catalog, like
Glance's), and the API asks it for them.

An instance row carries a copy of its flavor (as Nova embeds it), so a flavor can be
deleted while servers built from it live on. ``task_id`` names the task in flight;
events that carry another task id are late or duplicated and are dropped.

Server groups live in ``cloud_server_groups``, not ``server_groups``: the Group
Manager has a ``server_groups`` table of its own (its placement locks), and both
tiers may share one database.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ironbark.db import NAMING, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    is_public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServerGroup(Base):
    """A project's server group (Nova's os-server-groups): members placed together or apart.

    ``group_name`` is the host group every member lives in, pinned by the first member
    (under this row's lock, so concurrent first members agree): the policy can only be
    honoured by one scheduler that sees all the members' claims.
    """

    __tablename__ = "cloud_server_groups"
    __table_args__ = (sa.Index("ix_cloud_server_groups_project_name", "project_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255))
    policy: Mapped[str] = mapped_column(sa.String(32))
    group_name: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyPair(Base):
    """A project's SSH public key, by name (Nova's os-keypairs). The private key of a
    generated pair is handed out once and never stored."""

    __tablename__ = "cloud_keypairs"
    __table_args__ = (sa.UniqueConstraint("project_id", "name",
                                          name="uq_cloud_keypairs_project_name"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(16), default="ssh")
    public_key: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        sa.Index("ix_instances_project_live", "project_id", "deleted_at"),
        sa.Index("ix_instances_task_deadline", "task_deadline"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255))
    flavor_id: Mapped[str] = mapped_column(sa.String(36))
    flavor_name: Mapped[str] = mapped_column(sa.String(255))
    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    image_id: Mapped[str] = mapped_column(sa.String(36))
    image_name: Mapped[str] = mapped_column(sa.String(255))

    vm_state: Mapped[str] = mapped_column(sa.String(16), index=True)
    task_state: Mapped[str | None] = mapped_column(sa.String(32))
    task_id: Mapped[str | None] = mapped_column(sa.String(36))
    task_deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    power_state: Mapped[str | None] = mapped_column(sa.String(16))
    power_state_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    group_name: Mapped[str | None] = mapped_column(sa.String(255))
    host: Mapped[str | None] = mapped_column(sa.String(255))
    fault: Mapped[str | None] = mapped_column(sa.Text)
    fault_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    # The server group it joined (None: none, or the group was deleted) and the
    # multi-create request it came from (None: created alone).
    server_group_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("cloud_server_groups.id"), index=True)
    reservation_id: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    # What the config drive gives the guest: the key as it was at create, the user data
    # (base64, as the API took it).
    key_name: Mapped[str | None] = mapped_column(sa.String(255))
    key_data: Mapped[str | None] = mapped_column(sa.Text)
    user_data: Mapped[str | None] = mapped_column(sa.Text)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Group(Base):
    """What the Cloud Manager knows of a group: its latest capacity summary."""

    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    policy: Mapped[str] = mapped_column(sa.String(32))
    hosts_up: Mapped[int]
    hosts_down: Mapped[int]
    summary: Mapped[dict] = mapped_column(sa.JSON)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProcessedMessage(Base):
    """Idempotency keys of bus messages already handled (see message_bus.idempotency)."""

    __tablename__ = "processed_messages"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    processed_at: Mapped[float] = mapped_column(sa.Float, index=True)
