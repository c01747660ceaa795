"""Remember which mutating messages were already handled, so a redelivery is a no-op.

The bus checks a message's idempotency key before running its handler and records
it after the handler succeeded. Handlers are written to tolerate the one window this
leaves (a crash after the work but before the record): they check the state they
would create (a claim, a domain) before creating it.

The Cloud and Group Managers keep their keys in their own database; an Instance
Manager, which keeps no database, keeps them in a journal file in its state directory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError


class IdempotencyStore(Protocol):
    def seen(self, key: str) -> bool: ...

    def record(self, key: str) -> None: ...


class MemoryStore:
    """Bounded, in-process; for tests and for receivers whose effects are idempotent anyway."""

    def __init__(self, limit: int = 100_000):
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def record(self, key: str) -> None:
        with self._lock:
            self._keys[key] = time.time()
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)


class FileStore(MemoryStore):
    """A MemoryStore backed by an append-only journal, compacted when it grows."""

    def __init__(self, path: Path, limit: int = 50_000):
        super().__init__(limit)
        self._path = path
        self._lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    key, at = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash mid-write
                self._keys[key] = at
            self._compact()
        self._journal = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the store)

    def record(self, key: str) -> None:
        super().record(key)
        with self._lock:
            self._journal.write(json.dumps([key, time.time()]) + "\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())
            self._lines += 1
            if self._lines > 2 * self._limit:
                self._journal.close()
                self._compact()
                self._journal = open(self._path, "a", buffering=1)  # noqa: SIM115

    def _compact(self) -> None:
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for key, at in self._keys.items():
                f.write(json.dumps([key, at]) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        self._lines = len(self._keys)

    def close(self) -> None:
        self._journal.close()


class SqlStore:
    """Keys in a ``processed_messages`` table of the receiver's own database.

    Keys are kept a week (``KEEP_FOR``): far longer than any redelivery can lag.
    """

    KEEP_FOR = 7 * 24 * 3600.0

    def __init__(self, engine: sa.Engine, table: sa.Table):
        self._engine, self._table = engine, table

    def seen(self, key: str) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(self._table.c.key).where(self._table.c.key == key))
            return row.first() is not None

    def record(self, key: str) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(self._table.insert().values(key=key, processed_at=time.time()))
        except IntegrityError:
            pass  # recorded by a concurrent redelivery: the same outcome

    def prune_old(self) -> int:
        """Forget keys older than KEEP_FOR (run hourly by the managers)."""
        return self.prune(time.time() - self.KEEP_FOR)

    def prune(self, older_than: float) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                self._table.delete().where(self._table.c.processed_at < older_than)
            )
            return result.rowcount
