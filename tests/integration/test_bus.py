"""The message bus against real brokers: every test runs on ``memory://`` and on RabbitMQ.

Each test gets a namespace of its own, real Buses (one per simulated process) and
the real message classes of ``message_bus.messages``. Raw bodies that no Bus would
send are put on a service's queue with a kombu Producer, the way a buggy or foreign
peer would. Waits are on events and conditions, never on sleeps, except where the
point is that time passes (a ttl running out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from message_bus import Bus, CallTimeout, RemoteError, context
from message_bus.idempotency import MemoryStore
from message_bus.messages import (
    DeleteInstance,
    DescribeInstance,
    HostList,
    HostReport,
    HostStateChanged,
    InstanceAction,
    InstanceObservation,
    InstanceStateChanged,
    ListHosts,
)
from tests.helpers import wait_for
from tests.integration.bus_fixtures import (
    Buses,
    Recorder,
    action,
    delete,
    envelope,
    host_changed,
    host_list,
    host_report,
    observation,
    state_changed,
)

GROUP = "group.g1"


@pytest.fixture(params=["memory", "rabbitmq"])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("rabbitmq_url")


@pytest.fixture
def buses(bus_url: str, namespace: str) -> Iterator[Buses]:
    made = Buses(bus_url, namespace)
    yield made
    made.close()


def group_server(buses: Buses, **serve: Any) -> tuple[Bus, Recorder]:
    """A started Group Manager stand-in that records every cast it handles."""
    handled = Recorder()
    server = buses("group")
    server.serve(GROUP, {DeleteInstance: handled.add, InstanceAction: handled.add,
                         HostReport: handled.add,
                         ListHosts: lambda m: host_list()}, **serve)
    server.start()
    return server, handled


def task_ids(messages: list[object]) -> list[str]:
    return [m.task_id for m in messages]  # type: ignore[attr-defined]


# --- call ------------------------------------------------------------------------------


def test_call_returns_the_typed_reply(buses: Buses) -> None:
    group_server(buses)
    reply = buses("cloud").call(GROUP, ListHosts(), timeout=2)
    assert isinstance(reply, HostList)
    assert reply == host_list()
    assert reply.hosts[0].memory_mb.free == 16384 - 2048


def test_concurrent_calls_from_many_threads_each_get_their_own_reply(buses: Buses) -> None:
    server = buses("group")
    server.serve(GROUP, {DescribeInstance: lambda m: observation(m.instance_id,
                                                                 host=f"on-{m.instance_id}")})
    server.start()
    client = buses("cloud")

    def ask(thread: int) -> list[tuple[str, InstanceObservation]]:
        ids = [f"i-{thread}-{n}" for n in range(8)]
        return [(i, client.call(GROUP, DescribeInstance(instance_id=i), timeout=5)) for i in ids]

    with ThreadPoolExecutor(8) as pool:
        answers = [pair for batch in pool.map(ask, range(8)) for pair in batch]
    assert len(answers) == 64
    for asked, reply in answers:
        assert isinstance(reply, InstanceObservation)
        assert (reply.instance_id, reply.host) == (asked, f"on-{asked}")


def test_a_call_nobody_serves_times_out_after_its_timeout_naming_target_and_message(
        buses: Buses) -> None:
    client = buses("cloud")
    start = time.monotonic()
    with pytest.raises(CallTimeout) as caught:
        client.call("group.nobody", ListHosts(), timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed <= 1.5, elapsed
    assert (caught.value.target, caught.value.name) == ("group.nobody", "list_hosts")
    assert "'group.nobody'" in str(caught.value) and "'list_hosts'" in str(caught.value)


def test_a_call_that_timed_out_is_not_acted_on_by_a_server_that_starts_later(
        buses: Buses) -> None:
    client = buses("cloud")
    client.cast(GROUP, delete(task_id="before"))  # declares the durable queue
    with pytest.raises(CallTimeout):
        client.call(GROUP, ListHosts(), timeout=0.3)
    client.cast(GROUP, delete(task_id="after"))
    asked = Recorder()
    handled = Recorder()
    server = buses("group")
    server.serve(GROUP, {ListHosts: lambda m: asked.add(m) or host_list(),
                         DeleteInstance: handled.add}, workers=1)
    server.start()
    handled.wait_for_count(2)
    assert task_ids(handled.items) == ["before", "after"]
    assert asked.items == [], "a call whose caller gave up was handled"


def test_a_failing_handler_returns_a_remote_error_and_the_server_keeps_serving(
        buses: Buses, caplog: pytest.LogCaptureFixture) -> None:
    def describe(m: DescribeInstance) -> InstanceObservation:
        if m.instance_id == "i-bad":
            raise LookupError(f"no instance {m.instance_id} in this group")
        return observation(m.instance_id)

    server = buses("group")
    server.serve(GROUP, {DescribeInstance: describe})
    server.start()
    client = buses("cloud")
    with pytest.raises(RemoteError) as caught:
        client.call(GROUP, DescribeInstance(instance_id="i-bad"), timeout=2)
    err = caught.value
    assert (err.target, err.name, err.error_type) == (GROUP, "describe_instance", "LookupError")
    assert err.message == "no instance i-bad in this group"
    assert str(err) == (f"'{GROUP}' failed 'describe_instance': "
                        "LookupError: no instance i-bad in this group")
    assert any(r.levelno == logging.ERROR and "describe_instance" in r.getMessage()
               for r in caplog.records)
    assert client.call(GROUP, DescribeInstance(instance_id="i-ok"), timeout=2) == \
        observation("i-ok")


def test_a_handler_returning_the_wrong_reply_gives_a_remote_error(buses: Buses) -> None:
    server = buses("group")
    server.serve(GROUP, {ListHosts: lambda m: None})
    server.start()
    with pytest.raises(RemoteError) as caught:
        buses("cloud").call(GROUP, ListHosts(), timeout=2)
    assert caught.value.error_type == "TypeError"
    assert "host_list" in caught.value.message or "HostList" in caught.value.message


def test_a_call_the_target_does_not_handle_is_rejected_not_timed_out(buses: Buses) -> None:
    group_server(buses)
    start = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        buses("cloud").call(GROUP, DescribeInstance(instance_id="i-1"), timeout=5)
    assert time.monotonic() - start < 2
    assert caught.value.error_type == "MessageRejected"
    assert "describe_instance" in caught.value.message and GROUP in caught.value.message


def test_sending_a_message_of_the_wrong_kind_raises_type_error(buses: Buses) -> None:
    client = buses("cloud")
    with pytest.raises(TypeError, match="'delete_instance' is a cast, not a call"):
        client.call(GROUP, delete(), timeout=1)
    with pytest.raises(TypeError, match="'list_hosts' is a call, not a cast"):
        client.cast(GROUP, ListHosts())
    with pytest.raises(TypeError, match=r"'instance\.state_changed' is a event, not a cast"):
        client.cast(GROUP, state_changed("i-1"))
    with pytest.raises(TypeError, match="'list_hosts' is a call, not a event"):
        client.publish(ListHosts())
    with pytest.raises(TypeError, match="'host_list' is a reply, not a call"):
        client.call(GROUP, host_list(), timeout=1)


# --- cast ------------------------------------------------------------------------------


def test_a_cast_reaches_its_handler_with_the_senders_request_id(buses: Buses) -> None:
    seen = Recorder()
    server = buses("group")
    server.serve(GROUP, {DeleteInstance: lambda m: seen.add(
        (m, context.current_request_id(), context.instance_id_var.get()))})
    server.start()
    with context.bound("req-test-1"):
        buses("cloud").cast(GROUP, delete("i-7", "t-7"))
    [(message, request_id, instance_id)] = seen.wait_for_count(1)
    assert message == delete("i-7", "t-7")
    assert (request_id, instance_id) == ("req-test-1", "i-7")


def test_a_cast_sent_before_anyone_serves_waits_in_the_durable_queue(buses: Buses) -> None:
    buses("cloud").cast(GROUP, delete("i-1", "early"))
    _, handled = group_server(buses)
    assert task_ids(handled.wait_for_count(1)) == ["early"]


def test_a_cast_whose_ttl_ran_out_before_a_server_started_is_dropped(buses: Buses) -> None:
    client = buses("host1")
    client.cast(GROUP, host_report("stale"), ttl=0.2)
    client.cast(GROUP, host_report("long-lived"), ttl=30)
    time.sleep(0.4)  # the point of this test is that the first report's ttl runs out
    client.cast(GROUP, host_report("fresh"))
    _, handled = group_server(buses)
    # Same host, same ordering key: handled in queue order, so "stale" would come first.
    reports = handled.wait_until(lambda items: any(m.boot_id == "fresh" for m in items),
                                 "the fresh report")
    assert [m.boot_id for m in reports] == ["long-lived", "fresh"]


def test_an_envelope_that_expired_in_transit_is_dropped_with_a_warning(
        buses: Buses, caplog: pytest.LogCaptureFixture) -> None:
    _, handled = group_server(buses, workers=1)
    stale = envelope(delete("i-1", "stale"), expires_at=time.time() - 5)
    buses.publish_raw(GROUP, stale)  # no AMQP expiration: only the envelope says so
    buses("cloud").cast(GROUP, delete("i-1", "fresh"))
    assert task_ids(handled.wait_for_count(1)) == ["fresh"]
    assert any(r.levelno == logging.WARNING and "'delete_instance' that expired" in
               r.getMessage() for r in caplog.records)


# --- publish / subscribe -----------------------------------------------------------------


def test_events_reach_every_subscriber_whose_binding_matches_and_no_other(
        buses: Buses) -> None:
    any_instance_a, any_instance_b, exact_instance, exact_host = (Recorder() for _ in range(4))
    a = buses("watcher-a")
    a.subscribe("instance.#", any_instance_a.add)
    a.subscribe("host.state_changed", exact_host.add)
    a.start()
    b = buses("watcher-b")
    b.subscribe("instance.#", any_instance_b.add)
    b.subscribe("instance.state_changed", exact_instance.add)
    b.start()

    publisher = buses("cloud")
    for event in (state_changed("i-1"), host_changed("h-1"), state_changed("i-2"),
                  host_changed("h-last"), state_changed("i-last")):
        publisher.publish(event)

    # Each queue is FIFO and each subscription handles one event at a time, so once a
    # subscriber has the last event it matches, anything misrouted to it came before.
    for instances in (any_instance_a, any_instance_b, exact_instance):
        got = instances.wait_until(
            lambda items: any(getattr(m, "instance_id", "") == "i-last" for m in items),
            "the last instance event")
        assert all(isinstance(m, InstanceStateChanged) for m in got), got
        assert [m.instance_id for m in got] == ["i-1", "i-2", "i-last"]
    got = exact_host.wait_until(lambda items: any(getattr(m, "host", "") == "h-last"
                                                  for m in items), "the last host event")
    assert all(isinstance(m, HostStateChanged) for m in got), got
    assert [m.host for m in got] == ["h-1", "h-last"]


def test_subscribers_sharing_a_named_queue_get_each_event_once_between_them(
        buses: Buses) -> None:
    shared = Recorder()
    queue_name = f"{buses.namespace}.audit"
    members = []
    for who in ("audit-1", "audit-2"):
        member = buses(who)
        member.subscribe("instance.#", lambda m, who=who: shared.add((who, m.instance_id)),
                         queue_name=queue_name)
        member.start()
        members.append(member)
    publisher = buses("cloud")
    ids = [f"i-{n}" for n in range(40)]
    for instance_id in ids:
        publisher.publish(state_changed(instance_id))
    shared.wait_until(lambda items: {i for _, i in items} == set(ids), "all 40 events")
    # Whoever of the two took them, the other one is still there for the next event.
    members[0].stop()  # lets whatever it already received finish
    publisher.publish(state_changed("after-audit-1"))
    shared.wait_for_item(("audit-2", "after-audit-1"))
    members[1].stop()
    # The queue is durable and outlives its subscribers: an event waits there for the next.
    publisher.publish(state_changed("while-nobody-listens"))
    latecomer = buses("audit-3")
    latecomer.subscribe("instance.#", lambda m: shared.add(("audit-3", m.instance_id)),
                        queue_name=queue_name)
    latecomer.start()
    shared.wait_for_item(("audit-3", "while-nobody-listens"))
    got = shared.items
    assert sorted(i for _, i in got) == sorted([*ids, "after-audit-1", "while-nobody-listens"]), \
        "an event reached more than one subscriber, or none"


def test_a_subscriber_whose_callback_fails_keeps_receiving(buses: Buses) -> None:
    seen = Recorder()

    def callback(m: InstanceStateChanged) -> None:
        seen.add(m.instance_id)
        if m.instance_id == "i-boom":
            raise RuntimeError("listener bug")

    watcher = buses("watcher")
    watcher.subscribe("instance.#", callback)
    watcher.start()
    publisher = buses("cloud")
    publisher.publish(state_changed("i-boom"))
    publisher.publish(state_changed("i-after"))
    assert seen.wait_for_item("i-after") == ["i-boom", "i-after"]


def test_subscribing_after_start_receives_what_is_published_once_consuming(
        buses: Buses) -> None:
    """wait_until_consuming() promises the new queue is consumed when it returns, so an
    event published right then must arrive. Tried ten times to catch a race."""
    watcher = buses("watcher")
    watcher.start()
    publisher = buses("cloud")
    publisher.publish(state_changed("warm-up"))  # the producer's connection is open
    recorders = []
    for n in range(10):
        seen = Recorder()
        watcher.subscribe("instance.#", lambda m, seen=seen: seen.add(m.instance_id))
        watcher.wait_until_consuming()
        publisher.publish(state_changed(f"i-{n}"))
        recorders.append(seen)
    missed = []
    deadline = time.monotonic() + 1.5
    for n, seen in enumerate(recorders):
        try:
            seen.wait_for_item(f"i-{n}", timeout=max(0.0, deadline - time.monotonic()))
        except AssertionError:
            missed.append(f"i-{n}")
    assert missed == [], f"events published after wait_until_consuming() were lost: {missed}"


# --- rejection of bad input ----------------------------------------------------------------


BAD_BODIES = {
    "malformed-envelope": ("list_hosts", {"name": "list_hosts", "version": "1.0", "body": {}},
                           "malformed envelope"),
    "unknown-name": ("no_such_message", envelope(delete(), name="no_such_message"),
                     "unknown message name"),
    "unknown-major-version": ("delete_instance", envelope(delete(), version="2.0"),
                              "unsupported major version 2.0"),
    "wrong-typed-body": ("delete_instance",
                         envelope(delete(), body={"instance_id": ["i-1"], "task_id": 7}),
                         "malformed body"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_message_is_dropped_with_an_error_naming_it_and_the_consumer_goes_on(
        buses: Buses, caplog: pytest.LogCaptureFixture, case: str) -> None:
    name, body, reason = BAD_BODIES[case]
    server, handled = group_server(buses)
    buses.publish_raw(GROUP, body)
    assert buses("cloud").call(GROUP, ListHosts(), timeout=2) == host_list()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"rejected message '{name}'" in e and reason in e for e in errors), errors
    server.stop()
    assert handled.items == []
    assert buses.queue_depth(f"{buses.namespace}.{GROUP}") == 0, "it was not dropped"


def test_a_body_that_is_not_json_is_dropped_and_the_consumer_goes_on(
        buses: Buses, caplog: pytest.LogCaptureFixture) -> None:
    """A peer's garbage must cost one logged, dropped message: not the consumer's
    connection, and with it the acks of messages handled meanwhile."""
    server, handled = group_server(buses)
    buses.publish_raw(GROUP, b"{not json", serializer=None, content_type="application/json",
                      content_encoding="utf-8")
    client = buses("cloud")
    client.cast(GROUP, delete("i-1", "t-1"))
    client.cast(GROUP, delete("i-1", "t-2"))
    handled.wait_for_count(2)
    assert client.call(GROUP, ListHosts(), timeout=2) == host_list()
    server.stop()
    records = [(r.levelno, r.getMessage()) for r in caplog.records
               if r.name.startswith("message_bus")]
    problems = []
    if reconnects := [m for _, m in records if "lost its connection" in m]:
        problems.append(f"the consumer dropped its connection {len(reconnects)} times: "
                        f"{reconnects[0]}")
    if not [m for level, m in records if level == logging.ERROR]:
        problems.append("no ERROR record about the dropped body")
    if task_ids(handled.items) != ["t-1", "t-2"]:
        problems.append(f"casts handled more than once: {task_ids(handled.items)}")
    if depth := buses.queue_depth(f"{buses.namespace}.{GROUP}"):
        problems.append(f"{depth} messages left on the queue")
    assert not problems, "\n".join(problems)


def test_a_rejected_call_gets_an_error_reply_rather_than_a_timeout(buses: Buses) -> None:
    group_server(buses)
    catcher = buses.reply_catcher()
    try:
        bumped = envelope(DescribeInstance(instance_id="i-1"), version="2.0")
        buses.publish_raw(GROUP, bumped, reply_to=catcher.name, correlation_id="corr-42")
        body, properties = catcher.wait(timeout=2)
    finally:
        catcher.close()
    assert properties.get("correlation_id") == "corr-42"
    assert body["ok"] is False
    assert body["error"]["type"] == "MessageRejected"
    assert "'describe_instance'" in body["error"]["message"]
    assert "unsupported major version 2.0" in body["error"]["message"]


# --- idempotency ---------------------------------------------------------------------------


def test_the_same_mutating_cast_twice_is_handled_once(
        buses: Buses, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="message_bus")
    _, handled = group_server(buses, idempotency=MemoryStore())
    client = buses("cloud")
    resender = buses("cloud-after-restart")
    client.cast(GROUP, delete("i-1", "t-1"))
    resender.cast(GROUP, delete("i-1", "t-1"))  # same message, so the same key
    client.cast(GROUP, action("i-1", "t-2"))
    client.cast(GROUP, action("i-1", "t-3"))  # another key: handled as well
    client.cast(GROUP, delete("i-1", "t-1"))
    client.cast(GROUP, delete("i-1", "t-last"))
    # One instance, one ordering key: once "t-last" is handled, all the client sent before
    # it were seen. The resender's copy travels on another connection, which RabbitMQ does
    # not order against the client's, so it may arrive after "t-last": wait for both skips.
    got = handled.wait_until(lambda items: "t-last" in task_ids(items), "the last cast")

    def skipped() -> int:
        return sum("already handled" in r.getMessage() for r in caplog.records)

    wait_for(lambda: skipped() >= 2, timeout=5, what="both redeliveries to be skipped")
    time.sleep(0.2)  # a third (wrong) handling would show here
    assert task_ids(handled.items) == task_ids(got) == ["t-1", "t-2", "t-3", "t-last"]
    assert skipped() == 2


def test_a_transient_failure_is_redelivered_and_then_handled_exactly_once(
        buses: Buses) -> None:
    class DatabaseRestarting(Exception):
        pass

    attempts = Recorder()
    done = Recorder()

    def destroy(m: DeleteInstance) -> None:
        attempts.add(m.task_id)
        if attempts.items.count(m.task_id) == 1:
            raise DatabaseRestarting("connection refused")
        done.add(m.task_id)

    server = buses("group")
    server.serve(GROUP, {DeleteInstance: destroy}, idempotency=MemoryStore(),
                 transient=(DatabaseRestarting,))
    server.start()
    client = buses("cloud")
    client.cast(GROUP, delete("i-1", "t-1"))
    done.wait_for_item("t-1")
    client.cast(GROUP, delete("i-1", "t-1"))  # a later redelivery of the same message
    client.cast(GROUP, delete("i-1", "t-marker"))  # first try fails, then it goes through
    done.wait_for_item("t-marker")
    assert attempts.items == ["t-1", "t-1", "t-marker", "t-marker"]
    assert done.items == ["t-1", "t-marker"]


# --- ordering and concurrency --------------------------------------------------------------


def test_casts_with_one_ordering_key_are_handled_in_order_even_with_many_workers(
        buses: Buses) -> None:
    _, handled = group_server(buses, workers=8)
    client = buses("cloud")
    sent = [f"t-{n:02}" for n in range(50)]
    for task_id in sent:
        client.cast(GROUP, action("i-1", task_id))
    assert task_ids(handled.wait_for_count(50)) == sent


def test_casts_with_different_ordering_keys_are_handled_concurrently(buses: Buses) -> None:
    barrier = threading.Barrier(4, timeout=1.5)
    outcomes = Recorder()

    def destroy(m: DeleteInstance) -> None:
        try:
            barrier.wait()
            outcomes.add((m.instance_id, "together"))
        except threading.BrokenBarrierError:
            outcomes.add((m.instance_id, "alone"))

    server = buses("group")
    server.serve(GROUP, {DeleteInstance: destroy}, workers=8)
    server.start()
    client = buses("cloud")
    for n in range(4):
        client.cast(GROUP, delete(f"i-{n}", f"t-{n}"))
    got = outcomes.wait_for_count(4)
    assert sorted(got) == [(f"i-{n}", "together") for n in range(4)]


def test_a_busy_key_does_not_hold_up_other_keys(buses: Buses) -> None:
    release = threading.Event()
    handled = Recorder()

    def destroy(m: DeleteInstance) -> None:
        if m.instance_id == "i-slow":
            assert release.wait(5)
        handled.add(m.task_id)

    server = buses("group")
    server.serve(GROUP, {DeleteInstance: destroy}, workers=2)
    server.start()
    client = buses("cloud")
    client.cast(GROUP, delete("i-slow", "slow-1"))
    client.cast(GROUP, delete("i-slow", "slow-2"))
    for n in range(5):
        client.cast(GROUP, delete("i-fast", f"fast-{n}"))
    assert handled.wait_for_count(5) == [f"fast-{n}" for n in range(5)]
    release.set()
    assert handled.wait_for_count(7)[5:] == ["slow-1", "slow-2"]


# --- stop ----------------------------------------------------------------------------------


def test_stop_lets_in_flight_handlers_finish_and_leaves_the_rest_for_the_next_bus(
        buses: Buses) -> None:
    entered, release, stopped = threading.Event(), threading.Event(), threading.Event()
    first = Recorder()

    def slow_destroy(m: DeleteInstance) -> None:
        if m.task_id == "t-0":
            entered.set()
            assert release.wait(5)
        first.add(m.task_id)

    server = buses("group-1")
    server.serve(GROUP, {DeleteInstance: slow_destroy})
    server.start()
    client = buses("cloud")
    client.cast(GROUP, delete("i-1", "t-0"))
    assert entered.wait(2)

    finished_when_stop_returned: list[list[str]] = []

    def stop() -> None:
        server.stop()
        finished_when_stop_returned.append(first.items)
        stopped.set()

    threading.Thread(target=stop, daemon=True).start()
    assert not stopped.wait(0.3), "stop() returned while a handler was still running"
    release.set()
    assert stopped.wait(3)
    assert finished_when_stop_returned == [["t-0"]]

    for n in range(1, 4):
        client.cast(GROUP, delete("i-1", f"t-{n}"))

    second = Recorder()
    successor = buses("group-2")
    successor.serve(GROUP, {DeleteInstance: lambda m: second.add(m.task_id)})
    successor.start()
    # "t-0" was acked on the way out, so the successor starts with "t-1".
    assert second.wait_for_count(3) == ["t-1", "t-2", "t-3"]
    assert first.items == ["t-0"]
