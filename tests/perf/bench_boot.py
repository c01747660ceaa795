"""Time from ``POST /v1/servers`` to ACTIVE, through the REST API, all-in-one.

    .venv/bin/python -m tests.perf.bench_boot [--hosts 10] [--servers 500] [--clients 8]

Starts an all-in-one cloud (memory:// bus, SQLite, simulated hosts) in a child
process, creates servers from concurrent clients in this one (so the load generator
does not compete with the cloud for the GIL), and follows each server with its own
poller until ACTIVE. Prints servers per second and time-to-ACTIVE p50/p99: the
baseline for the scale issue (which asks 1,000 hosts, 10,000 servers, 32 clients).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from ironbark import config, logs
from ironbark.allinone import AllInOne
from tests.helpers import Api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--polling", type=float, default=0.002)
    args = parser.parse_args()
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(child, args.hosts, args.polling), daemon=True)
    server.start()
    url, token = parent.recv()
    try:
        run(url, token, args)
    finally:
        parent.send("stop")
        server.join(timeout=60)


def serve(conn: Connection, hosts: int, polling: float) -> None:
    """The cloud, in its own process, until the parent says stop."""
    with tempfile.TemporaryDirectory() as data:
        cfg = config.ensure_secrets(config.load(
            data_dir=Path(data), api={"port": 0}, image_store={"port": 0},
            bus={"namespace": f"bench-{uuid.uuid4().hex[:8]}", "polling_interval": polling},
            host={"simulated_vcpus": 64, "simulated_memory_mb": 262144},
            logging={"level": "WARNING"}))
        logs.setup("WARNING")
        cloud = AllInOne(cfg, hosts).start()
        conn.send((cloud.api_url, cloud.admin_token))
        conn.recv()
        cloud.stop()


def run(url: str, token: str, args: argparse.Namespace) -> None:
    apis = [Api(url, token) for _ in range(args.clients)]

    def boot(i: int) -> float:
        api = apis[i % args.clients]
        start = time.perf_counter()
        server = api.create(f"b{i}", "m1.tiny")
        api.wait(server["id"], lambda s: s["status"] in ("ACTIVE", "ERROR"), timeout=120)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        times = sorted(pool.map(boot, range(args.servers)))
    wall = time.perf_counter() - start
    active = sum(1 for s in apis[0].get("/v1/servers").body["servers"]
                 if s["status"] == "ACTIVE")
    print(f"{args.servers} servers on {args.hosts} simulated hosts, {args.clients} clients: "
          f"{active} ACTIVE")
    print(f"  {args.servers / wall:.1f} servers/s; time to ACTIVE p50 "
          f"{statistics.median(times) * 1000:.0f} ms, p99 "
          f"{times[int(len(times) * 0.99) - 1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
