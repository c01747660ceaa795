"""The cache's index: what is on disk, how big, how recently used, and who pins what.

Eviction needs recency and the pins of running instances across restarts of the
Instance Manager, so they live in SQLite next to the files. The files stay the truth
for *what exists* (start-up reconciles the index with them); the index is the truth
for *when* something was last used and *which instances* use a base.

Recency is a logical clock (a counter persisted as ``last_used``), not wall time:
ordering is exact and immune to clock steps, and ties break the same way every time.
Pins are keyed by instance, not by file: an instance keeps its pin even while its
base is missing (a base that reappears is protected again).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["chunk", "base"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    address   TEXT PRIMARY KEY,
    bytes     INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bases (
    sha256    TEXT PRIMARY KEY,
    bytes     INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    instance_id TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_lru ON chunks (last_used, address);
CREATE INDEX IF NOT EXISTS bases_lru ON bases (last_used, sha256);
CREATE INDEX IF NOT EXISTS pins_base ON pins (sha256);
"""

# Least recently used first; at equal recency chunks go before bases (a base is
# worth more: it is what boots, chunks only speed up the next version).
_CANDIDATES = """
SELECT kind, key, bytes, last_used, rank FROM (
    SELECT 'chunk' AS kind, address AS key, bytes, last_used, 0 AS rank FROM chunks
    UNION ALL
    SELECT 'base', sha256, bytes, last_used, 1 FROM bases
     WHERE sha256 NOT IN (SELECT sha256 FROM pins)
)
WHERE (last_used, rank, key) > (?, ?, ?)
ORDER BY last_used, rank, key
LIMIT ?
"""

_TABLE = {"chunk": ("chunks", "address"), "base": ("bases", "sha256")}


@dataclass(frozen=True)
class Candidate:
    kind: Kind
    key: str
    bytes: int


class CacheIndex:
    """One SQLite file; one connection shared by the cache's threads behind a lock."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        # Autocommit (isolation_level=None); multi-row changes open their own
        # transaction. WAL + synchronous=NORMAL: a commit is durable against a
        # process kill without an fsync each (a power cut may lose the last few
        # recency updates, never consistency).
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=60.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT max(m) FROM (SELECT max(last_used) AS m FROM chunks "
                "UNION ALL SELECT max(last_used) FROM bases)").fetchone()
            self._clock = int(row[0] or 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def tick(self) -> int:
        """The next moment of the logical clock (strictly after every recorded use)."""
        with self._lock:
            self._clock += 1
            return self._clock

    # -- recording ---------------------------------------------------------------

    def put(self, kind: Kind, key: str, nbytes: int, last_used: int) -> None:
        table, column = _TABLE[kind]
        with self._lock:
            self._db.execute(
                f"INSERT INTO {table} ({column}, bytes, last_used) VALUES (?, ?, ?) "
                f"ON CONFLICT ({column}) DO UPDATE SET bytes = excluded.bytes, "
                f"last_used = max(last_used, excluded.last_used)",
                (key, nbytes, last_used))

    def touch(self, kind: Kind, keys: Iterable[str], last_used: int) -> None:
        table, column = _TABLE[kind]
        with self._lock, self._transaction():
            self._db.executemany(
                f"UPDATE {table} SET last_used = max(last_used, ?) WHERE {column} = ?",
                ((last_used, key) for key in keys))

    def remove(self, kind: Kind, key: str) -> None:
        table, column = _TABLE[kind]
        with self._lock:
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))

    def knows(self, kind: Kind, key: str) -> bool:
        table, column = _TABLE[kind]
        with self._lock:
            return self._db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?",
                                    (key,)).fetchone() is not None

    # -- pins --------------------------------------------------------------------

    def pin(self, instance_id: str, sha256: str) -> None:
        """``instance_id`` uses base ``sha256`` (an instance uses one base: a later
        pin of the same instance moves it)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO pins (instance_id, sha256) VALUES (?, ?) "
                "ON CONFLICT (instance_id) DO UPDATE SET sha256 = excluded.sha256",
                (instance_id, sha256))

    def unpin(self, instance_id: str) -> str | None:
        """Drop the instance's pin; the base it pinned, or None if it had none."""
        with self._lock:
            row = self._db.execute("DELETE FROM pins WHERE instance_id = ? RETURNING sha256",
                                   (instance_id,)).fetchone()
        return None if row is None else str(row[0])

    def users(self, sha256: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT instance_id FROM pins WHERE sha256 = ? ORDER BY instance_id",
                (sha256,)).fetchall()
        return [str(r[0]) for r in rows]

    # -- totals and eviction ---------------------------------------------------------

    def totals(self) -> tuple[int, int, int]:
        """(bases, chunks, bytes on disk)."""
        with self._lock:
            bases, base_bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM bases").fetchone()
            chunks, chunk_bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM chunks").fetchone()
        return int(bases), int(chunks), int(base_bytes) + int(chunk_bytes)

    def candidates(self, batch: int = 512) -> Iterator[Candidate]:
        """Unpinned entries, least recently used first (read in batches, so the caller
        may remove what it is given while iterating)."""
        after: tuple[int, int, str] = (-1, -1, "")
        while True:
            with self._lock:
                rows = self._db.execute(_CANDIDATES, (*after, batch)).fetchall()
            if not rows:
                return
            for kind, key, nbytes, last_used, rank in rows:
                yield Candidate(kind, key, int(nbytes))
                after = (int(last_used), int(rank), str(key))

    # -- start-up ----------------------------------------------------------------

    def reconcile(self, kind: Kind, on_disk: dict[str, int]) -> tuple[int, int]:
        """Make the index's ``kind`` entries exactly ``on_disk`` (key -> bytes).

        Entries whose file is gone are dropped; files the index does not know (a
        crash between writing a file and recording it) are added as least recently
        used; sizes are refreshed. Returns (dropped, added).
        """
        table, column = _TABLE[kind]
        with self._lock, self._transaction():
            known = {str(k) for (k,) in self._db.execute(f"SELECT {column} FROM {table}")}
            gone = known - on_disk.keys()
            new = on_disk.keys() - known
            self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?",
                                 ((k,) for k in gone))
            self._db.executemany(f"UPDATE {table} SET bytes = ? WHERE {column} = ?",
                                 ((on_disk[k], k) for k in known & on_disk.keys()))
            self._db.executemany(
                f"INSERT INTO {table} ({column}, bytes, last_used) VALUES (?, ?, 0)",
                ((k, on_disk[k]) for k in new))
        return len(gone), len(new)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
