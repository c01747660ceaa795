"""Database plumbing shared by the Cloud and Group Managers: engines and migrations.

SQLite is the default and is used from many threads at once, so every connection
runs in WAL mode with a busy timeout and every transaction starts with ``BEGIN
IMMEDIATE``: the write lock is taken up front, so two writers queue instead of
deadlocking on a lock upgrade (SQLite's "database is locked"). PostgreSQL needs
none of this; plain ``postgresql://`` URLs are pointed at the psycopg 3 driver.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import event
from sqlalchemy.engine import Engine

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> Engine:
    """An engine for ``url``. ``pre_ping`` checks each connection's liveness on checkout:
    one more round trip, worth it except on a hot path that handles a dead connection
    itself (a disconnect error invalidates the connection; the next checkout reconnects)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=pool_size, max_overflow=2 * pool_size,
        )
        _make_sqlite_safe(engine)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=2 * pool_size,
                            pool_pre_ping=pre_ping)


def _make_sqlite_safe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine, script_location: Path, version_table: str,
            revision: str = "head") -> None:
    """Bring a database to the newest migration (or ``revision``) of one tier's chain.

    Each tier keeps its own chain and version table, so the Cloud and Group Managers
    may share one database server (or one database) without stepping on each other.

    On SQLite, foreign keys are off while migrating: a batch migration rebuilds a table
    (copy, drop, rename), and dropping a table other rows refer to fails with them on.
    The pragma only takes effect outside a transaction, so it is set on the raw
    connection before ours begins; the references are checked before it is turned back on.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = version_table
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


def run_migrations(context: EnvironmentContext, metadata: sa.MetaData) -> None:
    """The body of every tier's alembic ``env.py``: migrate the connection we were given."""
    attrs = context.config.attributes
    conn = attrs.get("connection")
    if conn is None:
        raise RuntimeError("run migrations through ironbark.db.upgrade()")
    context.configure(connection=conn, target_metadata=metadata,
                      version_table=attrs["version_table"], render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
