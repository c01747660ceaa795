"""Server-group policies in the Group Manager's scheduler, on SQLite and PostgreSQL.

The hard policies must hold when members are placed at the same moment, by threads
sharing one scheduler and by several schedulers (as several scheduler workers of one
group would be): the server group's row serialises them in the database.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

import group_manager.db
from group_manager.claims import Request
from group_manager.db.models import Claim, Host
from group_manager.scheduler import NoValidHost, Scheduler
from ironbark.db import create_engine, utcnow
from message_bus.messages import ServerGroupRef


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = (f"sqlite:///{tmp_path / 'group.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    engine = create_engine(url)
    group_manager.db.migrate(engine)
    with engine.begin() as conn:
        for i in range(1, 6):  # 5 hosts with room for 8 one-vCPU members each
            conn.execute(sa.insert(Host).values(
                name=f"h{i}", group_name="g", state="up", enabled=True, hypervisor_type="test",
                boot_id="b", vcpus=8, memory_mb=65536, disk_gb=1000,
                cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
                unknown_domains=[], last_seen_at=utcnow(), created_at=utcnow()))
    yield engine
    engine.dispose()


def _group(policy: str) -> ServerGroupRef:
    return ServerGroupRef(id=str(uuid.uuid4()), name=f"web-{policy}", policy=policy)


def _member(group: ServerGroupRef, i: int) -> Request:
    return Request(f"{group.policy}-{i}-{uuid.uuid4().hex[:6]}", "p", 1, 512, 10, group)


def _place_all(schedulers: list[Scheduler], group: ServerGroupRef, count: int,
               workers: int) -> tuple[list[str], list[str]]:
    """Place ``count`` members at once; (hosts chosen, refusals)."""
    def one(i: int) -> tuple[str | None, str | None]:
        try:
            return schedulers[i % len(schedulers)].place(_member(group, i)), None
        except NoValidHost as exc:
            return None, str(exc)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(count)))
    return [h for h, _ in results if h], [e for _, e in results if e]


def _members_per_host(engine: sa.Engine, group: ServerGroupRef) -> collections.Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Claim.host).where(
            Claim.server_group_id == group.id, Claim.state == "active")).scalars().all()
    return collections.Counter(rows)


def test_anti_affinity_six_on_five_hosts_refuses_the_sixth_naming_the_group(
        engine: sa.Engine) -> None:
    scheduler = Scheduler(engine, "g", "pack")  # pack would stack them all on one host
    group = _group("anti-affinity")
    hosts = [scheduler.place(_member(group, i)) for i in range(5)]
    assert sorted(hosts) == ["h1", "h2", "h3", "h4", "h5"]
    with pytest.raises(NoValidHost) as refused:
        scheduler.place(_member(group, 5))
    message = str(refused.value)
    assert "5 hosts: already run a member of anti-affinity server group" in message
    assert group.name in message and group.id in message


@pytest.mark.parametrize("schedulers", [1, 3], ids=["one-scheduler", "three-schedulers"])
def test_anti_affinity_holds_under_concurrent_members(engine: sa.Engine,
                                                      schedulers: int) -> None:
    pool = [Scheduler(engine, "g", "pack") for _ in range(schedulers)]
    group = _group("anti-affinity")
    placed, refused = _place_all(pool, group, count=6, workers=6)
    assert sorted(placed) == ["h1", "h2", "h3", "h4", "h5"]
    assert len(refused) == 1 and "anti-affinity server group" in refused[0]
    assert max(_members_per_host(engine, group).values()) == 1


@pytest.mark.parametrize("schedulers", [1, 3], ids=["one-scheduler", "three-schedulers"])
def test_affinity_members_placed_at_once_agree_on_one_host(engine: sa.Engine,
                                                           schedulers: int) -> None:
    pool = [Scheduler(engine, "g", "spread") for _ in range(schedulers)]
    group = _group("affinity")
    placed, refused = _place_all(pool, group, count=10, workers=8)
    # 8 fit on the first member's host; the rest are refused, never put elsewhere.
    assert len(set(placed)) == 1 and len(placed) == 8
    assert len(refused) == 2
    assert all("not where the members of affinity server group" in r for r in refused)


def test_soft_anti_affinity_spreads_then_doubles_up_rather_than_refusing(
        engine: sa.Engine) -> None:
    scheduler = Scheduler(engine, "g", "pack")
    group = _group("soft-anti-affinity")
    _, refused = _place_all([scheduler], group, count=7, workers=4)
    assert not refused
    per_host = _members_per_host(engine, group)
    assert len(per_host) == 5 and sorted(per_host.values()) == [1, 1, 1, 2, 2]


def test_soft_affinity_stays_together_then_spills_rather_than_refusing(
        engine: sa.Engine) -> None:
    scheduler = Scheduler(engine, "g", "spread")
    group = _group("soft-affinity")
    _, refused = _place_all([scheduler], group, count=10, workers=4)
    assert not refused
    assert sorted(_members_per_host(engine, group).values()) == [2, 8]


def test_members_of_other_groups_and_plain_servers_do_not_count(engine: sa.Engine) -> None:
    scheduler = Scheduler(engine, "g", "pack")
    first, second = _group("anti-affinity"), _group("anti-affinity")
    for i in range(3):
        scheduler.place(Request(f"plain-{i}", "p", 1, 512, 10))
    assert len({scheduler.place(_member(first, i)) for i in range(5)}) == 5
    assert len({scheduler.place(_member(second, i)) for i in range(5)}) == 5
