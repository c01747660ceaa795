"""Bus round trips: a call's latency on memory:// (by polling interval) and RabbitMQ.

    .venv/bin/python -m tests.perf.bench_bus [--calls 500]

Prints p50/p99 round-trip time per transport and the idle CPU a memory:// consumer
costs, the trade-off behind the default ``bus.polling_interval``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import uuid

from message_bus import Bus
from message_bus.messages import HostList, ListHosts
from tests.conftest import RABBITMQ_URL


def measure(url: str, calls: int, polling: float) -> tuple[float, float, float]:
    bus = Bus(url, sender="bench", namespace=f"bench-{uuid.uuid4().hex[:8]}",
              polling_interval=polling)
    bus.serve("group.bench", {ListHosts: lambda m: HostList(group="bench", hosts=[])})
    bus.start()
    bus.call("group.bench", ListHosts(), timeout=5)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        bus.call("group.bench", ListHosts(), timeout=5)
        samples.append((time.perf_counter() - start) * 1000)
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(2.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    bus.stop()
    idle = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 2.0 * 100
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    print(f"{'transport':<28} {'p50 ms':>8} {'p99 ms':>8} {'idle CPU %':>11}")
    for url, polling in [("memory://", 0.005), ("memory://", 0.002), ("memory://", 0.001),
                         (RABBITMQ_URL, 0.002)]:
        p50, p99, idle = measure(url, args.calls, polling)
        name = f"memory:// polling {polling * 1000:g} ms" if url == "memory://" else "RabbitMQ"
        print(f"{name:<28} {p50:>8.2f} {p99:>8.2f} {idle:>11.1f}")


if __name__ == "__main__":
    main()
