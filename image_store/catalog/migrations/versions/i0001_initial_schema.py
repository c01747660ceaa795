"""initial schema

Revision ID: i0001
Revises:
Create Date: 2026-11-22 06:33:35.555963
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "i0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chunk_orphans",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("seen_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_chunk_orphans")),
    )
    op.create_table(
        "chunks",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("stored_size", sa.Integer(), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.Column("corrupt_at", ironbark.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_chunks")),
    )
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chunks_corrupt_at"), ["corrupt_at"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("disk_format", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=32), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("kernel_id", sa.String(length=36), nullable=True),
        sa.Column("ramdisk_id", sa.String(length=36), nullable=True),
        sa.Column("min_disk", sa.Integer(), nullable=False),
        sa.Column("min_ram", sa.Integer(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=True),
        sa.Column("zero_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ironbark.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index("ix_images_created", ["created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_status"), ["status"], unique=False)

    op.create_table(
        "image_refs",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["address"], ["chunks.address"], name=op.f("fk_image_refs_address_chunks")
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_refs_image_id_images")
        ),
        sa.PrimaryKeyConstraint("image_id", "address", name=op.f("pk_image_refs")),
    )
    with op.batch_alter_table("image_refs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_refs_address"), ["address"], unique=False)

    op.create_table(
        "manifest_entries",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("offset", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["address"], ["chunks.address"], name=op.f("fk_manifest_entries_address_chunks")
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_manifest_entries_image_id_images")
        ),
        sa.PrimaryKeyConstraint("image_id", "offset", name=op.f("pk_manifest_entries")),
    )
    with op.batch_alter_table("manifest_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manifest_entries_address"), ["address"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("manifest_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manifest_entries_address"))

    op.drop_table("manifest_entries")
    with op.batch_alter_table("image_refs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_refs_address"))

    op.drop_table("image_refs")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_status"))
        batch_op.drop_index(batch_op.f("ix_images_owner"))
        batch_op.drop_index(batch_op.f("ix_images_name"))
        batch_op.drop_index("ix_images_created")

    op.drop_table("images")
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chunks_corrupt_at"))

    op.drop_table("chunks")
    op.drop_table("chunk_orphans")
