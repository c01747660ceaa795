"""key pairs, and the key, key name and user data each instance was created with

Revision ID: c0004
Revises: c0003
Create Date: 2026-11-22 18:00:00.000000

An instance keeps a copy of its public key (``key_data``), as Nova does: deleting or
replacing the key pair later changes no server's config drive.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "c0004"
down_revision: str | None = "c0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cloud_keypairs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_cloud_keypairs_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_keypairs")),
        sa.UniqueConstraint("project_id", "name", name="uq_cloud_keypairs_project_name"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("key_data", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("user_data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("user_data")
        batch_op.drop_column("key_data")
        batch_op.drop_column("key_name")
    op.drop_table("cloud_keypairs")
