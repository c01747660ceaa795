"""The whole Placement reference in one call, for ``tests/perf/bench_placement.py`` and
for ``python -m tests.perf.placement_ref``.

Each client count gets its own server on a freshly created database, populated anew,
as the Ironbark side gets a fresh database per client count: every run starts from
empty hosts, so the two sides' runs are alike.
"""

from __future__ import annotations

import os
import time

from tests.perf.placement_ref import cpu, install, workload
from tests.perf.placement_ref.server import DEFAULT_WORKERS, PlacementServer

# Decisions made before the measured run: the first requests in each gunicorn worker
# load Placement's resource class and trait caches and open database connections.
WARMUP = 10


def run(providers: int, requests: int, clients: list[int],
        workers: int = DEFAULT_WORKERS) -> dict[int, workload.Result]:
    """Install if needed, then for each client count: start Placement, register
    ``providers`` compute nodes, make ``requests`` decisions, check capacity. Prints one
    line per figure; raises SystemExit when a decision failed or capacity was exceeded,
    since figures from a broken run mean nothing."""
    if not clients or min(clients) < 1:
        raise ValueError(f"clients must be a non-empty list of counts >= 1, got {clients}")
    install.ensure()
    print(f"placement versions (openstack-placement, gunicorn, PyMySQL, SQLAlchemy): "
          f"{install.placement_version()}; gunicorn sync workers: {workers}", flush=True)
    results: dict[int, workload.Result] = {}
    for n in clients:
        label = f"placement {providers} providers, {n} client{'s' if n > 1 else ''}"
        with PlacementServer(workers=workers) as server:
            seconds = workload.populate(server.url, providers)
            print(f"placement: {providers} providers registered in {seconds:.1f} s "
                  f"({providers / seconds:.0f}/s; db sync {server.sync_seconds:.1f} s)",
                  flush=True)
            warm = workload.run(server.url, WARMUP, 1)
            before = cpu.sample(server.pid)
            load = os.getloadavg()[0]
            result = workload.run(server.url, requests, n)
            after = cpu.sample(server.pid)
            print(result.line(label) + f" (load average {load:.1f} before)", flush=True)
            print(f"{label}: CPU per decision: "
                  f"{cpu.breakdown(before, after, result.decisions)}", flush=True)
            for failed in (warm, result):
                if failed.errors:
                    raise SystemExit(f"{label}: {failed.errors} decisions failed; first: "
                                     f"{failed.first_error}")
            started = time.perf_counter()
            problems = workload.check_capacity(server.url, warm.decisions + result.decisions)
            checked = time.perf_counter() - started
            if problems:
                raise SystemExit(f"{label}: CAPACITY CHECK FAILED:\n  "
                                 + "\n  ".join(problems[:20]))
            print(f"{label}: capacity check passed ({providers} providers, "
                  f"{warm.decisions + result.decisions} allocations, read in {checked:.1f} s)",
                  flush=True)
        results[n] = result
    return results
