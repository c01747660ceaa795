"""Alembic environment of the group manager database (see ironbark.db.upgrade)."""

from alembic import context

from group_manager.db.models import Base
from ironbark.db import run_migrations

run_migrations(context, Base.metadata)
