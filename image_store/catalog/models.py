"""The image catalog's tables.

- ``images``: one row per image record (deleting an image deletes its row).
- ``manifest_entries``: the ordered ``(offset, length, address | null)`` entries of
  an image; a null address is a hole. Rows of a ``saving`` image are written batch
  by batch and only read once the image is ``active``.
- ``chunks``: the chunk index. A row exists only for bytes durable in the backend;
  ``refs`` is the number of images (queued, saving or active) holding the chunk and
  always equals its rows in ``image_refs``. A row with ``refs = 0`` is garbage being
  collected: its bytes may already be gone, so nothing trusts them.
- ``image_refs``: which image holds which chunk (one row per distinct chunk of an
  image, however often the manifest repeats it).
- ``chunk_orphans``: backend objects seen without a chunk row, and since when, so
  that scrub removes them only after a grace period.

Foreign keys carry no cascades on purpose: every release of a reference must go
through the store's bookkeeping, and the database refuses to drop a chunk row a
manifest still names, as a last line of defence.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ironbark.db import NAMING, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (sa.Index("ix_images_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    disk_format: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(32))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    owner: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16))
    kernel_id: Mapped[str | None] = mapped_column(sa.String(36))
    ramdisk_id: Mapped[str | None] = mapped_column(sa.String(36))
    min_disk: Mapped[int] = mapped_column(sa.Integer, default=0)
    min_ram: Mapped[int] = mapped_column(sa.Integer, default=0)
    properties: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    chunk_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    stored_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    zero_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Chunk(Base):
    __tablename__ = "chunks"

    address: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    length: Mapped[int] = mapped_column(sa.Integer)
    stored_size: Mapped[int] = mapped_column(sa.Integer)
    refs: Mapped[int] = mapped_column(sa.Integer)
    corrupt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ManifestEntry(Base):
    __tablename__ = "manifest_entries"

    image_id: Mapped[str] = mapped_column(sa.ForeignKey("images.id"), primary_key=True)
    offset: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    length: Mapped[int] = mapped_column(sa.BigInteger)
    address: Mapped[str | None] = mapped_column(sa.ForeignKey("chunks.address"), index=True)


class ImageRef(Base):
    __tablename__ = "image_refs"

    image_id: Mapped[str] = mapped_column(sa.ForeignKey("images.id"), primary_key=True)
    address: Mapped[str] = mapped_column(
        sa.ForeignKey("chunks.address"), primary_key=True, index=True)


class ChunkOrphan(Base):
    __tablename__ = "chunk_orphans"

    address: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
