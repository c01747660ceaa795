"""Reference counting of chunks: every catalog statement that decides a chunk's fate.

All functions run inside a transaction the caller opened (``engine.begin()``: on
SQLite ``BEGIN IMMEDIATE``, so writers are serialised; on PostgreSQL rows are locked
with ``FOR NO KEY UPDATE`` / the primary key of an upsert). Chunk rows are always
locked in address order, and at most one image row is locked per transaction, first:
two transactions therefore never wait on each other in a cycle. ``NO KEY`` matters:
inserting manifest and reference rows takes ``KEY SHARE`` locks on the chunks they
name (foreign-key checks), in manifest order; plain ``FOR UPDATE`` would conflict with
those and deadlock (SQLAlchemy spells it ``with_for_update(key_share=True)``; the
upsert's ON CONFLICT DO UPDATE of non-key columns takes the same lock). Only
collection, which deletes rows, takes ``FOR UPDATE``, and only on rows nobody
references.

The rules that keep bytes and references consistent (docs/image-store.md,
invariants 1-3):

- A reference is taken on an existing row (``refs + 1``) *before* the caller decides
  it need not write the bytes; the row cannot be freed while the reference is held.
- A row with ``refs = 0`` is garbage: its bytes may already be deleted (a collection
  that crashed half-way), so taking a reference on one marks it corrupt, and the
  caller writes the bytes again, which clears the mark.
- New rows are upserted *before* their bytes are published, in the transaction that
  publishes them: a concurrent collection or orphan removal of the same address
  waits on the row lock, so it can never delete bytes a committed row names.
- Collection deletes the bytes of ``refs = 0`` rows while holding their row locks,
  then the rows; references are released in an earlier transaction, so a crash
  never leaves a live image naming deleted bytes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from image_store.backends.base import ChunkBackend
from image_store.catalog.models import Chunk, ChunkOrphan, Image, ImageRef, ManifestEntry
from image_store.records import Entry
from ironbark.db import utcnow

log = logging.getLogger(__name__)

images = Image.__table__
chunks = Chunk.__table__
entries = ManifestEntry.__table__
image_refs = ImageRef.__table__
orphans = ChunkOrphan.__table__

BATCH = 500
"""Addresses per ``IN (...)`` list: far below SQLite's variable limit."""

_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
T = TypeVar("T")


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run(engine: sa.Engine, work: Callable[[sa.Connection], T], attempts: int = 5) -> T:
    """``work(conn)`` in one transaction, retried when PostgreSQL picks it as a deadlock
    victim (lock order makes that rare, not impossible: foreign-key checks take locks
    of their own). ``work`` must have no effect outside the database before its last
    statement, which publishing staged chunks respects."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state not in _RETRYABLE_SQLSTATES or attempt == attempts - 1:
                raise
            log.info("catalog transaction retried after %s (attempt %d)", state, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"catalog on {conn.dialect.name} is not supported")


def lock_image(conn: sa.Connection, image_id: str) -> sa.Row[Any] | None:
    return conn.execute(
        sa.select(images).where(images.c.id == image_id).with_for_update()).first()


def held(conn: sa.Connection, image_id: str, addresses: Iterable[str]) -> set[str]:
    """Which of ``addresses`` the image already holds a reference on."""
    found: set[str] = set()
    for batch in batches(sorted(set(addresses))):
        found.update(conn.scalars(sa.select(image_refs.c.address).where(
            image_refs.c.image_id == image_id, image_refs.c.address.in_(batch))))
    return found


def take_refs(conn: sa.Connection, image_id: str,
              addresses: Iterable[str]) -> tuple[set[str], set[str]]:
    """Take the image's reference on each existing chunk among ``addresses``.

    The image must not hold any of them yet. Returns ``(referenced, trusted)``: the
    chunks now referenced, and those among them whose bytes may be relied on (not
    marked corrupt, not garbage). Garbage rows taken over are marked corrupt, so
    every later reader knows their bytes must be written again.
    """
    referenced: set[str] = set()
    trusted: set[str] = set()
    now = utcnow()
    for batch in batches(sorted(set(addresses))):
        rows = conn.execute(
            sa.select(chunks.c.address, chunks.c.refs, chunks.c.corrupt_at)
            .where(chunks.c.address.in_(batch))
            .order_by(chunks.c.address).with_for_update(key_share=True)).all()
        if not rows:
            continue
        found = [r.address for r in rows]
        conn.execute(chunks.update().where(chunks.c.address.in_(found))
                     .values(refs=chunks.c.refs + 1))
        garbage = [r.address for r in rows if r.refs <= 0 and r.corrupt_at is None]
        if garbage:
            conn.execute(chunks.update().where(chunks.c.address.in_(garbage))
                         .values(corrupt_at=now))
        conn.execute(image_refs.insert(), [{"image_id": image_id, "address": a} for a in found])
        referenced.update(found)
        trusted.update(r.address for r in rows if r.refs > 0 and r.corrupt_at is None)
    return referenced, trusted


def add_chunks(conn: sa.Connection, image_id: str, rows: Sequence[tuple[str, int, int]],
               referenced: set[str]) -> None:
    """Record chunks whose bytes this transaction is about to publish.

    ``rows`` are ``(address, length, stored_size)``; ``referenced`` the addresses the
    image already holds (their rows exist: rewritten bytes clear a corrupt mark).
    The others are inserted with one reference, or gain one if a concurrent upload
    recorded the same chunk meanwhile.
    """
    now = utcnow()
    ordered = sorted(rows)
    rewritten = [{"a": a, "length": n, "stored_size": s} for a, n, s in ordered
                 if a in referenced]
    new = [{"address": a, "length": n, "stored_size": s, "refs": 1, "corrupt_at": None,
            "created_at": now} for a, n, s in ordered if a not in referenced]
    if rewritten:
        conn.execute(
            chunks.update().where(chunks.c.address == sa.bindparam("a"))
            .values(length=sa.bindparam("length"), stored_size=sa.bindparam("stored_size"),
                    corrupt_at=None),
            rewritten)
    if new:
        stmt = _insert(conn, chunks)
        stmt = stmt.on_conflict_do_update(
            index_elements=[chunks.c.address],
            set_={"refs": chunks.c.refs + 1, "corrupt_at": None,
                  "length": stmt.excluded.length, "stored_size": stmt.excluded.stored_size})
        conn.execute(stmt, new)
        conn.execute(image_refs.insert(),
                     [{"image_id": image_id, "address": r["address"]} for r in new])


def insert_entries(conn: sa.Connection, image_id: str, batch: Sequence[Entry]) -> None:
    if batch:
        conn.execute(entries.insert(), [
            {"image_id": image_id, "offset": e.offset, "length": e.length,
             "address": e.address} for e in batch])


def _decrement(conn: sa.Connection, addresses: Sequence[str]) -> list[str]:
    """refs - 1 on each (locked in order); returns those now at zero."""
    zero: list[str] = []
    for batch in batches(sorted(addresses)):
        conn.execute(sa.select(chunks.c.address).where(chunks.c.address.in_(batch))
                     .order_by(chunks.c.address).with_for_update(key_share=True)).all()
        conn.execute(chunks.update().where(chunks.c.address.in_(batch))
                     .values(refs=chunks.c.refs - 1))
        zero.extend(conn.scalars(sa.select(chunks.c.address).where(
            chunks.c.address.in_(batch), chunks.c.refs <= 0)))
    return zero


def release_all(conn: sa.Connection, image_id: str) -> list[str]:
    """Drop an image's manifest and every reference it holds; returns chunks now unused."""
    conn.execute(entries.delete().where(entries.c.image_id == image_id))
    held_now = list(conn.scalars(sa.select(image_refs.c.address)
                                 .where(image_refs.c.image_id == image_id)))
    conn.execute(image_refs.delete().where(image_refs.c.image_id == image_id))
    return _decrement(conn, held_now)


