"""The image catalog's schema: its Alembic chain builds exactly the models, on both databases.

The catalog keeps its own version table, so it can share a database with the Cloud
and Group Managers; the reference-counting statements are exercised against both
databases here too, since they rely on dialect-specific upserts and row locks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import cloud_manager.db
from image_store import catalog
from image_store.backends.local import LocalBackend
from image_store.catalog import chunk_index as ci
from image_store.catalog.models import Base
from ironbark.db import create_engine, utcnow

ADDRESSES = [f"{i:064x}" for i in range(1, 5)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine(database_url)
    catalog.migrate(eng)
    yield eng
    eng.dispose()


def _foreign(diff: object) -> bool:
    """compare_metadata reports another tier's tables as extra: not a difference."""
    if isinstance(diff, tuple) and diff[0] in ("remove_table", "remove_index"):
        table = diff[1] if diff[0] == "remove_table" else diff[1].table
        return table.name not in Base.metadata.tables
    return False


def test_migrations_build_exactly_the_models_beside_another_tier(database_url: str) -> None:
    engine = create_engine(database_url)
    cloud_manager.db.migrate(engine)
    catalog.migrate(engine)
    catalog.migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = [d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata)
                if not _foreign(d)]
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.scalar(sa.text("SELECT version_num FROM alembic_version_image"))
    assert diff == [], diff
    assert {"alembic_version_image", "alembic_version_cloud", "images", "chunks",
            "manifest_entries", "image_refs", "chunk_orphans"} <= tables
    assert version == "i0001"
    engine.dispose()


def _image(conn: sa.Connection, image_id: str) -> None:
    now = utcnow()
    conn.execute(ci.images.insert().values(
        id=image_id, name=image_id, disk_format="raw", status="saving", owner=None,
        visibility="private", min_disk=0, min_ram=0, properties={}, chunk_count=0,
        zero_bytes=0, created_at=now, updated_at=now))


def _refs(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.address: r.refs for r in conn.execute(
            sa.select(ci.chunks.c.address, ci.chunks.c.refs))}


def test_reference_counting_round_trip(engine: sa.Engine, tmp_path: Path) -> None:
    """Insert, share, release and collect, with the dialect's upsert and row locks."""
    backend = LocalBackend(tmp_path / "chunks")
    a, b, c, _ = ADDRESSES
    with engine.begin() as conn:
        _image(conn, "img-1")
        _image(conn, "img-2")
        ci.add_chunks(conn, "img-1", [(a, 10, 11), (b, 20, 21)], referenced=set())
    with engine.begin() as conn:
        # img-2 finds a and b, takes its references first, then adds c.
        referenced, trusted = ci.take_refs(conn, "img-2", [a, b, c])
        assert referenced == trusted == {a, b}
        ci.add_chunks(conn, "img-2", [(c, 30, 31)], referenced=set())
        # A concurrent upload recording a chunk that appeared meanwhile gains a reference.
        ci.add_chunks(conn, "img-1", [(c, 30, 31)], referenced=set())
    assert _refs(engine) == {a: 2, b: 2, c: 2}
    with engine.begin() as conn:
        assert ci.held(conn, "img-2", ADDRESSES) == {a, b, c}
        assert ci.release_all(conn, "img-1") == []
        assert sorted(ci.release(conn, "img-2", [b, c])) == [b, c]
    assert _refs(engine) == {a: 1, b: 0, c: 0}
    with engine.begin() as conn:
        assert ci.garbage(conn) == [b, c]
        # Taking over a garbage row: referenced, but not trusted, and marked corrupt.
        referenced, trusted = ci.take_refs(conn, "img-1", [b])
        assert (referenced, trusted) == ({b}, set())
        corrupt = conn.scalar(sa.select(ci.chunks.c.corrupt_at)
                              .where(ci.chunks.c.address == b))
        assert corrupt is not None
        assert ci.collect(conn, backend, [b, c]) == 1  # b is held again: only c goes
    assert _refs(engine) == {a: 1, b: 1}
    with engine.begin() as conn:
        # Rewriting the bytes of a chunk the image holds clears its corrupt mark.
        ci.add_chunks(conn, "img-1", [(b, 20, 19)], referenced={b})
        row = conn.execute(sa.select(ci.chunks).where(ci.chunks.c.address == b)).one()
    assert (row.refs, row.stored_size, row.corrupt_at) == (1, 19, None)


def test_orphan_adoption_defers_to_an_existing_row(engine: sa.Engine, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "chunks")
    a, b, _, _ = ADDRESSES
    for address in (a, b):
        with backend.staging() as staging:
            staging.put(address, b"\x00payload")
            staging.publish()
    with engine.begin() as conn:
        _image(conn, "img-1")
        ci.add_chunks(conn, "img-1", [(a, 7, 8)], referenced=set())
    with engine.begin() as conn:
        assert ci.adopt_and_delete_orphan(conn, backend, a) is False
        assert ci.adopt_and_delete_orphan(conn, backend, b) is True
    assert set(backend.addresses()) == {a}
    assert _refs(engine) == {a: 1}
