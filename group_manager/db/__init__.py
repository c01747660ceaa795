"""The Group Manager's database: hosts and claims, and their migrations."""

from pathlib import Path

import sqlalchemy as sa

from ironbark import db

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_group"


def migrate(engine: sa.Engine) -> None:
    db.upgrade(engine, MIGRATIONS, VERSION_TABLE)
