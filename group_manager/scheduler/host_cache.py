"""The scheduler's view of its group's hosts, kept in memory and sorted by policy.

Reading 1,000 host rows for every placement costs more than the placement itself, so
the scheduler keeps the rows in memory: it reads them all at start and then every
``max_age`` seconds, moves a host in the sorted order when its own claim changes it,
and re-reads a host whose claim failed (another scheduler got there first). The view
is only ever a guide: the conditional UPDATE of the claim is the truth, and before
the scheduler tells anyone that nothing fits it re-reads every row.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import fields

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from group_manager.capacity import RESOURCES
from group_manager.claims import Request
from group_manager.db.models import Host
from group_manager.scheduler.host_state import HostState
from group_manager.scheduler.weighers import Policy, Scale, SortKey

_COLUMNS = [getattr(Host, f.name) for f in fields(HostState)]


class HostCache:
    """Not thread-safe: the scheduler calls it under its own lock."""

    def __init__(self, sessions: sessionmaker[Session], group: str, policy: Policy,
                 max_age: float):
        self._sessions, self._group, self._policy = sessions, group, policy
        self._max_age = max_age
        self._hosts: dict[str, HostState] = {}
        self._keys: dict[str, SortKey] = {}
        self._sorted: list[tuple[SortKey, str]] = []
        self._scale = Scale((1.0, 1.0))
        self.loaded_at = float("-inf")

    # --- reading ----------------------------------------------------------------------

    def stale(self) -> bool:
        return time.monotonic() - self.loaded_at >= self._max_age

    def read_all(self, session: Session | None = None) -> list[sa.Row]:
        """Every host row of the group, in the caller's transaction if given (on SQLite
        a second one would wait for it). Touches no state: call it without the
        scheduler's lock, so a read that waits for the database blocks nobody else."""
        query = sa.select(*_COLUMNS).where(Host.group_name == self._group)
        if session is not None:
            return list(session.execute(query).all())
        with self._sessions() as own, own.begin():
            return list(own.execute(query).all())

    def install(self, rows: list[sa.Row]) -> None:
        """Replace the whole view with ``rows`` (from ``read_all``)."""
        self.loaded_at = time.monotonic()
        self._hosts = {row.name: HostState(*row) for row in rows}
        self._scale = Scale.of(self._hosts.values())
        self._keys = {name: self._policy.key(h, self._scale) for name, h in self._hosts.items()}
        self._sorted = sorted((key, name) for name, key in self._keys.items())

    def reread(self, session: Session, name: str) -> None:
        """Replace one host with its row as it is now (after a lost claim race)."""
        row = session.execute(sa.select(*_COLUMNS).where(Host.name == name)).first()
        self._remove(name)
        if row is not None and row.group_name == self._group:
            self._hosts[name] = HostState(*row)
            self._insert(name)

    def hosts(self) -> list[HostState]:
        return list(self._hosts.values())

    def get(self, name: str) -> HostState | None:
        return self._hosts.get(name)

    def walk(self) -> Iterator[HostState]:
        """Every host, in the policy's order, from where the policy says to start."""
        ordered = list(self._sorted)  # the walk must not see its own moves
        start = self._policy.start(self._group)
        cut = bisect.bisect_left(ordered, (start,)) if start is not None else 0
        for _, name in ordered[cut:] + ordered[:cut] if cut else ordered:
            yield self._hosts[name]

    # --- changing ---------------------------------------------------------------------

    def add_usage(self, name: str, request: Request, sign: int = 1) -> None:
        """Move ``request``'s resources onto (sign 1) or off (sign -1) the host."""
        host = self._hosts.get(name)
        if host is None:
            return
        self._remove(name, keep_state=True)
        for r in RESOURCES:
            setattr(host, r.used, getattr(host, r.used) + sign * request.amount(r.key))
        host.instances += sign
        self._insert(name)

    def _remove(self, name: str, *, keep_state: bool = False) -> None:
        key = self._keys.pop(name, None)
        if key is not None:
            index = bisect.bisect_left(self._sorted, (key, name))
            if index < len(self._sorted) and self._sorted[index] == (key, name):
                del self._sorted[index]
        if not keep_state:
            self._hosts.pop(name, None)

    def _insert(self, name: str) -> None:
        key = self._policy.key(self._hosts[name], self._scale)
        self._keys[name] = key
        bisect.insort(self._sorted, (key, name))
