"""initial schema

Revision ID: g0001
Revises:
Create Date: 2026-11-22 05:12:22.162165
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "g0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_processed_messages",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_group_processed_messages")),
    )
    with op.batch_alter_table("group_processed_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_group_processed_messages_processed_at"), ["processed_at"], unique=False
        )

    op.create_table(
        "hosts",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hypervisor_type", sa.String(length=32), nullable=False),
        sa.Column("boot_id", sa.String(length=36), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("reserved_vcpus", sa.Integer(), nullable=False),
        sa.Column("reserved_memory_mb", sa.Integer(), nullable=False),
        sa.Column("reserved_disk_gb", sa.Integer(), nullable=False),
        sa.Column("cpu_allocation_ratio", sa.Double(), nullable=False),
        sa.Column("ram_allocation_ratio", sa.Double(), nullable=False),
        sa.Column("disk_allocation_ratio", sa.Double(), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), nullable=False),
        sa.Column("memory_mb_used", sa.Integer(), nullable=False),
        sa.Column("disk_gb_used", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("unknown_domains", sa.JSON(), nullable=False),
        sa.Column("last_seen_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hosts")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_group_name"), ["group_name"], unique=False)

    op.create_table(
        "claims",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("power_state", sa.String(length=16), nullable=True),
        sa.Column("power_state_at", sa.Float(), nullable=True),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("released_at", ironbark.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["host"], ["hosts.name"], name=op.f("fk_claims_host_hosts")),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_host"), ["host"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_state"))
        batch_op.drop_index(batch_op.f("ix_claims_host"))

    op.drop_table("claims")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_group_name"))

    op.drop_table("hosts")
    with op.batch_alter_table("group_processed_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_processed_messages_processed_at"))

    op.drop_table("group_processed_messages")
