"""The state machine through the API: every legal action, a sample of illegal ones.

Each legal transition is driven from its source state to its target; each illegal
one answers 409 naming the current status and changes nothing.
"""

from __future__ import annotations

import pytest

from ironbark.allinone import AllInOne
from message_bus.lifecycle import TASKS, Action, VmState
from tests.helpers import Api

# How to bring an ACTIVE server to each resting state, through the API.
_REACH = {
    VmState.ACTIVE: [],
    VmState.PAUSED: ["pause"],
    VmState.SUSPENDED: ["suspend"],
    VmState.STOPPED: ["stop"],
}
_STATUS = {VmState.ACTIVE: "ACTIVE", VmState.PAUSED: "PAUSED",
           VmState.SUSPENDED: "SUSPENDED", VmState.STOPPED: "SHUTOFF"}
_API_ACTION = {Action.START: ("start", {}), Action.STOP: ("stop", {}),
               Action.REBOOT: ("reboot", {"type": "soft"}),
               Action.REBOOT_HARD: ("reboot", {"type": "hard"}), Action.PAUSE: ("pause", {}),
               Action.UNPAUSE: ("unpause", {}), Action.SUSPEND: ("suspend", {}),
               Action.RESUME: ("resume", {})}

LEGAL = [(task.action, source) for task in TASKS if task.action in _API_ACTION
         for source in sorted(task.allowed_from) if source in _REACH]
ILLEGAL = [(task.action, source) for task in TASKS if task.action in _API_ACTION
           for source in _REACH if source not in task.allowed_from]


def _server_in(api: Api, state: VmState) -> dict:
    server = api.boot()
    for step in _REACH[state]:
        assert api.act(server["id"], step).status == 202
        server = api.wait(server["id"])
    assert server["status"] == _STATUS[state]
    return server


@pytest.mark.parametrize(("action", "source"), LEGAL,
                         ids=[f"{a.value}-from-{s.value}" for a, s in LEGAL])
def test_every_legal_transition(admin: Api, action: Action, source: VmState) -> None:
    server = _server_in(admin, source)
    name, extra = _API_ACTION[action]
    r = admin.act(server["id"], name, **extra)
    assert r.status == 202, r
    assert r.body["server"]["task_state"] is not None
    done = admin.wait(server["id"])
    target = next(t.target for t in TASKS if t.action is action)
    assert done["status"] == _STATUS[target], done
    assert done["fault"] is None


@pytest.mark.parametrize(("action", "source"), ILLEGAL,
                         ids=[f"{a.value}-from-{s.value}" for a, s in ILLEGAL])
def test_illegal_actions_answer_409_and_change_nothing(admin: Api, action: Action,
                                                        source: VmState) -> None:
    server = _server_in(admin, source)
    name, extra = _API_ACTION[action]
    r = admin.act(server["id"], name, **extra)
    assert r.status == 409, r
    assert _STATUS[source] in r.body["error"]["message"]
    after = admin.server(server["id"])
    assert (after["status"], after["task_state"], after["power_state"]) == (
        server["status"], server["task_state"], server["power_state"])


def test_delete_is_legal_from_every_state_and_twice_is_refused(admin: Api) -> None:
    for state in _REACH:
        server = _server_in(admin, state)
        assert admin.delete(f"/v1/servers/{server['id']}").status == 202
        second = admin.delete(f"/v1/servers/{server['id']}")
        assert second.status in (404, 409)  # 409 while deleting, 404 once gone
        admin.wait_gone(server["id"])


def test_a_second_action_while_one_is_in_flight_is_refused(cloud: AllInOne,
                                                          admin: Api) -> None:
    server = admin.boot()
    cloud.bus.stop()  # nothing is consumed any more: the next task stays in flight
    assert admin.act(server["id"], "stop").status == 202
    r = admin.act(server["id"], "pause")
    assert r.status == 409
    assert "powering-off" in r.body["error"]["message"]
    assert "ACTIVE" in r.body["error"]["message"]
    assert admin.server(server["id"])["task_state"] == "powering-off"
    # Delete overrides a task in flight (as in Nova); a second delete does not.
    assert admin.delete(f"/v1/servers/{server['id']}").status == 202
    assert admin.server(server["id"])["task_state"] == "deleting"
    assert admin.delete(f"/v1/servers/{server['id']}").status == 409


def test_a_building_server_refuses_actions_but_can_be_deleted(cloud: AllInOne,
                                                             admin: Api) -> None:
    cloud.bus.stop()
    server = admin.create()
    assert (server["status"], server["task_state"]) == ("BUILD", "scheduling")
    for action in ("stop", "start", "pause", "reboot"):
        r = admin.act(server["id"], action)
        assert r.status == 409 and "BUILD" in r.body["error"]["message"], r
    r = admin.delete(f"/v1/servers/{server['id']}")
    assert r.status == 202 and r.body["server"]["task_state"] == "deleting"
