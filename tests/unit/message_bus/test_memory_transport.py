"""The event-driven memory:// transport: kombu's semantics, without polling.

Bus-level tests use real Buses on ``memory://`` (which ``Bus.connection`` maps to
MemoryTransport), each test in a namespace of its own. Transport-level tests drive a
kombu Connection on MemoryTransport directly, to control exactly when messages are
put, drained and acked. Waits are on events and conditions; the one bounded sleep per
test is where the point is that something does NOT happen for a while.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from message_bus import memory_transport
from message_bus.memory_transport import MemoryTransport
from message_bus.messages import DeleteInstance, HostList, HostStateChanged, ListHosts
from tests.integration.bus_fixtures import Buses, Recorder, delete, host_changed, host_list

WAIT = 5.0  # seconds: generous bounds, never reached when the transport works
GROUP = "group.g1"


@pytest.fixture
def buses(namespace: str) -> Iterator[Buses]:
    made = Buses("memory://", namespace)
    yield made
    made.close()


def task_ids(items: list[Any]) -> list[str]:
    return [m.task_id for m in items]


# --- across Bus instances -------------------------------------------------------------


def test_bus_uses_the_event_driven_transport_for_memory_urls(buses: Buses) -> None:
    conn = buses("cloud").connection()
    try:
        assert isinstance(conn.transport, MemoryTransport)
    finally:
        conn.release()


def test_a_cast_and_a_call_cross_between_bus_instances(buses: Buses) -> None:
    handled = Recorder()
    server = buses("group")
    server.serve(GROUP, {DeleteInstance: handled.add, ListHosts: lambda m: host_list()})
    server.start()
    client = buses("cloud")
    client.cast(GROUP, delete(task_id="t-1"))
    assert client.call(GROUP, ListHosts(), timeout=WAIT) == host_list()
    assert task_ids(handled.wait_for_count(1, WAIT)) == ["t-1"]


def test_competing_consumers_share_one_queues_messages(buses: Buses) -> None:
    # Prefetch 1 and handlers that hold their message until both servers have one:
    # the second message can only go to the other server, so both must take part.
    both = threading.Barrier(2, timeout=WAIT)
    everything = Recorder()
    seen: dict[str, Recorder] = {"a": Recorder(), "b": Recorder()}

    def handler(name: str) -> Any:
        def handle(m: DeleteInstance) -> None:
            if m.task_id in ("t-0", "t-1"):
                both.wait()
            seen[name].add(m.task_id)
            everything.add(m.task_id)
        return handle

    for name in seen:
        server = buses(f"group-{name}")
        server.serve(GROUP, {DeleteInstance: handler(name)}, prefetch=1)
        server.start()
    client = buses("cloud")
    for n in range(10):
        client.cast(GROUP, delete(instance_id=f"i-{n}", task_id=f"t-{n}"))
    everything.wait_for_count(10, WAIT)
    time.sleep(0.1)  # a duplicate would show up now
    assert sorted(everything.items) == sorted(f"t-{n}" for n in range(10))
    assert seen["a"].items and seen["b"].items


def test_prefetch_one_holds_the_next_message_until_the_first_is_acked(buses: Buses) -> None:
    release = threading.Event()
    started = Recorder()
    finished = Recorder()

    def slow(m: DeleteInstance) -> None:
        started.add(m.task_id)
        if m.task_id == "first":
            release.wait(WAIT)
        finished.add(m.task_id)

    server = buses("group")
    # Two workers and two instance ids: only the prefetch limit keeps them apart.
    server.serve(GROUP, {DeleteInstance: slow}, workers=2, prefetch=1)
    server.start()
    client = buses("cloud")
    client.cast(GROUP, delete(instance_id="i-1", task_id="first"))
    client.cast(GROUP, delete(instance_id="i-2", task_id="second"))
    started.wait_for_item("first", WAIT)
    time.sleep(0.3)  # the point: the second message is not delivered meanwhile
    assert started.items == ["first"]
    assert buses.queue_depth(f"{buses.namespace}.{GROUP}") == 1
    release.set()
    # No lost wake-up: the ack frees the slot and the parked queue is tried again.
    assert finished.wait_for_count(2, WAIT) == ["first", "second"]


def test_a_cast_whose_ttl_ran_out_in_the_queue_is_dropped(buses: Buses) -> None:
    client = buses("cloud")
    client.cast(GROUP, delete(task_id="stale"), ttl=0.2)
    client.cast(GROUP, delete(task_id="fresh"), ttl=30)
    time.sleep(0.4)  # the point: the first cast's ttl runs out before anyone serves
    handled = Recorder()
    server = buses("group")
    server.serve(GROUP, {DeleteInstance: handled.add})
    server.start()
    client.cast(GROUP, delete(task_id="later"))
    handled.wait_for_count(2, WAIT)
    assert task_ids(handled.items) == ["fresh", "later"]
    assert buses.queue_depth(f"{buses.namespace}.{GROUP}") == 0


def test_a_topic_event_reaches_every_matching_subscriber(buses: Buses) -> None:
    got = {name: Recorder() for name in ("exact", "wildcard", "other")}
    for name, key in (("exact", HostStateChanged.NAME), ("wildcard", "host.*"),
                      ("other", "instance.#")):
        bus = buses(name)
        bus.subscribe(key, got[name].add)
        bus.start()
    buses("group").publish(host_changed("host1", "down"))
    got["exact"].wait_for_item(host_changed("host1", "down"), WAIT)
    got["wildcard"].wait_for_item(host_changed("host1", "down"), WAIT)
    buses("group").publish(host_changed("host2"))
    got["exact"].wait_for_count(2, WAIT)
    got["wildcard"].wait_for_count(2, WAIT)
    assert got["other"].items == []


# --- 1,000 served queues -----------------------------------------------------------------


@pytest.fixture(scope="module")
def thousand() -> Iterator[Buses]:
    """A started Bus serving 1,000 targets (an all-in-one with 1,000 hosts serves that
    many queues on one consumer connection), and a client Bus."""
    made = Buses("memory://", f"test-{uuid.uuid4().hex[:12]}")
    server = made("hosts")
    for n in range(1000):
        server.serve(f"host.h{n}", {ListHosts: lambda m: host_list()}, workers=1)
    server.start(timeout=60)
    client = made("cloud")
    client.call("host.h0", ListHosts(), timeout=WAIT)  # reply listener up
    yield made
    made.close()


def test_waiting_with_1000_served_queues_costs_almost_no_cpu(thousand: Buses) -> None:
    time.sleep(0.2)  # let the start-up work settle
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(1.0)
    used = time.process_time() - cpu
    elapsed = time.monotonic() - wall
    # kombu's polling transport spends most of a core here; waking costs ~nothing.
    assert used < 0.2 * elapsed, f"{used:.3f} s of CPU in {elapsed:.2f} s idle"


def test_a_call_among_1000_queues_reads_only_the_queues_that_have_a_message(
        thousand: Buses) -> None:
    client = thousand.made[1]
    before = memory_transport.attempts()
    for n in range(0, 1000, 50):
        assert isinstance(client.call(f"host.h{n}", ListHosts(), timeout=WAIT), HostList)
    tried = memory_transport.attempts() - before
    # 20 calls = 40 messages (request and reply); a scan would try ~1,000 per message.
    assert 40 <= tried <= 80, tried


# --- the transport under kombu -------------------------------------------------------------


class Broker:
    """kombu entities of one test namespace, on MemoryTransport or plain memory://."""

    def __init__(self) -> None:
        ns = f"test-{uuid.uuid4().hex[:12]}"
        self.exchange = Exchange(f"{ns}.rpc", type="direct", durable=True)
        self.made: list[Connection] = []

    def queue(self, key: str) -> Queue:
        return Queue(f"{self.exchange.name}.{key}", exchange=self.exchange, routing_key=key)

    def connect(self, plain: bool = False) -> Connection:
        conn = Connection("memory://", transport=None if plain else MemoryTransport)
        self.made.append(conn)
        return conn

    def put(self, conn: Connection, key: str, body: Any) -> None:
        Producer(conn).publish(body, exchange=self.exchange, routing_key=key,
                               declare=[self.exchange, self.queue(key)], serializer="json")

    def close(self) -> None:
        for conn in self.made:
            conn.release()


