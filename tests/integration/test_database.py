"""The databases on SQLite and PostgreSQL: migrations, and claims under contention.

Claims are the heart of "never overcommit": many scheduler threads, and several
scheduler processes, claim against the same hosts at once; the hosts must end up
exactly full, never past capacity, with one claim row per successful placement.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import sessionmaker

import cloud_manager.db
import group_manager.db
from cloud_manager.db.models import Base as CloudBase
from group_manager import claims
from group_manager.claims import Request
from group_manager.db.models import Base as GroupBase
from group_manager.db.models import Claim, Host
from group_manager.scheduler import NoValidHost, Scheduler
from ironbark import db as ironbark_db
from ironbark.db import create_engine, utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_migrations_build_exactly_the_models_in_one_shared_database(database_url: str) -> None:
    engine = create_engine(database_url)
    cloud_manager.db.migrate(engine)
    group_manager.db.migrate(engine)
    group_manager.db.migrate(engine)  # idempotent
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        for metadata in (CloudBase.metadata, GroupBase.metadata):
            diff = [d for d in compare_metadata(ctx, metadata)
                    if not _other_tier(d, metadata)]
            assert diff == [], diff
        tables = set(sa.inspect(conn).get_table_names())
    assert {"alembic_version_cloud", "alembic_version_group", "instances", "claims"} <= tables
    engine.dispose()


def test_a_cloud_of_the_static_token_era_upgrades_with_its_servers(database_url: str) -> None:
    """c0004 -> head on a database with a project, its key pair and its server: the
    identity migration rebuilds ``projects`` (SQLite batch mode), which rows refer to."""
    engine = create_engine(database_url)
    ironbark_db.upgrade(engine, cloud_manager.db.MIGRATIONS, cloud_manager.db.VERSION_TABLE,
                        revision="c0004")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name, created_at) VALUES "
                             "('p-1', 'admin', :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO cloud_keypairs (id, project_id, name, type, public_key, fingerprint, "
            "created_at) VALUES ('k-1', 'p-1', 'key', 'ssh', 'ssh-ed25519 AAAA', 'ff', :now)"),
            {"now": now})
        conn.execute(sa.text(
            "INSERT INTO instances (id, project_id, name, flavor_id, flavor_name, vcpus, "
            "memory_mb, disk_gb, image_id, image_name, vm_state, created_at, updated_at) "
            "VALUES ('i-1', 'p-1', 'vm', '1', 'm1.tiny', 1, 512, 1, 'img', 'demo', 'active', "
            ":now, :now)"), {"now": now})
    cloud_manager.db.migrate(engine)
    with engine.connect() as conn:
        project = conn.execute(sa.text("SELECT name, domain_id, enabled FROM projects")).one()
        assert tuple(project) == ("admin", "default", True)
        assert conn.execute(sa.text("SELECT project_id FROM instances")).scalar() == "p-1"
        assert conn.execute(sa.text("SELECT name FROM domains")).scalar() == "Default"
    engine.dispose()


def _other_tier(diff: object, metadata: sa.MetaData) -> bool:
    """compare_metadata reports the other tier's tables as extra: not a difference."""
    if isinstance(diff, tuple) and diff[0] == "remove_table":
        return diff[1].name not in metadata.tables
    if isinstance(diff, tuple) and diff[0] == "remove_index":
        return diff[1].table.name not in metadata.tables
    return False


def _hosts(engine: sa.Engine, count: int, vcpus: int) -> None:
    with sessionmaker(engine).begin() as session:
        for i in range(count):
            session.add(Host(
                name=f"h{i}", group_name="g", state="up", enabled=True, hypervisor_type="test",
                boot_id="b", vcpus=vcpus, memory_mb=10**6, disk_gb=10**5,
                cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
                unknown_domains=[], last_seen_at=utcnow()))


def _place_many(url: str, prefix: str, count: int) -> int:
    """Place ``count`` one-vCPU instances with a scheduler of their own (as a second
    scheduler worker of the group would); return how many found a host."""
    engine = create_engine(url, pool_size=2)
    scheduler = Scheduler(engine, "g", "spread")
    placed = sum(_try(scheduler, Request(f"{prefix}-{i}", "p", 1, 1, 0)) for i in range(count))
    engine.dispose()
    return placed


def _try(scheduler: Scheduler, request: Request) -> bool:
    try:
        scheduler.place(request)
        return True
    except NoValidHost:
        return False


def _check_exactly_full(engine: sa.Engine, hosts: int, vcpus: int) -> None:
    with sessionmaker(engine)() as session:
        for host in session.scalars(sa.select(Host)):
            assert host.vcpus_used == vcpus, host.name
            active = session.scalar(sa.select(sa.func.count()).select_from(Claim).where(
                Claim.host == host.name, Claim.state == "active"))
            assert active == host.instances == vcpus
        total = session.scalar(sa.select(sa.func.count()).select_from(Claim))
        assert total == hosts * vcpus


def test_concurrent_claims_from_threads_fill_hosts_exactly(database_url: str) -> None:
    engine = create_engine(database_url)
    group_manager.db.migrate(engine)
    _hosts(engine, count=3, vcpus=10)
    with ThreadPoolExecutor(8) as pool:
        placed = sum(pool.map(lambda t: _place_many(database_url, f"t{t}", 10), range(8)))
    assert placed == 30
    _check_exactly_full(engine, hosts=3, vcpus=10)
    engine.dispose()


def test_one_scheduler_shared_by_threads_fills_hosts_exactly(database_url: str) -> None:
    """The Group Manager's handler threads share one scheduler and its view."""
    engine = create_engine(database_url)
    group_manager.db.migrate(engine)
    _hosts(engine, count=3, vcpus=10)
    scheduler = Scheduler(engine, "g", "spread")
    with ThreadPoolExecutor(8) as pool:
        placed = sum(pool.map(lambda i: _try(scheduler, Request(f"s{i}", "p", 1, 1, 0)),
                              range(80)))
    assert placed == 30
    _check_exactly_full(engine, hosts=3, vcpus=10)
    engine.dispose()


def test_concurrent_claims_from_processes_fill_hosts_exactly(postgres_url: str) -> None:
    """Several scheduler processes on one PostgreSQL database: no double booking."""
    engine = create_engine(postgres_url)
    group_manager.db.migrate(engine)
    _hosts(engine, count=4, vcpus=15)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        placed = sum(pool.starmap(_place_many, [(postgres_url, f"p{p}", 25) for p in range(4)]))
    assert placed == 60
    _check_exactly_full(engine, hosts=4, vcpus=15)
    engine.dispose()


def test_a_claim_is_released_exactly_once(database_url: str) -> None:
    engine = create_engine(database_url)
    group_manager.db.migrate(engine)
    _hosts(engine, count=1, vcpus=4)
    sessions = sessionmaker(engine, expire_on_commit=False)
    Scheduler(engine, "g", "pack").place(Request("one", "p", 3, 1, 0))

    def release() -> bool:
        with sessions.begin() as session:
            return claims.release(session, "one") is not None

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: release(), range(4)))
    assert results.count(True) == 1
    with sessions() as session:
        host = session.get(Host, "h0")
        assert host is not None and (host.vcpus_used, host.instances) == (0, 0)
        assert session.get(Claim, "one").state == "released"  # type: ignore[union-attr]
    engine.dispose()
