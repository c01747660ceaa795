"""The image catalog: image records, manifests and the chunk index, with their migrations.

The catalog is the store's source of truth about which bytes exist: a chunk row
exists only for bytes that are durable in the backend, and ``chunks.refs`` counts
the images holding each chunk (see docs/image-store.md, "Store invariants"). It has
its own Alembic chain and version table, so it can share a database with the other
tiers.
"""

from pathlib import Path

import sqlalchemy as sa

from ironbark import db

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_image"


def migrate(engine: sa.Engine) -> None:
    """Bring the catalog in ``engine``'s database to the newest schema."""
    db.upgrade(engine, MIGRATIONS, VERSION_TABLE)
