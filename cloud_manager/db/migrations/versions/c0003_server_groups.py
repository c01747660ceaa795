"""server groups, and the server group and reservation of each instance

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-22 15:00:00.000000

The table is ``cloud_server_groups`` because the Group Manager's chain has a
``server_groups`` table of its own (g0002), and both chains may run in one database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "c0003"
down_revision: str | None = "c0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cloud_server_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"],
            name=op.f("fk_cloud_server_groups_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_server_groups")),
    )
    with op.batch_alter_table("cloud_server_groups", schema=None) as batch_op:
        batch_op.create_index("ix_cloud_server_groups_project_name", ["project_id", "name"],
                              unique=False)

    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_group_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("reservation_id", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_instances_reservation_id"), ["reservation_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_instances_server_group_id"), ["server_group_id"],
                              unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_instances_server_group_id_cloud_server_groups"),
            "cloud_server_groups", ["server_group_id"], ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_instances_server_group_id_cloud_server_groups"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_instances_server_group_id"))
        batch_op.drop_index(batch_op.f("ix_instances_reservation_id"))
        batch_op.drop_column("reservation_id")
        batch_op.drop_column("server_group_id")

    with op.batch_alter_table("cloud_server_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_cloud_server_groups_project_name")
    op.drop_table("cloud_server_groups")
