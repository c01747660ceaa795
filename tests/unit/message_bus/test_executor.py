"""KeyedExecutor: one job at a time per key, in order; everything else in parallel."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest

from message_bus.executor import KeyedExecutor

WAIT = 5.0  # seconds: generous upper bounds, never reached when the executor works


@pytest.fixture
def executor() -> Iterator[KeyedExecutor]:
    ex = KeyedExecutor(max_workers=4, name="test-keyed")
    yield ex
    ex.shutdown(timeout=WAIT)


class Tracker:
    """Records job starts and ends per key and the most jobs of one key ever running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
        self.active: dict[str | None, int] = defaultdict(int)
        self.most: dict[str | None, int] = defaultdict(int)

    def job(self, key: str | None, i: int, body: Callable[[], None] = lambda: None
            ) -> Callable[[], None]:
        def run() -> None:
            with self.lock:
                self.active[key] += 1
                self.most[key] = max(self.most[key], self.active[key])
                self.log[key].append(("start", i))
            try:
                body()
            finally:
                with self.lock:
                    self.active[key] -= 1
                    self.log[key].append(("end", i))
        return run


def _serial(n: int) -> list[tuple[str, int]]:
    return [step for i in range(n) for step in (("start", i), ("end", i))]


def test_same_key_runs_in_submission_order_one_at_a_time(executor: KeyedExecutor) -> None:
    track, gate, first_started = Tracker(), threading.Event(), threading.Event()

    def hold() -> None:
        first_started.set()
        assert gate.wait(WAIT)

    executor.submit("vm-1", track.job("vm-1", 0, hold))
    assert first_started.wait(WAIT)
    for i in range(1, 20):
        executor.submit("vm-1", track.job("vm-1", i))
    # three workers are free, yet nothing else of vm-1 may start while job 0 runs
    assert not executor.wait_idle(0.1)
    assert track.log["vm-1"] == [("start", 0)]
    gate.set()
    assert executor.wait_idle(WAIT)
    assert track.log["vm-1"] == _serial(20)
    assert track.most["vm-1"] == 1


def test_order_and_exclusion_hold_per_key_under_load(executor: KeyedExecutor) -> None:
    track = Tracker()
    keys = [f"vm-{k}" for k in range(8)]
    for i in range(40):
        for key in keys:
            executor.submit(key, track.job(key, i))
    assert executor.wait_idle(WAIT)
    for key in keys:
        assert track.log[key] == _serial(40), key
        assert track.most[key] == 1, key


def test_different_keys_run_in_parallel(executor: KeyedExecutor) -> None:
    barrier = threading.Barrier(3, timeout=WAIT)
    met: list[str] = []

    def meet(key: str) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()  # breaks (and the key is missing from met) unless all 3 run at once
            met.append(key)
        return run

    for key in ("vm-1", "vm-2", "host:hv1"):
        executor.submit(key, meet(key))
    assert executor.wait_idle(WAIT)
    assert sorted(met) == ["host:hv1", "vm-1", "vm-2"]


def test_jobs_without_a_key_run_freely(executor: KeyedExecutor) -> None:
    barrier = threading.Barrier(2, timeout=WAIT)
    met: list[int] = []

    def meet(i: int) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            met.append(i)
        return run

    executor.submit(None, meet(1))
    executor.submit(None, meet(2))
    assert executor.wait_idle(WAIT)
    assert sorted(met) == [1, 2]


def test_keyless_jobs_do_not_wait_for_a_busy_key(executor: KeyedExecutor) -> None:
    gate, ran = threading.Event(), threading.Event()
    executor.submit("vm-1", lambda: gate.wait(WAIT) and None)
    executor.submit("vm-1", lambda: None)
    executor.submit(None, ran.set)
    executor.submit("vm-2", lambda: None)
    assert ran.wait(WAIT)
    gate.set()
    assert executor.wait_idle(WAIT)


def test_a_failing_job_does_not_block_the_jobs_behind_it(
    executor: KeyedExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    gate, done = threading.Event(), []

    def fail() -> None:
        assert gate.wait(WAIT)
        raise RuntimeError("spawn exploded")

    with caplog.at_level(logging.ERROR, logger="message_bus.executor"):
        executor.submit("vm-1", fail)
        executor.submit("vm-1", lambda: done.append(1))
        executor.submit("vm-1", lambda: done.append(2))
        gate.set()
        assert executor.wait_idle(WAIT)
    assert done == [1, 2]
    assert any("vm-1" in r.getMessage() and r.exc_info for r in caplog.records)
    # the key is free again: a later job runs at once instead of queueing forever
    executor.submit("vm-1", lambda: done.append(3))
    assert executor.wait_idle(WAIT)
    assert done == [1, 2, 3]


def test_a_failing_keyless_job_is_contained(executor: KeyedExecutor) -> None:
    done: list[int] = []

    def fail() -> None:
        raise ValueError("boom")

    executor.submit(None, fail)
    executor.submit(None, lambda: done.append(1))
    assert executor.wait_idle(WAIT)
    assert done == [1]


def test_a_key_is_reusable_after_its_queue_drains(executor: KeyedExecutor) -> None:
    done: list[int] = []
    for i in range(5):
        executor.submit("vm-1", lambda i=i: done.append(i))
        assert executor.wait_idle(WAIT)
    assert done == [0, 1, 2, 3, 4]


def test_wait_idle(executor: KeyedExecutor) -> None:
    assert executor.wait_idle(0)  # nothing submitted
    gate, done = threading.Event(), []
    executor.submit("vm-1", lambda: gate.wait(WAIT) and None)
    executor.submit("vm-1", lambda: done.append("queued"))
    assert executor.wait_idle(0.05) is False  # one running, one queued
    assert done == []
    gate.set()
    assert executor.wait_idle(WAIT) is True
    assert done == ["queued"]
    assert executor.wait_idle(0) is True


def test_wait_idle_from_several_threads(executor: KeyedExecutor) -> None:
    gate = threading.Event()
    executor.submit("vm-1", lambda: gate.wait(WAIT) and None)
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(executor.wait_idle(WAIT)))
               for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    gate.set()
    for waiter in waiters:
        waiter.join(WAIT)
    assert results == [True, True, True]


def test_shutdown_lets_running_and_queued_jobs_finish() -> None:
    ex = KeyedExecutor(max_workers=2, name="test-shutdown")
    started, gate, done = threading.Event(), threading.Event(), []

    def first() -> None:
        started.set()
        assert gate.wait(WAIT)
        done.append(1)

    ex.submit("vm-1", first)
    ex.submit("vm-1", lambda: done.append(2))
    assert started.wait(WAIT)
    threading.Timer(0.05, gate.set).start()
    ex.shutdown(timeout=WAIT)
    assert done == [1, 2]


def test_a_single_worker_still_serves_every_key() -> None:
    ex = KeyedExecutor(max_workers=1, name="test-one")
    track = Tracker()
    try:
        for i in range(10):
            for key in ("a", "b", None):
                ex.submit(key, track.job(key, i))
        assert ex.wait_idle(WAIT)
    finally:
        ex.shutdown(timeout=WAIT)
    assert track.log["a"] == _serial(10)
    assert track.log["b"] == _serial(10)
    assert len(track.log[None]) == 20