@pytest.fixture
def broker() -> Iterator[Broker]:
    made = Broker()
    yield made
    made.close()


def consume(broker: Broker, conn: Connection, keys: list[str], prefetch: int = 0,
            ack: bool = True) -> list[tuple[Any, Any]]:
    got: list[tuple[Any, Any]] = []

    def on_message(body: Any, message: Any) -> None:
        got.append((body, message))
        if ack:
            message.ack()

    consumer = Consumer(conn.channel(), queues=[broker.queue(k) for k in keys],
                        callbacks=[on_message], accept=["json"])
    if prefetch:
        consumer.qos(prefetch_count=prefetch)
    consumer.consume()
    return got


def test_a_busy_queue_does_not_starve_the_others(broker: Broker) -> None:
    conn = broker.connect()
    got = consume(broker, conn, ["busy", "quiet"])
    for n in range(50):
        broker.put(conn, "busy", n)
    broker.put(conn, "quiet", "q")
    for _ in range(4):
        conn.drain_events(timeout=WAIT)
    assert "q" in [body for body, _ in got], [body for body, _ in got]


def test_an_ack_from_another_thread_wakes_a_consumer_parked_by_prefetch(
        broker: Broker) -> None:
    conn = broker.connect()
    got = consume(broker, conn, ["work"], prefetch=1, ack=False)
    broker.put(conn, "work", 1)
    broker.put(conn, "work", 2)
    conn.drain_events(timeout=WAIT)
    with pytest.raises(TimeoutError):  # the point: nothing more until the ack
        conn.drain_events(timeout=0.2)
    acker = threading.Timer(0.1, got[0][1].ack)
    acker.start()
    conn.drain_events(timeout=WAIT)  # woken by the ack, not by a put
    acker.join()
    assert [body for body, _ in got] == [1, 2]


