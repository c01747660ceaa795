"""Placement: filter the group's hosts, weigh them by policy, claim one atomically.

The scheduler decides on its in-memory view of the hosts (``host_cache``) and claims
in the database; the claim is the truth. It books the request on the chosen host in
its view before claiming, so that concurrent placements in this process pick
different hosts instead of racing for the same one; a claim that loses a race to
another scheduler process is undone in the view and the host re-read. Nothing fits
only after a fresh read of every host says so, and the refusal says why, per filter:
"3 hosts: not enough RAM (need 4096 MiB, largest free 2048 MiB); 1 host: down".

Members of a server group are placed inside a transaction that holds the server
group's row (``claims.lock_server_group``): concurrent members queue there, and each
one sees where the previous ones went before it chooses.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from group_manager.claim_batch import ClaimBatcher
from group_manager.claims import (
    Request,
    lock_server_group,
    member_hosts,
    try_claim,
)
from group_manager.scheduler.filters import DEFAULT_FILTERS, Filter, ServerGroupFilter
from group_manager.scheduler.host_cache import HostCache
from group_manager.scheduler.host_state import HostLike, HostState
from group_manager.scheduler.weighers import POLICIES

log = logging.getLogger(__name__)

_LOST_RACES = 20  # claims lost to other schedulers before re-reading every host
_FULL_READS = 3  # ...and re-readings before giving up


class NoValidHost(Exception):
    """Nothing fits; the message says, per filter, how many hosts were rejected and why."""


class Scheduler:
    """Places requests on one group's hosts; safe to call from many threads."""

    def __init__(self, engine: sa.Engine, group: str, policy: str,
                 refresh_interval: float = 5.0, filters: Sequence[Filter] = DEFAULT_FILTERS):
        self._claims, self.group = ClaimBatcher(engine), group
        self._sessions = sessions = sessionmaker(engine, expire_on_commit=False)
        self.policy = POLICIES[policy]()
        self._filters = tuple(filters)
        self._cache = HostCache(sessions, group, self.policy, refresh_interval)
        self._lock = threading.Lock()

    def place(self, request: Request) -> str:
        """Claim a host for ``request`` and return its name, or raise NoValidHost."""
        if request.server_group is not None:
            return self._place_member(request)
        for read in range(_FULL_READS):
            fresh = read > 0  # the first pass trusts the view if it is recent
            self._refresh(force=fresh)
            host, fits = self._claim_from_view(request)
            if host is not None:
                return host
            if fresh and not fits:
                break  # a fresh read of every host finds no room: that is the answer
        with self._lock:
            raise NoValidHost(self._explain(request, self._filters))

    def _claim_from_view(self, request: Request) -> tuple[str | None, bool]:
        """(the host claimed, or None; whether some host seemed to fit)."""
        for _ in range(_LOST_RACES):
            with self._lock:
                host = self._first_fit(request, self._filters)
                if host is None:
                    return None, False
                self._cache.add_usage(host.name, request)
            try:
                claimed = self._claims.claim(host.name, self.group, request)
            except BaseException:
                with self._lock:  # not booked after all (the database said no, or died)
                    self._cache.add_usage(host.name, request, sign=-1)
                raise
            if claimed:
                self.policy.chosen(self.group, host.name)
                log.info("claimed %s on host %s", request.describe(), host.name)
                return host.name, True
            with self._sessions() as session, session.begin():
                log.debug("host %s filled up under another scheduler; re-reading it",
                          host.name)
                with self._lock:
                    self._cache.reread(session, host.name)
        return None, True

    def _refresh(self, *, force: bool = False, session: Session | None = None) -> None:
        """Re-read every host when the view is old (or ``force``). Lock order is always
        database first, then ``_lock``: the read happens outside the lock."""
        if force or self._cache.stale():
            rows = self._cache.read_all(session)
            with self._lock:
                self._cache.install(rows)

    def claim_batches(self) -> int:
        """Transactions the claims took so far (fewer than claims when they batch)."""
        return self._claims.batches

    def close(self) -> None:
        """Close the claim batcher's connections (when it has its own)."""
        self._claims.close()

    def released(self, host: str, request: Request) -> None:
        """A claim of this group was released (its instance is gone): free it in the view
        now rather than at the next refresh."""
        with self._lock:
            self._cache.add_usage(host, request, sign=-1)

    # --- server groups ----------------------------------------------------------------

    def _place_member(self, request: Request) -> str:
        group = request.server_group
        assert group is not None
        self._refresh()
        with self._sessions() as session, session.begin():
            lock_server_group(session, group)
            members = member_hosts(session, group.id)
            filters = (*self._filters, ServerGroupFilter(members))
            for full_read in range(2):
                if full_read:
                    self._refresh(force=True, session=session)
                with self._lock:
                    candidates = self._member_candidates(request, filters, members)
                for host in candidates:
                    if try_claim(session, host.name, self.group, request):
                        with self._lock:
                            self._cache.add_usage(host.name, request)
                        self.policy.chosen(self.group, host.name)
                        log.info("claimed %s on host %s for server group %s (%s)",
                                 request.describe(), host.name, group.name, group.policy)
                        return host.name
                    with self._lock:
                        self._cache.reread(session, host.name)
            with self._lock:
                raise NoValidHost(self._explain(request, filters))

    def _member_candidates(self, request: Request, filters: Sequence[Filter],
                           members: Counter[str]) -> list[HostState]:
        """Every host that passes, in policy order; the soft policies then put the
        hosts with fewest (anti-affinity) or most (affinity) members first."""
        policy = request.server_group.policy if request.server_group else ""
        if policy == "affinity" and members:  # only where the members are: no need to walk
            hosts = [h for name in members if (h := self._cache.get(name)) is not None]
            return [h for h in hosts if _passes(h, request, filters)]
        passing = [h for h in self._cache.walk() if _passes(h, request, filters)]
        if policy == "soft-anti-affinity":
            passing.sort(key=lambda h: members[h.name])  # stable: policy order within
        elif policy == "soft-affinity":
            passing.sort(key=lambda h: -members[h.name])
        return passing

    # --- filtering and explaining -----------------------------------------------------

    def _first_fit(self, request: Request, filters: Sequence[Filter]) -> HostState | None:
        for host in self._cache.walk():
            if _passes(host, request, filters):
                return host
        return None

    def _explain(self, request: Request, filters: Sequence[Filter]) -> str:
        hosts = self._cache.hosts()
        head = f"No valid host in group '{self.group}' for {request.describe()}"
        if not hosts:
            return f"{head}: the group has no hosts"
        rejected: dict[tuple[int, str], list[HostLike]] = defaultdict(list)
        for host in hosts:
            for index, flt in enumerate(filters):
                reason = flt.reject(host, request)
                if reason is not None:
                    rejected[(index, reason)].append(host)
                    break
        parts = []
        for (index, reason), rejected_hosts in sorted(rejected.items(), key=lambda kv: kv[0]):
            n = len(rejected_hosts)
            why = filters[index].explain(reason, rejected_hosts, request)
            parts.append(f"{n} host{'s' if n != 1 else ''}: {why}")
        if not parts:
            parts.append(f"{len(hosts)} hosts: taken by concurrent requests")
        return f"{head}: " + "; ".join(parts)


def _passes(host: HostLike, request: Request, filters: Sequence[Filter]) -> bool:
    return all(flt.reject(host, request) is None for flt in filters)
