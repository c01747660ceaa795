"""Alembic environment of the cloud manager database (see ironbark.db.upgrade)."""

from alembic import context

from cloud_manager.db.models import Base
from ironbark.db import run_migrations

run_migrations(context, Base.metadata)
