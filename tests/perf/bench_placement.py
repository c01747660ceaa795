"""Placement throughput: Ironbark's Group Manager scheduler on N hosts, beside OpenStack
Placement on the same workload, in the same run.

    .venv/bin/python -m tests.perf.bench_placement [--hosts 1000] [--requests 4000]
        [--clients 1,8] [--database postgresql|sqlite] [--placement] [--growth 100,1000,5000]

Workload (issue 6): every host 32 vCPU x 16.0, 128 GiB x 1.5 with 512 MiB reserved,
2,000 GB x 1.0; every request 2 vCPU / 4 GiB / 20 GB. Hosts join the group the way
they do in production (a host report applied by the inventory). A decision is one
``Scheduler.place`` call: filter, weigh, claim in the database, as the Group
Manager's build workflow makes it (without the bus hop in front of it). Clients are
threads sharing one scheduler, as the Group Manager's handler pool does.

After each run the capacity check reads every host row and every active claim and
fails loudly if any host holds more than capacity x ratio or the counters and the
claims disagree.

``--placement`` also installs and starts OpenStack Placement on MariaDB
(``tests/perf/placement_ref``), runs the same workload there (``GET
/allocation_candidates`` then ``PUT /allocations/{consumer}``, as Nova's scheduler
does) and prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from group_manager import db as group_db
from group_manager.capacity import RESOURCES, capacity
from group_manager.claims import Request
from group_manager.db.models import Claim, Host
from group_manager.inventory import Inventory
from group_manager.scheduler import NoValidHost, Scheduler
from ironbark.config import GroupOptions
from ironbark.db import create_engine
from message_bus.messages import HostReport, Resources
from tests.conftest import POSTGRES_URL

GROUP = "bench"
HOST = Resources(vcpus=32, memory_mb=131072, disk_gb=2000)
RESERVED = Resources(vcpus=0, memory_mb=512, disk_gb=0)
REQUEST = (2, 4096, 20)


@dataclass
class Result:
    decisions: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def per_second(self) -> float:
        return self.decisions / self.seconds

    def line(self, label: str) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        return (f"{label}: {self.decisions} decisions in {self.seconds:.2f} s = "
                f"{self.per_second:,.0f} decisions/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                + (f", {self.failures} no valid host" if self.failures else ""))


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh Group Manager database: a PostgreSQL database dropped afterwards, or a
    SQLite file in a temporary directory."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'group.db'}"
        return
    name = f"ironbark_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def populate(engine: sa.Engine, hosts: int) -> GroupOptions:
    """Hosts join as in production: each one's report applied by the inventory."""
    options = GroupOptions(name=GROUP, cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5,
                           disk_allocation_ratio=1.0)
    inventory = Inventory(sessionmaker(engine, expire_on_commit=False), options)
    now = time.time()
    for index in range(hosts):
        inventory.apply_report(HostReport(
            host=f"host{index:05d}", group=GROUP, boot_id=str(uuid.uuid4()),
            hypervisor_type="TEST", capacity=HOST, reserved=RESERVED, domains=[],
            observed_at=now))
    return options


def run(place: Callable[[Request], str], requests: int, clients: int) -> Result:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(_: int) -> None:
        nonlocal failures
        request = Request(str(uuid.uuid4()), "bench-project", *REQUEST)
        start = time.perf_counter()
        try:
            place(request)
        except NoValidHost:
            with lock:
                failures += 1
            return
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)

    start = time.perf_counter()
    if clients == 1:
        for i in range(requests):
            one(i)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(requests)))
    return Result(len(latencies), time.perf_counter() - start, latencies, failures)


def check_capacity(engine: sa.Engine) -> None:
    """No host past capacity x ratio; each host's counters equal its active claims."""
    with engine.connect() as conn:
        hosts = conn.execute(sa.select(Host.__table__)).mappings().all()
        sums = {row.host: row for row in conn.execute(
            sa.select(Claim.host, sa.func.count().label("n"),
                      *(sa.func.sum(getattr(Claim, r.key)).label(r.key) for r in RESOURCES))
            .where(Claim.state == "active").group_by(Claim.host)).all()}
    problems = []
    for host in hosts:
        claimed = sums.get(host["name"])
        for r in RESOURCES:
            cap = capacity(host[r.total], host[r.reserved], host[r.ratio])
            if host[r.used] > cap + 1e-9:
                problems.append(f"{host['name']}: {r.key} {host[r.used]} > capacity {cap}")
            if (getattr(claimed, r.key) if claimed else 0) != host[r.used]:
                problems.append(f"{host['name']}: {r.key} counter disagrees with claims")
    if problems:
        raise SystemExit("CAPACITY CHECK FAILED:\n  " + "\n  ".join(problems[:20]))


def bench_ironbark(kind: str, hosts: int, requests: int, clients: list[int],
                   policy: str) -> dict[int, Result]:
    results = {}
    for n in clients:
        with database(kind) as url:
            engine = create_engine(url)
            group_db.migrate(engine)
            started = time.perf_counter()
            options = populate(engine, hosts)
            joined = time.perf_counter() - started
            scheduler = Scheduler(engine, GROUP, policy,
                                  options.scheduler_refresh_interval)
            run(scheduler.place, min(50, requests), 1)  # warm up: caches, pools
            batches_before = scheduler.claim_batches()
            result = run(scheduler.place, requests, n)
            batches = scheduler.claim_batches() - batches_before
            scheduler.close()
            check_capacity(engine)
            print(f"ironbark {kind} {hosts} hosts ({policy}, {joined:.1f} s to join): "
                  + result.line(f"{n} client{'s' if n > 1 else ''}")
                  + f", {result.decisions / max(batches, 1):.1f} claims per commit", flush=True)
            results[n] = result
            engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--policy", default="spread")
    parser.add_argument("--growth", default="",
                        help="host counts for the growth curve, e.g. 100,1000,5000")
    parser.add_argument("--placement", action="store_true",
                        help="also run OpenStack Placement on MariaDB and print the ratio")
    parser.add_argument("--placement-requests", type=int, default=300)
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    ours = bench_ironbark(args.database, args.hosts, args.requests, clients, args.policy)
    for hosts in [int(h) for h in args.growth.split(",") if h]:
        bench_ironbark(args.database, hosts, args.requests, [1], args.policy)
    if args.placement:
        from tests.perf.placement_ref import compare

        theirs = compare.run(args.hosts, args.placement_requests, clients)
        for n in clients:
            print(f"ratio ironbark/placement, {n} client{'s' if n > 1 else ''}: "
                  f"{ours[n].per_second / theirs[n].decisions_per_second:,.0f}x", flush=True)


if __name__ == "__main__":
    main()