def release(conn: sa.Connection, image_id: str, addresses: Iterable[str]) -> list[str]:
    """Drop some of an image's references (chunks a dedup upload did not use)."""
    dropped = sorted(set(addresses))
    for batch in batches(dropped):
        conn.execute(image_refs.delete().where(image_refs.c.image_id == image_id,
                                               image_refs.c.address.in_(batch)))
    return _decrement(conn, dropped)


def collect(conn: sa.Connection, backend: ChunkBackend, addresses: Sequence[str]) -> int:
    """Delete the bytes, then the rows, of the unused chunks among ``addresses``.

    Only rows still at ``refs = 0`` once locked are touched: an upload that took a
    reference meanwhile keeps its chunk. Returns how many chunks were freed.
    """
    freed = 0
    for batch in batches(sorted(set(addresses))):
        dead = list(conn.scalars(
            sa.select(chunks.c.address).where(chunks.c.address.in_(batch), chunks.c.refs <= 0)
            .order_by(chunks.c.address).with_for_update()))
        for address in dead:
            backend.delete(address)
        if dead:
            conn.execute(chunks.delete().where(chunks.c.address.in_(dead),
                                               chunks.c.refs <= 0))
        freed += len(dead)
    return freed


def garbage(conn: sa.Connection, limit: int = BATCH) -> list[str]:
    """Some rows left at ``refs = 0`` (by a crash between release and collection)."""
    return list(conn.scalars(sa.select(chunks.c.address).where(chunks.c.refs <= 0)
                             .order_by(chunks.c.address).limit(limit)))


def mark_corrupt(conn: sa.Connection, address: str) -> None:
    conn.execute(chunks.update().where(chunks.c.address == address,
                                       chunks.c.corrupt_at.is_(None))
                 .values(corrupt_at=utcnow()))


def clear_corrupt(conn: sa.Connection, address: str) -> None:
    conn.execute(chunks.update().where(chunks.c.address == address,
                                       chunks.c.corrupt_at.is_not(None))
                 .values(corrupt_at=None))


def adopt_and_delete_orphan(conn: sa.Connection, backend: ChunkBackend, address: str) -> bool:
    """Delete a backend object that has no chunk row, unless one appears meanwhile.

    A placeholder row is inserted first: an upload publishing the same address
    upserts its row before publishing, so either it already has a (maybe uncommitted)
    row, and the insert waits for it and then does nothing, or it waits on the
    placeholder until the bytes and the placeholder are gone, and then writes both.
    """
    stmt = _insert(conn, chunks).values(
        address=address, length=0, stored_size=0, refs=0, corrupt_at=None,
        created_at=utcnow()).on_conflict_do_nothing(index_elements=[chunks.c.address])
    inserted = conn.execute(stmt.returning(chunks.c.address)).first()
    if inserted is None:
        return False
    backend.delete(address)
    conn.execute(chunks.delete().where(chunks.c.address == address))
    return True
