"""Scrub: verify every chunk the catalog knows, and clear out what it does not know.

1. Rows left at ``refs = 0`` by a crash are collected.
2. Every chunk row is read and decoded (verified against its address), pages of
   rows at a time, several chunks in parallel. A failure is confirmed by looking
   again (a concurrent delete may have freed the chunk, an upload repaired it)
   before the chunk is reported and marked corrupt; a chunk marked corrupt that now
   verifies has its mark cleared.
3. Backend objects without a row are orphans (an upload that crashed between
   publishing and committing). One is removed only once it has been seen without a
   row for ``grace`` seconds, by an earlier scrub (``chunk_orphans`` remembers), and
   then only through :func:`~image_store.catalog.chunk_index.adopt_and_delete_orphan`,
   which cannot race with an upload publishing the same address.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from image_store import codec
from image_store.backends.base import ChunkBackend, ChunkMissing
from image_store.catalog import chunk_index as ci
from ironbark.db import utcnow

log = logging.getLogger(__name__)

PAGE = 1000
VERIFY_GROUP = 16

Collect = Callable[[list[str]], int]


def _verify(backend: ChunkBackend, address: str, length: int) -> str | None:
    """None if the chunk reads back right, else why not (``None`` means healthy)."""
    try:
        codec.decode(backend.get(address), address, length)
    except ChunkMissing:
        return "missing"
    except codec.CorruptChunk as exc:
        return exc.reason
    return None


def _verify_group(backend: ChunkBackend,
                  rows: list[tuple[str, int]]) -> list[str | None]:
    return [_verify(backend, a, n) for a, n in rows]


class Scrub:
    def __init__(self, engine: sa.Engine, backend: ChunkBackend, pool: ThreadPoolExecutor,
                 collect: Collect, grace: float) -> None:
        self._engine = engine
        self._backend = backend
        self._pool = pool
        self._collect = collect
        self._grace = grace

    def run(self) -> dict[str, Any]:
        self._collect_garbage()
        checked, nbytes, corrupt, missing = self._verify_all()
        images = self._images_of(corrupt)
        removed = self._remove_orphans()
        result = {
            "checked": checked,
            "bytes": nbytes,
            "corrupt": [{"address": a, "images": images.get(a, [])} for a in corrupt],
            "missing": missing,
            "orphans_removed": removed,
        }
        log.info("scrub: %d chunks (%d bytes) checked, %d corrupt, %d missing, "
                 "%d orphans removed", checked, nbytes, len(corrupt), len(missing), removed)
        return result

    def _collect_garbage(self) -> None:
        while True:
            dead = ci.run(self._engine, ci.garbage)
            if not dead or self._collect(dead) == 0:
                return

    def _pages(self) -> Iterator[list[tuple[str, int, bool]]]:
        after = ""
        while True:
            with self._engine.begin() as conn:
                page = [(r.address, r.length, r.corrupt_at is not None) for r in conn.execute(
                    sa.select(ci.chunks.c.address, ci.chunks.c.length, ci.chunks.c.corrupt_at)
                    .where(ci.chunks.c.address > after, ci.chunks.c.refs > 0)
                    .order_by(ci.chunks.c.address).limit(PAGE))]
            if not page:
                return
            yield page
            after = page[-1][0]

    def _verify_all(self) -> tuple[int, int, list[str], list[str]]:
        checked = nbytes = 0
        corrupt: list[str] = []
        missing: list[str] = []
        for page in self._pages():
            groups = [[(a, n) for a, n, _ in page[i:i + VERIFY_GROUP]]
                      for i in range(0, len(page), VERIFY_GROUP)]
            outcomes = [o for group in self._pool.map(
                lambda g: _verify_group(self._backend, g), groups) for o in group]
            for (address, length, was_corrupt), outcome in zip(page, outcomes, strict=True):
                checked += 1
                nbytes += length
                if outcome is not None:
                    outcome = self._confirm(address)
                if outcome is None:
                    if was_corrupt:
                        ci.run(self._engine, lambda c, a=address: ci.clear_corrupt(c, a))
                        log.info("scrub: chunk %s verifies again; corrupt mark cleared",
                                 address)
                    continue
                if outcome == "gone":
                    continue
                ci.run(self._engine, lambda c, a=address: ci.mark_corrupt(c, a))
                log.error("scrub: chunk %s is %s", address,
                          "missing" if outcome == "missing" else f"corrupt: {outcome}")
                (missing if outcome == "missing" else corrupt).append(address)
        return checked, nbytes, corrupt, missing

    def _confirm(self, address: str) -> str | None:
        """Look again at a chunk that failed: "gone" if it was freed meanwhile."""
        with self._engine.begin() as conn:
            length = conn.scalar(sa.select(ci.chunks.c.length).where(
                ci.chunks.c.address == address, ci.chunks.c.refs > 0))
        if length is None:
            return "gone"
        return _verify(self._backend, address, length)

    def _images_of(self, addresses: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with self._engine.begin() as conn:
            for batch in ci.batches(addresses):
                for row in conn.execute(
                        sa.select(ci.image_refs.c.address, ci.image_refs.c.image_id)
                        .where(ci.image_refs.c.address.in_(batch))
                        .order_by(ci.image_refs.c.image_id)):
                    found.setdefault(row.address, []).append(row.image_id)
        return found

    def _orphans(self) -> set[str]:
        """Backend objects with no chunk row, right now."""
        orphans: set[str] = set()
        batch: list[str] = []

        def check(batch: list[str]) -> None:
            with self._engine.begin() as conn:
                known = set(conn.scalars(sa.select(ci.chunks.c.address)
                                         .where(ci.chunks.c.address.in_(batch))))
            orphans.update(a for a in batch if a not in known)

        for address in self._backend.addresses():
            batch.append(address)
            if len(batch) >= ci.BATCH:
                check(batch)
                batch = []
        if batch:
            check(batch)
        return orphans

    def _remove_orphans(self) -> int:
        orphans = self._orphans()
        now = utcnow()

        def remember(conn: sa.Connection) -> dict[str, dt.datetime]:
            seen = {r.address: r.seen_at for r in conn.execute(sa.select(ci.orphans))}
            gone = [a for a in seen if a not in orphans]
            for batch in ci.batches(gone):
                conn.execute(ci.orphans.delete().where(ci.orphans.c.address.in_(batch)))
            new = [{"address": a, "seen_at": now} for a in sorted(orphans) if a not in seen]
            if new:
                conn.execute(ci.orphans.insert(), new)
            return {a: seen.get(a, now) for a in orphans}

        seen_at = ci.run(self._engine, remember)
        cutoff = now - dt.timedelta(seconds=self._grace)
        due = sorted(a for a, when in seen_at.items() if when <= cutoff)
        removed = 0
        for address in due:
            def work(conn: sa.Connection, a: str = address) -> bool:
                done = ci.adopt_and_delete_orphan(conn, self._backend, a)
                conn.execute(ci.orphans.delete().where(ci.orphans.c.address == a))
                return done
            if ci.run(self._engine, work):
                removed += 1
                log.info("scrub: removed orphan chunk %s (no catalog row)", address)
        return removed
