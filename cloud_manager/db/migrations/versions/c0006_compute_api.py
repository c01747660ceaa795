"""what the Compute API needs: flavor extra specs, server metadata and user, quotas

Revision ID: c0006
Revises: c0005
Create Date: 2026-11-22 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0006"
down_revision: str | None = "c0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flavors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extra_specs", sa.JSON(), nullable=False,
                                      server_default="{}"))
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=False,
                                      server_default="{}"))
    op.create_table(
        "quotas",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=op.f("fk_quotas_project_id_projects")),
        sa.PrimaryKeyConstraint("project_id", "resource", name=op.f("pk_quotas")),
    )


def downgrade() -> None:
    op.drop_table("quotas")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("metadata")
        batch_op.drop_column("user_id")
    with op.batch_alter_table("flavors", schema=None) as batch_op:
        batch_op.drop_column("extra_specs")
