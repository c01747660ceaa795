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


class Domain(Base):
    """Keystone's namespace of projects and users; one, ``default``, is created at start."""

    __tablename__ = "domains"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Project(Base):
    """A tenant: every server, key pair, network and private image belongs to one.

    Names are unique cloud-wide (not only per domain, as Keystone allows): the
    native API and the CLI name projects without a domain.
    """

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    domain_id: Mapped[str] = mapped_column(sa.ForeignKey("domains.id"), default="default")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person or a service that signs in with a password (hashed with argon2id)."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    domain_id: Mapped[str] = mapped_column(sa.ForeignKey("domains.id"))
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    default_project_id: Mapped[str | None] = mapped_column(sa.String(36))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    email: Mapped[str | None] = mapped_column(sa.String(255))
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(Base):
    """``admin``, ``member`` and ``reader`` mean something to the policy; others may be
    made and assigned, and grant nothing."""

    __tablename__ = "roles"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")


class RoleAssignment(Base):
    """A user's role on a project (project scope only: no domain or system scope)."""

    __tablename__ = "role_assignments"

    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    role_id: Mapped[str] = mapped_column(sa.ForeignKey("roles.id", ondelete="CASCADE"),
                                         primary_key=True)


class Token(Base):
    """An issued token, by the SHA-256 of its secret (a database leak reveals none).

    Roles are not copied here: each request reads the current assignments, so
    removing a role or disabling a user takes effect at once, as with Keystone.
    """

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    project_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"))
    audit_id: Mapped[str] = mapped_column(sa.String(32))
    methods: Mapped[str] = mapped_column(sa.String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    revoked: Mapped[bool] = mapped_column(default=False)


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    is_public: Mapped[bool] = mapped_column(default=True)
    # Nova's os-extra_specs: key -> value, both strings; kept, shown, not interpreted.
    extra_specs: Mapped[dict] = mapped_column(sa.JSON, default=dict)
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
    # Who made it (Nova's user_id) and the server's own key/value metadata.
    user_id: Mapped[str | None] = mapped_column(sa.String(64))
    server_metadata: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Quota(Base):
    """A project's limit on one resource, where it differs from the default."""

    __tablename__ = "quotas"

    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    hard_limit: Mapped[int]


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


# --- Network v2.0: the API's records and the address allocation (IPAM) ----------------------
# The data plane (bridges, DHCP, filtering) is built from these later; the allocation is
# already real: an address is taken by inserting it, under a unique (subnet, address).


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    shared: Mapped[bool] = mapped_column(default=False)
    external: Mapped[bool] = mapped_column(default=False)
    mtu: Mapped[int] = mapped_column(default=1450)
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(sa.ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    ip_version: Mapped[int] = mapped_column(default=4)
    cidr: Mapped[str] = mapped_column(sa.String(64))
    gateway_ip: Mapped[str | None] = mapped_column(sa.String(64))
    enable_dhcp: Mapped[bool] = mapped_column(default=True)
    allocation_pools: Mapped[list] = mapped_column(sa.JSON, default=list)
    dns_nameservers: Mapped[list] = mapped_column(sa.JSON, default=list)
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SecurityGroup(Base):
    __tablename__ = "security_groups"
    __table_args__ = (sa.Index("ix_security_groups_project_name", "project_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SecurityGroupRule(Base):
    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        sa.ForeignKey("security_groups.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    direction: Mapped[str] = mapped_column(sa.String(8))
    ethertype: Mapped[str] = mapped_column(sa.String(8))
    protocol: Mapped[str | None] = mapped_column(sa.String(40))
    port_range_min: Mapped[int | None]
    port_range_max: Mapped[int | None]
    remote_ip_prefix: Mapped[str | None] = mapped_column(sa.String(64))
    remote_group_id: Mapped[str | None] = mapped_column(sa.String(36))
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Port(Base):
    """``device_id`` is the server it is plugged into ('' when free)."""

    __tablename__ = "ports"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(sa.ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    mac_address: Mapped[str] = mapped_column(sa.String(17), unique=True)
    admin_state_up: Mapped[bool] = mapped_column(default=True)
    device_id: Mapped[str] = mapped_column(sa.String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(sa.String(255), default="")
    security_group_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    # Made by the Compute API for one server (goes with it), or given to the server by
    # its user (kept, unbound, when the server goes), as Nova's preserve_on_delete.
    auto_delete: Mapped[bool] = mapped_column(default=False)
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IpAllocation(Base):
    """One address of one port; the primary key makes an address taken at most once."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(sa.ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(sa.ForeignKey("ports.id", ondelete="CASCADE"),
                                         index=True)
    network_id: Mapped[str] = mapped_column(sa.String(36))