def test_a_requeued_message_is_delivered_again(broker: Broker) -> None:
    conn = broker.connect()
    got = consume(broker, conn, ["work"], prefetch=1, ack=False)
    broker.put(conn, "work", "again")
    conn.drain_events(timeout=WAIT)
    got[0][1].requeue()
    conn.drain_events(timeout=WAIT)
    got[1][1].ack()
    assert [body for body, _ in got] == ["again", "again"]
    with pytest.raises(TimeoutError):  # acked: gone for good
        conn.drain_events(timeout=0.1)


def test_puts_through_a_plain_memory_connection_wake_the_transport(broker: Broker) -> None:
    plain = broker.connect(plain=True)
    broker.put(plain, "raw", "before")  # queue created by kombu's own memory channel
    conn = broker.connect()
    got = consume(broker, conn, ["raw"])
    conn.drain_events(timeout=WAIT)
    woke = threading.Event()

    def drain() -> None:
        conn.drain_events(timeout=WAIT)
        woke.set()

    waiter = threading.Thread(target=drain)
    waiter.start()
    time.sleep(0.1)  # the waiter is asleep in drain_events when the put comes
    broker.put(plain, "raw", "after")
    assert woke.wait(WAIT)
    waiter.join()
    assert [body for body, _ in got] == ["before", "after"]


def test_a_drain_with_nothing_to_deliver_times_out(broker: Broker) -> None:
    conn = broker.connect()
    consume(broker, conn, ["empty"])
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0.2)
    assert time.monotonic() - start >= 0.2
