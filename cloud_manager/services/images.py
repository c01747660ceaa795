"""Image records: what the API knows of the images in the image store.

A project sees public images and its own; another project's private image is
answered as not found, never as forbidden.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import Image
from cloud_manager.errors import NotFound


def _visible(principal: Principal) -> sa.ColumnElement[bool]:
    if principal.is_admin:
        return sa.true()
    return sa.or_(Image.visibility == "public", Image.project_id == principal.project_id)


def visible(session: Session, principal: Principal) -> list[Image]:
    return list(session.scalars(
        sa.select(Image).where(_visible(principal)).order_by(Image.name, Image.created_at)))


def find(session: Session, principal: Principal, ref: str) -> Image | None:
    by_id = session.scalars(sa.select(Image).where(Image.id == ref, _visible(principal))).first()
    if by_id is not None:
        return by_id
    return session.scalars(
        sa.select(Image).where(Image.name == ref, _visible(principal))
        .order_by(Image.created_at.desc())).first()


def get(session: Session, principal: Principal, ref: str) -> Image:
    image = find(session, principal, ref)
    if image is None:
        raise NotFound(f"image '{ref}' not found")
    return image


def register(session: Session, *, image_id: str, name: str, disk_format: str, size: int,
             sha256: str, project_id: str | None, visibility: str) -> Image:
    """Record an image the store holds (status active), or refresh the record."""
    image = session.get(Image, image_id)
    if image is None:
        image = Image(id=image_id)
        session.add(image)
    image.name, image.disk_format, image.size, image.sha256 = name, disk_format, size, sha256
    image.project_id, image.visibility, image.status = project_id, visibility, "active"
    session.flush()
    return image
