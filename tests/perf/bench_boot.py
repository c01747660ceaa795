"""Time from ``POST /v1/servers`` to ACTIVE, through the REST API, all-in-one.

    .venv/bin/python -m tests.perf.bench_boot [--hosts 10] [--servers 500] [--clients 8]

Starts an all-in-one cloud (memory:// bus, SQLite, simulated hosts) in this process.
Each client creates a server, waits until it is ACTIVE, and creates the next (a
closed loop: the latency is the cloud's, not a backlog the benchmark piled up).
Clients learn of ACTIVE from the cloud's own ``instance.state_changed`` events
rather than by polling: polling clients load the API more than the boots do and end
up measuring themselves. Prints servers per second and time-to-ACTIVE p50/p99: the
baseline for the scale issue (which asks 1,000 hosts, 10,000 servers, 32 clients).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ironbark import config, logs
from ironbark.allinone import AllInOne
from message_bus.envelope import Message
from message_bus.messages import InstanceStateChanged
from tests.helpers import Api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--polling", type=float, default=0.002)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        cfg = config.ensure_secrets(config.load(
            data_dir=Path(data), api={"port": 0}, image_store={"port": 0},
            bus={"namespace": f"bench-{uuid.uuid4().hex[:8]}",
                 "polling_interval": args.polling},
            host={"simulated_vcpus": 64, "simulated_memory_mb": 262144},
            cloud={"quota_defaults": {"instances": -1, "cores": -1, "ram": -1}},
            logging={"level": "WARNING"}))
        logs.setup("WARNING")
        cloud = AllInOne(cfg, args.hosts).start()
        try:
            run(cloud, args)
        finally:
            cloud.stop()


class Settled:
    """When each server turned ACTIVE (or ERROR), from the cloud's events."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[float, str]] = {}
        self._changed = threading.Condition()

    def on_change(self, event: Message) -> None:
        assert isinstance(event, InstanceStateChanged)
        if event.status in ("ACTIVE", "ERROR"):
            with self._changed:
                self.at.setdefault(event.instance_id, (time.perf_counter(), event.status))
                self._changed.notify_all()

    def wait(self, server_id: str, timeout: float = 120.0) -> tuple[float, str]:
        with self._changed:
            if not self._changed.wait_for(lambda: server_id in self.at, timeout):
                raise TimeoutError(f"server {server_id} did not settle")
            return self.at[server_id]


def run(cloud: AllInOne, args: argparse.Namespace) -> None:
    settled = Settled()
    cloud.bus.subscribe(InstanceStateChanged.NAME, settled.on_change)
    cloud.bus.wait_until_consuming()
    apis = [Api(cloud.api_url, cloud.admin_token) for _ in range(args.clients)]

    def client(index: int) -> list[float]:
        times = []
        for i in range(index, args.servers, args.clients):
            started = time.perf_counter()
            server_id = apis[index].create(f"b{i}", "m1.tiny")["id"]
            at, _ = settled.wait(server_id)
            times.append(at - started)
        return times

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        times = sorted(t for result in pool.map(client, range(args.clients)) for t in result)
    wall = time.perf_counter() - start
    active = sum(1 for _, status in settled.at.values() if status == "ACTIVE")
    print(f"{args.servers} servers on {args.hosts} simulated hosts, {args.clients} clients: "
          f"{active} ACTIVE")
    print(f"  {args.servers / wall:.1f} servers/s; time to ACTIVE p50 "
          f"{statistics.median(times) * 1000:.0f} ms, p99 "
          f"{times[int(len(times) * 0.99) - 1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
