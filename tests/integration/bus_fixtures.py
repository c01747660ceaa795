"""Helpers for the bus tests: a factory of Buses that cleans up after itself, raw
broker access (to put bodies on a queue that no Bus would send), a thread-safe
recorder to wait on, and builders for real messages from ``message_bus.messages``.

Nothing here replaces a part of the bus: every message crosses a real broker
(``memory://`` or RabbitMQ) between real ``Bus`` objects.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from kombu import Connection, Consumer, Producer, Queue

from message_bus import Bus
from message_bus.envelope import Message, encode
from message_bus.lifecycle import Action, PowerState
from message_bus.messages import (
    DeleteInstance,
    HostList,
    HostReport,
    HostStateChanged,
    HostView,
    InstanceAction,
    InstanceObservation,
    InstanceStateChanged,
    Resources,
    ResourceView,
)


class Buses:
    """Makes Buses on one broker and one namespace; stops them all (in parallel) and
    deletes what they declared when the test ends."""

    def __init__(self, url: str, namespace: str):
        self.url, self.namespace = url, namespace
        self.made: list[Bus] = []

    def __call__(self, sender: str, **kwargs: Any) -> Bus:
        bus = Bus(self.url, sender=sender, namespace=self.namespace, **kwargs)
        self.made.append(bus)
        return bus

    # --- raw broker access -------------------------------------------------------------

    def publish_raw(self, target: str, body: Any, **properties: Any) -> None:
        """Put ``body`` on ``target``'s queue as it is, the way a buggy or foreign
        sender would: straight through the rpc exchange with a kombu Producer."""
        probe = Bus(self.url, sender="raw", namespace=self.namespace)
        properties.setdefault("serializer", "json")
        with Connection(self.url) as conn:
            Producer(conn).publish(
                body, exchange=probe.rpc_exchange, routing_key=target,
                declare=[probe.rpc_exchange, probe.service_queue(target)], **properties,
            )

    def queue_depth(self, name: str) -> int:
        with Connection(self.url) as conn:
            return conn.default_channel.queue_declare(queue=name, passive=True).message_count

    def reply_catcher(self) -> ReplyCatcher:
        return ReplyCatcher(self.url, Bus(self.url, sender="raw", namespace=self.namespace))

    # --- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        stoppers = [threading.Thread(target=bus.stop) for bus in self.made]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(40)
        durable = {service.queue.name for bus in self.made for service in bus._services
                   if service.queue.durable}
        probe = Bus(self.url, sender="cleanup", namespace=self.namespace)
        with Connection(self.url) as conn:
            channel = conn.default_channel
            for name in sorted(durable):
                channel.queue_delete(name)
            for exchange in (probe.rpc_exchange, probe.reply_exchange, probe.event_exchange):
                with contextlib.suppress(KeyError):  # memory:// knows only declared ones
                    channel.exchange_delete(exchange.name)


class ReplyCatcher:
    """A queue bound to the namespace's reply exchange, for raw call requests."""

    def __init__(self, url: str, bus: Bus):
        self.name = f"{bus.namespace}.reply.raw-test"
        self._conn = Connection(url, transport_options={"polling_interval": 0.005})
        self._queue = Queue(self.name, exchange=bus.reply_exchange, routing_key=self.name,
                            durable=False, auto_delete=True)
        self._got: list[tuple[Any, dict[str, Any]]] = []
        self._consumer = Consumer(self._conn.channel(), queues=[self._queue], accept=["json"],
                                  callbacks=[self._on_reply])
        self._consumer.consume()

    def _on_reply(self, body: Any, message: Any) -> None:
        message.ack()
        self._got.append((body, dict(message.properties)))

    def wait(self, timeout: float) -> tuple[Any, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not self._got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply on {self.name} within {timeout} s")
            with contextlib.suppress(TimeoutError):
                self._conn.drain_events(timeout=left)
        return self._got.pop(0)

    def close(self) -> None:
        try:
            self._consumer.cancel()
        finally:
            self._conn.release()


class Recorder:
    """Thread-safe list of what handlers saw, with waits instead of sleeps."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    @property
    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def wait_until(self, predicate: Callable[[list[Any]], bool], what: str,
                   timeout: float = 3.0) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self._items), timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"got {self._items!r}")
            return list(self._items)

    def wait_for_count(self, n: int, timeout: float = 3.0) -> list[Any]:
        return self.wait_until(lambda items: len(items) >= n, f"{n} items", timeout)

    def wait_for_item(self, item: Any, timeout: float = 3.0) -> list[Any]:
        return self.wait_until(lambda items: item in items, repr(item), timeout)


# --- real messages -----------------------------------------------------------------------


def delete(instance_id: str = "i-1", task_id: str = "t-1") -> DeleteInstance:
    return DeleteInstance(instance_id=instance_id, task_id=task_id)


def action(instance_id: str, task_id: str, act: Action = Action.START) -> InstanceAction:
    return InstanceAction(instance_id=instance_id, action=act, task_id=task_id)


def host_report(boot_id: str, host: str = "host1") -> HostReport:
    return HostReport(
        host=host, group="g1", boot_id=boot_id, hypervisor_type="test",
        capacity=Resources(vcpus=8, memory_mb=16384, disk_gb=100),
        reserved=Resources(vcpus=0, memory_mb=0, disk_gb=0), domains=[],
        observed_at=time.time(),
    )


def state_changed(instance_id: str, status: str = "ACTIVE") -> InstanceStateChanged:
    return InstanceStateChanged(instance_id=instance_id, project_id="alpha", status=status,
                                vm_state="active", task_state=None, power_state="running",
                                host="host1", fault=None)


def host_changed(host: str, state: str = "up") -> HostStateChanged:
    return HostStateChanged(host=host, group="g1", state=state, reason="")


def host_list(group: str = "g1") -> HostList:
    def view(total: int, used: int) -> ResourceView:
        return ResourceView(total=total, reserved=0, allocation_ratio=1.0, capacity=total,
                            used=used, free=total - used)

    return HostList(group=group, hosts=[HostView(
        name="host1", group=group, state="up", enabled=True, hypervisor_type="test",
        vcpus=view(8, 2), memory_mb=view(16384, 2048), disk_gb=view(100, 10), instances=1,
        last_seen_at=1.7e9, unknown_domains=["stray"],
    )])


def observation(instance_id: str, host: str | None = "host1") -> InstanceObservation:
    return InstanceObservation(instance_id=instance_id, host=host,
                               power_state=PowerState.RUNNING)


def envelope(message: Message, **overrides: Any) -> dict[str, Any]:
    """A correct envelope for ``message``, with some of its fields replaced."""
    return {**encode(message, request_id="req-raw", sender="raw"), **overrides}

