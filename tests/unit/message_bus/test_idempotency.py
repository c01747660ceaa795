"""The stores that remember which mutating messages were already handled."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from message_bus.idempotency import FileStore, MemoryStore, SqlStore

# --- MemoryStore -----------------------------------------------------------------------


def test_memory_store_records_and_sees() -> None:
    store = MemoryStore()
    assert not store.seen("spawn:1")
    store.record("spawn:1")
    assert store.seen("spawn:1")
    assert not store.seen("spawn:2")
    store.record("spawn:1")  # a duplicate record is harmless
    assert store.seen("spawn:1")


def test_memory_store_is_bounded_and_forgets_the_oldest_first() -> None:
    store = MemoryStore(limit=3)
    for key in ("a", "b", "c", "d", "e"):
        store.record(key)
    assert [k for k in "abcde" if store.seen(k)] == ["c", "d", "e"]
    store.record("f")
    assert [k for k in "abcdef" if store.seen(k)] == ["d", "e", "f"]


def test_memory_store_is_thread_safe() -> None:
    store = MemoryStore(limit=10_000)

    def record(prefix: str) -> None:
        for i in range(500):
            store.record(f"{prefix}:{i}")

    threads = [threading.Thread(target=record, args=(str(t),)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(store.seen(f"{t}:{i}") for t in range(4) for i in range(500))


# --- FileStore -------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "state" / "idempotency" / "keys.jsonl"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_file_store_creates_its_directory_and_journals_every_record(journal: Path) -> None:
    store = FileStore(journal)
    try:
        store.record("spawn:1")
        store.record("power:2")
        # written through (fsync'd) at once, not at close
        assert [json.loads(line)[0] for line in _lines(journal)] == ["spawn:1", "power:2"]
    finally:
        store.close()


def test_file_store_survives_reopening(journal: Path) -> None:
    store = FileStore(journal)
    for i in range(10):
        store.record(f"spawn:{i}")
    store.close()

    reopened = FileStore(journal)
    try:
        assert all(reopened.seen(f"spawn:{i}") for i in range(10))
        assert not reopened.seen("spawn:10")
        reopened.record("destroy:1")
    finally:
        reopened.close()

    again = FileStore(journal)
    try:
        assert again.seen("destroy:1") and again.seen("spawn:0")
    finally:
        again.close()


def test_file_store_tolerates_a_torn_last_line(journal: Path) -> None:
    store = FileStore(journal)
    store.record("spawn:1")
    store.record("spawn:2")
    store.close()
    with open(journal, "a") as f:
        f.write('["spawn:3", 17123')  # a crash mid-write: no closing bracket, no newline

    reopened = FileStore(journal)
    try:
        assert reopened.seen("spawn:1") and reopened.seen("spawn:2")
        assert not reopened.seen("spawn:3")
        reopened.record("spawn:4")  # must not be glued onto the torn line
    finally:
        reopened.close()

    again = FileStore(journal)
    try:
        assert [k for k in ("spawn:1", "spawn:2", "spawn:3", "spawn:4") if again.seen(k)] == [
            "spawn:1", "spawn:2", "spawn:4"]
    finally:
        again.close()
    for line in _lines(journal):
        json.loads(line)  # every line of the journal is whole again


def test_file_store_skips_garbage_lines(journal: Path) -> None:
    journal.parent.mkdir(parents=True)
    journal.write_text('["a", 1.0]\n\nnot json\n["b"]\n["c", 2.0]\n\x00\x00\x00\n')
    store = FileStore(journal)
    try:
        assert store.seen("a") and store.seen("c")
        assert not store.seen("b")
    finally:
        store.close()


def test_file_store_compacts_and_keeps_the_newest_keys(journal: Path) -> None:
    limit, n = 5, 80
    store = FileStore(journal, limit=limit)
    sizes = []
    try:
        for i in range(n):
            store.record(f"k{i}")
            sizes.append(len(_lines(journal)))
        assert all(store.seen(f"k{i}") for i in range(n - limit, n))
        assert not any(store.seen(f"k{i}") for i in range(n - limit))
    finally:
        store.close()
    assert max(sizes) <= 2 * limit
    assert any(after < before for before, after in itertools.pairwise(sizes))  # it shrank
    assert len(_lines(journal)) <= 2 * limit

    reopened = FileStore(journal, limit=limit)
    try:
        assert all(reopened.seen(f"k{i}") for i in range(n - limit, n))
        assert not any(reopened.seen(f"k{i}") for i in range(n - limit))
    finally:
        reopened.close()
    assert not journal.with_suffix(".tmp").exists()


def test_file_store_reopened_with_a_smaller_limit_keeps_the_newest(journal: Path) -> None:
    store = FileStore(journal, limit=100)
    for i in range(50):
        store.record(f"k{i}")
    store.close()
    smaller = FileStore(journal, limit=5)
    try:
        assert [i for i in range(50) if smaller.seen(f"k{i}")] == [45, 46, 47, 48, 49]
    finally:
        smaller.close()
    assert len(_lines(journal)) == 5


# --- SqlStore --------------------------------------------------------------------------


def _table() -> sa.Table:
    return sa.Table(
        "processed_messages", sa.MetaData(),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("processed_at", sa.Float),
    )


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def sql_store(engine: sa.Engine) -> tuple[SqlStore, sa.Table, sa.Engine]:
    table = _table()
    table.metadata.create_all(engine)
    return SqlStore(engine, table), table, engine


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_sql_store_records_and_sees(sql_store: tuple[SqlStore, sa.Table, sa.Engine]) -> None:
    store, table, engine = sql_store
    assert engine.dialect.name in ("sqlite", "postgresql")
    assert not store.seen("build:1")
    before = time.time()
    store.record("build:1")
    assert store.seen("build:1")
    assert not store.seen("build:2")
    with engine.connect() as conn:
        at = conn.execute(sa.select(table.c.processed_at)).scalar_one()
    assert before <= at <= time.time()


def test_sql_store_duplicate_record_is_fine(
    sql_store: tuple[SqlStore, sa.Table, sa.Engine],
) -> None:
    store, table, engine = sql_store
    store.record("action:7")
    store.record("action:7")
    assert store.seen("action:7")
    assert _count(engine, table) == 1
    store.record("action:8")  # the store still works after swallowing the conflict
    assert _count(engine, table) == 2


def test_sql_store_concurrent_duplicates(
    sql_store: tuple[SqlStore, sa.Table, sa.Engine],
) -> None:
    store, table, engine = sql_store
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=10)

    def record() -> None:
        try:
            barrier.wait()
            store.record("event:race")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.seen("event:race")
    assert _count(engine, table) == 1


def test_sql_store_prune_removes_old_keys(
    sql_store: tuple[SqlStore, sa.Table, sa.Engine],
) -> None:
    store, table, engine = sql_store
    now = time.time()
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            {"key": "old:1", "processed_at": now - 7200},
            {"key": "old:2", "processed_at": now - 3600},
        ])
    store.record("new:1")
    assert store.seen("old:1") and store.seen("old:2")
    assert store.prune(older_than=now - 5000) == 1
    assert not store.seen("old:1")
    assert store.seen("old:2") and store.seen("new:1")
    assert store.prune(older_than=now - 60) == 1
    assert not store.seen("old:2")
    assert store.seen("new:1")
    assert store.prune(older_than=now - 60) == 0
    assert store.prune(older_than=time.time() + 1) == 1
    assert _count(engine, table) == 0
