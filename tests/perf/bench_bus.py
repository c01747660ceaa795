"""Bus round trips and idle cost, by transport and by number of served queues.

    .venv/bin/python -m tests.perf.bench_bus [--calls 500] [--queues 1 100 1000]
                                             [--cloud-hosts 100 1000 [--cloud-seconds 60]]

For each transport and each number of served queues (an all-in-one cloud serves one
queue per simulated host on a single consumer connection), one Bus serves that many
targets and another calls them in turn: prints the call round trip (p50/p99), the
process's CPU while both Buses sit idle for 2 s, and for the event-driven memory://
transport the queue reads it tried per message sent. Transports: memory:// as the
Bus uses it (message_bus/memory_transport.py, event-driven), kombu's own polling
memory:// at the old 2 ms default (for reference) and RabbitMQ.

``--cloud-hosts`` also starts an all-in-one cloud with that many simulated hosts and
prints its idle CPU over 10 s or ``--cloud-seconds`` (everything, not just the bus:
host reports and their database transactions too).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from kombu import Connection

from message_bus import Bus, memory_transport
from message_bus.messages import HostList, ListHosts
from tests.conftest import RABBITMQ_URL
from tests.integration.bus_fixtures import Buses
from tests.perf.broker import fresh_vhost

IDLE_SECONDS = 2.0


class PollingBus(Bus):
    """A Bus on kombu's own (polling) memory transport, as before memory_transport."""

    def connection(self) -> Connection:
        return Connection(self.url, transport_options=dict(self._transport_options),
                          connect_timeout=self._connect_timeout)


class PollingBuses(Buses):
    def __call__(self, sender: str, **kwargs: object) -> Bus:
        bus = PollingBus(self.url, sender=sender, namespace=self.namespace,
                         polling_interval=0.002)
        self.made.append(bus)
        return bus


def measure(buses: Buses, queues: int, calls: int) -> tuple[float, float, float, float | None]:
    """p50 ms, p99 ms, idle CPU % and (memory:// only) queue reads per message."""
    server = buses("bench-server")
    reply = HostList(group="bench", hosts=[])
    for n in range(queues):
        server.serve(f"host.b{n}", {ListHosts: lambda m: reply}, workers=1)
    server.start(timeout=120)
    client = buses("bench-client")
    for n in range(queues):  # steady state: every target's worker thread exists
        client.call(f"host.b{n}", ListHosts(), timeout=5)
    reads = memory_transport.attempts()
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        client.call(f"host.b{i % queues}", ListHosts(), timeout=5)
        samples.append((time.perf_counter() - start) * 1000)
    reads = memory_transport.attempts() - reads
    time.sleep(0.2)
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle = (time.process_time() - cpu) / (time.monotonic() - wall) * 100
    samples.sort()
    per_message = reads / (2 * calls) if reads else None  # a request and a reply per call
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], idle, per_message


def cloud_idle(hosts: int, seconds: float = 10.0) -> tuple[float, float]:
    """Seconds to start an all-in-one cloud with ``hosts`` hosts, and its idle CPU % over
    ``seconds`` (hosts report every max(10 s, hosts / 20) s: 50 s at 1,000 hosts, so a
    shorter window may see none of their reports)."""
    from ironbark import config
    from ironbark.allinone import AllInOne

    with tempfile.TemporaryDirectory() as data_dir:
        cfg = config.ensure_secrets(config.load(
            data_dir=Path(data_dir), api={"port": 0}, image_store={"port": 0},
            bus={"namespace": f"bench-{uuid.uuid4().hex[:8]}"}, logging={"level": "WARNING"}))
        start = time.monotonic()
        cloud = AllInOne(cfg, hosts).start(ready_timeout=600)
        ready = time.monotonic() - start
        try:
            time.sleep(2.0)
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            return ready, (time.process_time() - cpu) / (time.monotonic() - wall) * 100
        finally:
            cloud.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--queues", type=int, nargs="*", default=[1, 100, 1000])
    parser.add_argument("--cloud-hosts", type=int, nargs="*", default=[])
    parser.add_argument("--cloud-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{'transport':<30} {'queues':>6} {'p50 ms':>8} {'p99 ms':>8} {'idle CPU %':>11} "
          f"{'reads/msg':>10}")
    kinds: list[tuple[str, type[Buses], str]] = [
        ("memory:// event-driven", Buses, "memory://"),
        ("memory:// kombu polling 2 ms", PollingBuses, "memory://"),
        ("RabbitMQ", Buses, RABBITMQ_URL),
    ]
    for name, factory, url in kinds:
        for queues in args.queues:
            with contextlib.ExitStack() as stack:
                if url.startswith("amqp"):  # its 1,000 durable queues go with the vhost
                    url = stack.enter_context(fresh_vhost(RABBITMQ_URL))
                buses = factory(url, f"bench-{uuid.uuid4().hex[:8]}")
                try:
                    p50, p99, idle, reads = measure(buses, queues, args.calls)
                finally:
                    buses.close()
            shown = f"{reads:.2f}" if reads is not None else "-"
            print(f"{name:<30} {queues:>6} {p50:>8.2f} {p99:>8.2f} {idle:>11.1f} {shown:>10}",
                  flush=True)
    for hosts in args.cloud_hosts:
        ready, idle = cloud_idle(hosts, args.cloud_seconds)
        print(f"all-in-one with {hosts} hosts: ready in {ready:.1f} s, idle CPU {idle:.1f} % "
              f"over {args.cloud_seconds:g} s", flush=True)


if __name__ == "__main__":
    main()
