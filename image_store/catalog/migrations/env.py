"""Alembic environment of the image catalog (see ironbark.db.upgrade)."""

from alembic import context

from image_store.catalog.models import Base
from ironbark.db import run_migrations

run_migrations(context, Base.metadata)
