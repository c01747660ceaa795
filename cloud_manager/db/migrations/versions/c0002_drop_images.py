"""drop the images table: the image store owns image records

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-22 06:40:00.000000

The Cloud Manager used to keep a copy of each image record; the image store is now
the one catalog and the API asks it. The rows are dropped, not migrated: every one
of them was a copy of a record the store still holds. The downgrade recreates the
table empty (the previous code re-registers the demo image at its next start).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "c0002"
down_revision: str | None = "c0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_name"))
    op.drop_table("images")


def downgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disk_format", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_images_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_name"), ["name"], unique=False)
