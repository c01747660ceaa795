"""memory:// without polling: a consumer sleeps until a message is put on one of its
queues, and delivering one message costs the same whatever the number of queues.

kombu's memory transport polls: ``drain_events`` tries every channel, each channel
tries each of its queues with ``Queue.get(block=False)``, and when all are empty it
sleeps ``polling_interval``. Every hop then costs up to that interval (a boot crosses
~5 hops: 2.2 ms per call round trip at 2 ms), and idle CPU grows with the number of
consumed queues: an all-in-one cloud serves one queue per simulated host and idled at
24-27 % of a core with 100 hosts, so 1,000 hosts would saturate this machine.

Here every queue announces its puts to the transports consuming it; a transport
keeps the names of its queues that may hold a message, oldest first, and waits on a
condition when there are none. The queues stay in kombu's process-wide table, so
plain ``memory://`` connections (tests put raw bodies through them) and this
transport see the same queues, exchanges and bindings. Everything else (exchanges,
bindings, QoS bookkeeping, ack/requeue) is kombu's virtual transport, unchanged.

Lock order: a queue's own mutex, then ``_lock``; never the other way round.
"""

from __future__ import annotations

import threading
from queue import Empty, Queue
from time import monotonic
from typing import Any

from kombu.transport import memory, virtual

# Guards _listeners, _attempts and every transport's _ready/_parked/_watching; the
# transports' conditions share it, so an announcement and a wait never race.
_lock = threading.Lock()
_listeners: dict[str, set[MemoryTransport]] = {}  # queue name -> transports consuming it
_attempts = 0  # queue reads tried by drain_events, process-wide (see attempts())


class _AnnouncingQueue(Queue):
    """A kombu memory queue that wakes the transports consuming it on every put.

    ``Queue.put`` calls ``_put`` with the queue's mutex held, so a plain kombu channel
    holding a reference to this queue announces its puts too.
    """

    name: str

    def _put(self, item: Any) -> None:
        super()._put(item)
        with _lock:
            for transport in _listeners.get(self.name, ()):
                transport._mark(self.name)


def _announcing(name: str) -> _AnnouncingQueue:
    """The queue ``name`` in kombu's shared table, made to announce its puts.

    A queue first declared by a plain ``memory://`` connection is a bare ``Queue``:
    its class is switched in place, under its mutex, so a put through a reference
    taken earlier cannot slip between the switch and the caller's emptiness check.
    """
    queues: dict[str, Queue[Any]] = memory.Channel.queues
    found = queues.get(name)
    if found is None:
        fresh = _AnnouncingQueue()
        fresh.name = name
        found = queues.setdefault(name, fresh)  # atomic: two declarers get one queue
    if not isinstance(found, _AnnouncingQueue):
        with found.mutex:
            if not isinstance(found, _AnnouncingQueue):
                found.name = name
                found.__class__ = _AnnouncingQueue
    assert isinstance(found, _AnnouncingQueue)
    return found


def attempts() -> int:
    """Queue reads tried by every MemoryTransport in this process so far.

    A read per delivered message (plus one per lost race with a competing consumer)
    is the goal; kombu's polling transport tries every consumed queue in turn. Tests
    and benchmarks compare this count with the number of messages sent.
    """
    with _lock:
        return _attempts


class Channel(memory.Channel):
    """kombu's memory channel, with its queues announcing puts and its consumers,
    acks and QoS changes reported to the transport that waits for them."""

    connection: MemoryTransport | None

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        _announcing(queue)

    def _queue_for(self, queue: str) -> _AnnouncingQueue:
        return _announcing(queue)

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str,
                      **kwargs: Any) -> None:
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        assert self.connection is not None
        self.connection._watch(queue, self)

    def basic_cancel(self, consumer_tag: str) -> None:
        queue = self._tag_to_queue.get(consumer_tag)
        super().basic_cancel(consumer_tag)
        if queue is not None and self.connection is not None:
            self.connection._unwatch(queue, self)

    # A channel at its prefetch limit has its queues parked; anything that frees a
    # slot must hand them back, or their messages would wait for the next put.
    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._unpark()

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        self._unpark()

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  apply_global: bool = False) -> None:
        super().basic_qos(prefetch_size, prefetch_count, apply_global)
        self._unpark()

    def _unpark(self) -> None:
        if self.connection is not None:
            self.connection._unpark(self)

    def close(self) -> None:
        # kombu's memory channel also loops over the process-wide queue table here (a
        # no-op per queue), which raises if another thread declares a queue meanwhile.
        virtual.Channel.close(self)


class MemoryTransport(memory.Transport):
    """kombu's memory transport, with ``drain_events`` waiting on a condition for
    a queue with a message instead of polling every queue. ``polling_interval`` is
    accepted and ignored."""

    Channel = Channel

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(client, **kwargs)
        self._wake = threading.Condition(_lock)
        # Under _lock. _ready: consumed queues that may hold a message, oldest first
        # (a dict as an ordered set); _parked: such queues whose channel is at its
        # prefetch limit, until it acks; _watching: consumed queue -> its channel.
        self._ready: dict[str, None] = {}
        self._parked: dict[Channel, set[str]] = {}
        self._watching: dict[str, Channel] = {}

    # --- bookkeeping (called by channels and queues) ----------------------------------

    def _mark(self, name: str) -> None:
        """Note that ``name`` may hold a message. Caller holds _lock."""
        channel = self._watching.get(name)
        if channel is None:
            return
        parked = self._parked.get(channel)
        if parked is not None:
            parked.add(name)
        else:
            self._ready[name] = None
            self._wake.notify()

    def _watch(self, name: str, channel: Channel) -> None:
        with _lock:
            _listeners.setdefault(name, set()).add(self)
            self._watching[name] = channel
        # Registered first, checked second: a put before is seen here, one after announces.
        if _announcing(name).qsize():
            with _lock:
                self._mark(name)

    def _unwatch(self, name: str, channel: Channel) -> None:
        with _lock:
            if self._watching.get(name) is not channel:
                return
            del self._watching[name]
            listeners = _listeners.get(name)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del _listeners[name]
            self._ready.pop(name, None)
            self._parked.get(channel, set()).discard(name)

    def _unpark(self, channel: Channel) -> None:
        with _lock:
            names = self._parked.pop(channel, None)
            if names:
                self._ready.update(dict.fromkeys(names))
                self._wake.notify()

    def close_channel(self, channel: Any) -> None:
        with _lock:
            self._parked.pop(channel, None)
        super().close_channel(channel)

    # --- consuming ---------------------------------------------------------------------

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """Deliver one message, waiting at most ``timeout`` seconds for one."""
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            name, channel = self._next_ready(deadline)
            try:
                message = channel._get(name)
            except Empty:  # a competing consumer took it first
                continue
            if channel._queue_for(name).qsize():  # more left: back of the line, for fairness
                with _lock:
                    self._mark(name)
            self._deliver(message, name)
            return

    def _next_ready(self, deadline: float | None) -> tuple[str, Channel]:
        """The oldest ready queue whose channel may take a message; waits for one."""
        global _attempts
        with _lock:
            while True:
                while not self._ready:
                    left = None if deadline is None else deadline - monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError()  # what kombu raises (socket.timeout)
                    self._wake.wait(left)
                name = next(iter(self._ready))
                del self._ready[name]
                channel = self._watching.get(name)
                if channel is None:
                    continue
                # Checked under _lock: an ack either came before (room seen here) or
                # unparks after (and finds the queue parked).
                if not channel.qos.can_consume():
                    self._parked.setdefault(channel, set()).add(name)
                    continue
                _attempts += 1
                return name, channel
