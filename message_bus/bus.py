"""kombu RPC: ``call`` (request/reply, always with a timeout), ``cast`` (durable,
fire-and-forget) and ``publish`` (events on a topic exchange), plus serving.

One ``Bus`` is one process's link to the broker. It owns three connections, never
shared between threads: a producer (guarded by a lock), a reply listener (matches
replies to waiting calls by correlation id) and a consumer (receives requests and
events for every service this process serves). Handlers run on per-service
``KeyedExecutor`` pools; the consumer thread alone acks, because a kombu channel
must not be used from two threads.

Names, under a namespace (``ironbark`` by default, one per test in the tests)::

    <ns>.rpc      direct exchange; queue <ns>.<target> bound with key <target>
    <ns>.reply    direct exchange; one auto-delete reply queue per Bus
    <ns>.events   topic exchange; events routed by message name
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue

from message_bus import context
from message_bus.envelope import Envelope, Message, decode, encode
from message_bus.errors import CallTimeout, MessageRejected, RemoteError
from message_bus.executor import KeyedExecutor
from message_bus.idempotency import IdempotencyStore
from message_bus.memory_transport import MemoryTransport

log = logging.getLogger(__name__)

Handler = Callable[[Message], Message | None]
EventCallback = Callable[[Message], None]

_TICK = 0.05  # how long the consumer waits for a message before flushing acks


@dataclass
class _Service:
    """A queue this process consumes, with its handlers and its own worker pool."""

    target: str
    queue: Queue
    handlers: dict[type[Message], Handler] | None  # None: an event subscription
    callback: EventCallback | None
    executor: KeyedExecutor
    idempotency: IdempotencyStore | None
    transient: tuple[type[BaseException], ...]
    prefetch: int
    consumer: Consumer | None = field(default=None, repr=False)


class Bus:
    def __init__(
        self,
        url: str,
        *,
        sender: str,
        namespace: str = "ironbark",
        polling_interval: float = 0.005,
        connect_timeout: float = 10.0,
    ):
        self.url, self.sender, self.namespace = url, sender, namespace
        self._transport_options = {"polling_interval": polling_interval}
        self._connect_timeout = connect_timeout
        self.rpc_exchange = Exchange(f"{namespace}.rpc", type="direct", durable=True)
        self.reply_exchange = Exchange(f"{namespace}.reply", type="direct", durable=False)
        self.event_exchange = Exchange(f"{namespace}.events", type="topic", durable=True)

        self._producer_lock = threading.Lock()
        self._producer_conn: Connection | None = None
        self._producer: Producer | None = None

        self._reply_queue = Queue(
            f"{namespace}.reply.{uuid.uuid4().hex}", exchange=self.reply_exchange,
            routing_key=None, durable=False, auto_delete=True,
        )
        self._reply_queue.routing_key = self._reply_queue.name
        self._waiting: dict[str, Future[dict[str, Any]]] = {}
        self._waiting_lock = threading.Lock()
        self._reply_ready = threading.Event()
        self._reply_started = False

        # Guarded by _consumed: every service, and those not yet consumed on the broker.
        self._services: list[_Service] = []
        self._new_services: list[_Service] = []
        self._consumed = threading.Condition()
        self._settle: queue.SimpleQueue[tuple[Any, str]] = queue.SimpleQueue()
        self._consumer_ready = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- connections -------------------------------------------------------------------

    def connection(self) -> Connection:
        # memory:// wakes on messages instead of polling (see message_bus/memory_transport.py)
        transport = MemoryTransport if self.url.startswith("memory://") else None
        return Connection(
            self.url, transport=transport, transport_options=dict(self._transport_options),
            connect_timeout=self._connect_timeout,
        )

    def service_queue(self, target: str) -> Queue:
        return Queue(
            f"{self.namespace}.{target}", exchange=self.rpc_exchange, routing_key=target,
            durable=True,
        )

    # --- sending -----------------------------------------------------------------------

    def cast(self, target: str, message: Message, *, ttl: float | None = None) -> None:
        """Send a message to ``target`` without waiting. The queue is durable and is
        declared here, so the message waits for a receiver that is not up yet;
        ``ttl`` drops it if it has waited longer than that (for heartbeats)."""
        self._check_kind(message, "cast")
        body = encode(message, request_id=context.current_request_id(), sender=self.sender,
                      ttl=ttl)
        self._publish(body, self.rpc_exchange, target, declare=self.service_queue(target),
                      persistent=True, expiration=ttl)

    def call(self, target: str, message: Message, *, timeout: float) -> Message:
        """Ask ``target`` and wait at most ``timeout`` seconds for its reply.

        Raises CallTimeout (naming the target) when nobody answers in time, and
        RemoteError when the handler failed. The request expires with the timeout,
        so a receiver that comes up later does not act on a call nobody waits for.
        """
        self._check_kind(message, "call")
        self._start_reply_listener()
        body = encode(message, request_id=context.current_request_id(), sender=self.sender,
                      ttl=timeout)
        correlation_id = body["id"]
        future: Future[dict[str, Any]] = Future()
        with self._waiting_lock:
            self._waiting[correlation_id] = future
        try:
            self._publish(body, self.rpc_exchange, target, persistent=False, expiration=timeout,
                          reply_to=self._reply_queue.name, correlation_id=correlation_id)
            try:
                reply = future.result(timeout=timeout)
            except TimeoutError:
                raise CallTimeout(target, message.NAME, timeout) from None
        finally:
            with self._waiting_lock:
                self._waiting.pop(correlation_id, None)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise RemoteError(target, message.NAME, err.get("type", "Error"),
                              err.get("message", ""))
        assert message.REPLY is not None
        _, answer = decode(reply["body"])
        if not isinstance(answer, message.REPLY):
            raise RemoteError(target, message.NAME, "BadReply",
                              f"expected {message.REPLY.NAME}, got {answer.NAME}")
        return answer

    def publish(self, message: Message) -> None:
        """Publish an event on the topic exchange, routed by the message's name."""
        self._check_kind(message, "event")
        body = encode(message, request_id=context.current_request_id(), sender=self.sender)
        self._publish(body, self.event_exchange, message.NAME, persistent=False)

    @staticmethod
    def _check_kind(message: Message, kind: str) -> None:
        if kind != message.KIND:
            raise TypeError(f"'{message.NAME}' is a {message.KIND}, not a {kind}")

    def _publish(self, body: dict[str, Any], exchange: Exchange, routing_key: str, *,
                 persistent: bool, declare: Queue | None = None,
                 expiration: float | None = None, **properties: Any) -> None:
        with self._producer_lock:
            if self._producer is None:
                self._producer_conn = self.connection()
                self._producer = Producer(self._producer_conn)
            declare_list = [exchange] + ([declare] if declare is not None else [])
            self._producer.publish(
                body, exchange=exchange, routing_key=routing_key, serializer="json",
                delivery_mode=2 if persistent else 1, declare=declare_list,
                expiration=expiration, retry=True,
                retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5,
                              "interval_max": 2.0},
                **properties,
            )

    # --- replies -----------------------------------------------------------------------

    def _start_reply_listener(self) -> None:
        if self._reply_ready.is_set():
            return
        with self._waiting_lock:
            if not self._reply_started:
                self._reply_started = True
                self._spawn(self._reply_loop, f"{self.sender}-replies")
        if not self._reply_ready.wait(self._connect_timeout):
            raise CallTimeout("(reply queue)", "connect", self._connect_timeout)

    def _reply_loop(self) -> None:
        def on_reply(body: Any, message: Any) -> None:
            message.ack()
            correlation_id = message.properties.get("correlation_id")
            with self._waiting_lock:
                future = self._waiting.get(correlation_id)
            if future is not None and not future.done():
                future.set_result(body)

        def run(conn: Connection) -> None:
            with Consumer(conn, queues=[self._reply_queue], callbacks=[on_reply],
                          accept=["json"]):
                self._reply_ready.set()
                while not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.5)

        self._run_connected(run, "reply listener")

    # --- serving -----------------------------------------------------------------------

    def serve(
        self,
        target: str,
        handlers: dict[type[Message], Handler],
        *,
        workers: int = 8,
        idempotency: IdempotencyStore | None = None,
        transient: tuple[type[BaseException], ...] = (),
        prefetch: int = 64,
    ) -> None:
        """Consume ``target``'s queue and dispatch each message to its handler.

        A handler gets the message and returns a reply (for a call) or None. An
        exception of a type in ``transient`` (say, the database is restarting)
        requeues the message; any other is logged (and, for a call, returned to the
        caller); a cast is then dropped rather than retried forever.
        """
        executor = KeyedExecutor(workers, name=f"{self.sender}-{target}")
        self._add(_Service(target, self.service_queue(target), dict(handlers), None, executor,
                           idempotency, transient, prefetch))

    def subscribe(self, binding_key: str, callback: EventCallback, *,
                  queue_name: str | None = None) -> None:
        """Receive events whose name matches ``binding_key`` (``*``/``#`` wildcards).

        With ``queue_name`` the queue is durable and shared by every subscriber that
        names it (each event reaches one of them); without, it is private to this Bus.
        """
        name = queue_name or f"{self.namespace}.events.{uuid.uuid4().hex}"
        q = Queue(name, exchange=self.event_exchange, routing_key=binding_key,
                  durable=queue_name is not None, auto_delete=queue_name is None)
        executor = KeyedExecutor(1, name=f"{self.sender}-events")
        self._add(_Service(f"events:{binding_key}", q, None, callback, executor, None, (), 64))

    def _add(self, service: _Service) -> None:
        with self._consumed:
            self._services.append(service)
            self._new_services.append(service)

    def start(self, timeout: float = 30.0) -> None:
        """Start consuming; returns once every queue served so far is being consumed."""
        self._spawn(self._consume_loop, f"{self.sender}-consumer")
        if not self._consumer_ready.wait(timeout):
            raise CallTimeout(self.url, "connect", timeout)

    def wait_until_consuming(self, timeout: float = 10.0) -> None:
        """Block until services added after start() are consumed too (their queues
        declared, bound and consumed on the broker, so nothing sent now is lost)."""
        with self._consumed:
            if not self._consumed.wait_for(lambda: not self._new_services, timeout):
                raise TimeoutError("the consumer did not pick up the new services in time")

    def _consume_loop(self) -> None:
        def run(conn: Connection) -> None:
            # (Re)consume every service on this connection; new ones join as they come.
            with self._consumed:
                current, fresh = list(self._services), list(self._new_services)
            for service in current:
                self._consume(conn, service)
            self._mark_consumed(fresh)
            self._consumer_ready.set()
            while not self._stopping.is_set():
                with self._consumed:
                    fresh = list(self._new_services)
                for service in fresh:
                    self._consume(conn, service)
                self._mark_consumed(fresh)
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=_TICK)
                self._settle_pending()
            self._drain_and_close()

        self._run_connected(run, "consumer")

    def _mark_consumed(self, services: list[_Service]) -> None:
        if not services:
            return
        with self._consumed:
            done = {id(s) for s in services}  # identity: two services may compare equal
            self._new_services = [s for s in self._new_services if id(s) not in done]
            self._consumed.notify_all()

    def _consume(self, conn: Connection, service: _Service) -> None:
        def undecodable(raw: Any, exc: Exception) -> None:
            # Not JSON, or a content type we do not accept: drop it like any other
            # rejected message (kombu would otherwise raise out of drain_events).
            log.error("%s: dropped a message whose body cannot be decoded (%s, content "
                      "type %s)", service.target, exc, getattr(raw, "content_type", "?"))
            raw.ack()

        channel = conn.channel()
        consumer = Consumer(channel, queues=[service.queue], accept=["json"],
                            callbacks=[lambda body, msg, s=service: self._on_message(s, body, msg)],
                            on_decode_error=undecodable)
        consumer.qos(prefetch_count=service.prefetch)
        consumer.consume()
        service.consumer = consumer

    def _drain_and_close(self) -> None:
        for service in self._services:
            if service.consumer is not None:
                try:
                    service.consumer.cancel()
                except Exception:  # the connection may already be gone
                    log.debug("cancel failed for %s", service.target, exc_info=True)
        for service in self._services:
            service.executor.wait_idle(30.0)
        self._settle_pending()

    def _settle_pending(self) -> None:
        while not self._settle.empty():
            message, verdict = self._settle.get()
            try:
                message.requeue() if verdict == "requeue" else message.ack()
            except Exception:  # its channel died: the broker redelivers it
                log.debug("could not %s a message", verdict, exc_info=True)

    def _on_message(self, service: _Service, body: Any, raw: Any) -> None:
        """Runs on the consumer thread: decode, then hand off to the service's pool."""
        try:
            envelope, message = decode(body)
        except MessageRejected as exc:
            log.error("%s: %s (from %s)", service.target, exc,
                      body.get("sender", "?") if isinstance(body, dict) else "?")
            self._reply_error(raw, exc)
            raw.ack()
            return
        if service.handlers is not None and type(message) not in service.handlers:
            exc = MessageRejected(message.NAME, f"'{service.target}' does not handle it")
            log.error("%s", exc)
            self._reply_error(raw, exc)
            raw.ack()
            return
        if envelope.expired():
            log.warning("%s: dropped '%s' that expired %.1f s ago (request %s)", service.target,
                        message.NAME, time.time() - (envelope.expires_at or 0),
                        envelope.request_id)
            raw.ack()
            return
        service.executor.submit(message.ordering_key(),
                                lambda: self._handle(service, envelope, message, raw))

    def _handle(self, service: _Service, envelope: Envelope, message: Message, raw: Any) -> None:
        """Runs on a worker thread, with the sender's request id in the log context."""
        instance_id = getattr(message, "instance_id", None)
        verdict = "ack"
        with context.bound(envelope.request_id, instance_id, service.target):
            key = envelope.idempotency_key
            key = f"{service.target}:{key}" if key else None
            try:
                if key and service.idempotency and service.idempotency.seen(key):
                    log.info("'%s' %s was already handled; redelivery ignored", message.NAME,
                             envelope.idempotency_key)
                    return
                if service.callback is not None:
                    service.callback(message)
                    return
                assert service.handlers is not None
                reply = service.handlers[type(message)](message)
                if key and service.idempotency:
                    service.idempotency.record(key)
                self._reply(raw, {"ok": True, "body": self._encode_reply(reply, message)})
            except service.transient as exc:
                verdict = "requeue"
                log.warning("'%s' hit a transient failure, requeued: %s", message.NAME, exc)
                time.sleep(0.5)
            except Exception as exc:
                log.exception("'%s' failed in %s", message.NAME, service.target)
                self._reply(raw, {"ok": False,
                                  "error": {"type": type(exc).__name__, "message": str(exc)}})
            finally:
                self._settle.put((raw, verdict))

    def _encode_reply(self, reply: Message | None, request: Message) -> dict[str, Any] | None:
        if request.KIND != "call":
            return None
        if request.REPLY is None or not isinstance(reply, request.REPLY):
            raise TypeError(f"handler of '{request.NAME}' must return a {request.REPLY}")
        return encode(reply, request_id=context.current_request_id(), sender=self.sender)

    def _reply(self, raw: Any, payload: dict[str, Any]) -> None:
        reply_to = raw.properties.get("reply_to")
        if not reply_to:
            return
        self._publish(payload, self.reply_exchange, reply_to, persistent=False,
                      correlation_id=raw.properties.get("correlation_id"))

    def _reply_error(self, raw: Any, exc: MessageRejected) -> None:
        try:
            self._reply(raw, {"ok": False, "error": {"type": "MessageRejected",
                                                     "message": str(exc)}})
        except Exception:
            log.exception("could not return a rejection to its caller")

    # --- threads and reconnection --------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_connected(self, run: Callable[[Connection], None], what: str) -> None:
        """Run ``run`` on a fresh connection, reconnecting with backoff until stopped."""
        delay = 0.2
        while not self._stopping.is_set():
            conn = self.connection()
            try:
                conn.ensure_connection(max_retries=1)
                delay = 0.2
                run(conn)
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.warning("bus %s lost its connection (%s); reconnecting in %.1f s", what,
                            exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                try:
                    conn.release()
                except Exception:
                    log.debug("release failed", exc_info=True)

    def stop(self) -> None:
        """Stop consuming, let handlers in flight finish, and close every connection."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=35.0)
        for service in self._services:
            service.executor.shutdown(timeout=1.0)
        with self._producer_lock:
            if self._producer_conn is not None:
                self._producer_conn.release()
                self._producer_conn = self._producer = None
