from __future__ import annotations

from typing import Any

import pytest

from ironbark.cli.client import ApiError
from ironbark.cli.wait import WaitError, is_settled, wait_for_delete, wait_for_server

from .samples import SERVER_ID, server

GONE = object()


class Script:
    """Stand-in for get_server that answers a scripted sequence of states.

    The last state repeats. A fake clock advances only when the loop sleeps, so the
    tests take no real time and see exactly how long the loop would have waited.
    """

    def __init__(self, *states: Any) -> None:
        self.states = list(states)
        self.polls = 0
        self.now = 1000.0
        self.sleeps: list[float] = []

    def get_server(self, server_id: str) -> dict[str, Any]:
        assert server_id == SERVER_ID
        state = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        if state is GONE:
            raise ApiError(404, "server not found")
        return state

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def wait(self, first: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        return wait_for_server(self, first, timeout, sleep=self.sleep, clock=self.clock)

    def wait_delete(self, first: dict[str, Any], timeout: float = 600) -> None:
        wait_for_delete(self, first, timeout, sleep=self.sleep, clock=self.clock)


BUILDING = server(status="BUILD", task_state="spawning", host=None)
ACTIVE = server()


def test_settled_means_no_task_and_not_build() -> None:
    assert is_settled(ACTIVE)
    assert not is_settled(server(task_state="powering-off"))
    assert not is_settled(server(status="BUILD", task_state=None))
    assert is_settled(server(status="ERROR"))


def test_polls_every_half_second_until_settled() -> None:
    script = Script(BUILDING, BUILDING, server(status="BUILD", task_state=None), ACTIVE)
    assert script.wait(BUILDING) is ACTIVE
    assert script.polls == 4
    assert script.sleeps == [0.5, 0.5, 0.5]


def test_first_poll_is_immediate_and_202_body_is_not_trusted() -> None:
    script = Script(ACTIVE)
    assert script.wait(server(task_state=None)) is ACTIVE
    assert script.polls == 1 and script.sleeps == []


def test_error_reports_the_fault() -> None:
    failed = server(status="ERROR", fault={"message": "No valid host was found",
                                           "at": "2026-11-22T10:00:01Z"})
    script = Script(BUILDING, failed)
    with pytest.raises(WaitError, match="went to ERROR: No valid host was found"):
        script.wait(BUILDING)


def test_error_still_in_flight_keeps_waiting() -> None:
    script = Script(server(status="ERROR", task_state="rebooting_hard"), ACTIVE)
    assert script.wait(BUILDING) is ACTIVE


def test_timeout_names_server_status_and_timeout() -> None:
    script = Script(BUILDING)
    with pytest.raises(WaitError) as info:
        script.wait(BUILDING, timeout=2)
    message = str(info.value)
    assert "timed out after 2 s" in message
    assert f"'web1' ({SERVER_ID})" in message
    assert "still BUILD (task spawning)" in message
    assert sum(script.sleeps) == pytest.approx(2)


def test_timeout_never_oversleeps() -> None:
    script = Script(BUILDING)
    with pytest.raises(WaitError):
        script.wait(BUILDING, timeout=0.7)
    assert script.sleeps == [0.5, pytest.approx(0.2)]


def test_delete_waits_for_404() -> None:
    deleting = server(task_state="deleting")
    script = Script(deleting, deleting, GONE)
    script.wait_delete(deleting)
    assert script.polls == 3


def test_delete_accepts_deleted_status() -> None:
    Script(server(status="DELETED")).wait_delete(server(task_state="deleting"))


def test_delete_that_ends_in_error_fails() -> None:
    deleting = server(task_state="deleting")
    failed = server(status="ERROR", fault={"message": "disk busy", "at": "x"})
    with pytest.raises(WaitError, match="failed to delete: disk busy"):
        Script(deleting, failed).wait_delete(deleting)


def test_deleting_an_errored_server_is_not_mistaken_for_failure() -> None:
    old = server(status="ERROR", fault={"message": "No valid host", "at": "x"})
    script = Script(old, old, GONE)
    script.wait_delete(old)
    assert script.polls == 3


def test_delete_timeout() -> None:
    deleting = server(task_state="deleting")
    with pytest.raises(WaitError, match=r"timed out after 1 s .* still ACTIVE \(task deleting\)"):
        Script(deleting).wait_delete(deleting, timeout=1)


def test_other_api_errors_propagate() -> None:
    class Down(Script):
        def get_server(self, server_id: str) -> dict[str, Any]:
            raise ApiError(0, "cannot reach")

    with pytest.raises(ApiError, match="cannot reach"):
        Down().wait_delete(server(task_state="deleting"))
