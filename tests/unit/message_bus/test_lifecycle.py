"""The instance state machine: every action, event and reconciliation in the table."""

from __future__ import annotations

import itertools

import pytest

from message_bus.lifecycle import (
    SPAWN,
    TASK_BY_ACTION,
    TASK_BY_STATE,
    TASKS,
    Action,
    Event,
    InvalidAction,
    Outcome,
    PowerState,
    Task,
    TaskState,
    VmState,
    apply_event,
    begin,
    is_stable,
    reconcile,
    status,
    vm_state_for_power,
)

LIVE = [v for v in VmState if v is not VmState.DELETED]
# The tasks a host ends with ACTION_DONE / ACTION_FAILED: power actions and the snapshot.
POWER_TASKS = [t for t in TASKS if t.action not in (Action.CREATE, Action.DELETE)]
ALL_TASKS = (*TASKS, SPAWN)
SNAPSHOT = TASK_BY_ACTION[Action.SNAPSHOT]

EXPECTED_STATUS = {
    VmState.BUILDING: "BUILD",
    VmState.ACTIVE: "ACTIVE",
    VmState.PAUSED: "PAUSED",
    VmState.SUSPENDED: "SUSPENDED",
    VmState.STOPPED: "SHUTOFF",
    VmState.ERROR: "ERROR",
    VmState.DELETED: "DELETED",
}


def _ids(task: Task) -> str:
    return f"{task.action.value}-{task.task_state.value}"


# --- the table itself ------------------------------------------------------------------


def test_every_task_state_belongs_to_exactly_one_task() -> None:
    owners = {ts: [t for t in ALL_TASKS if t.task_state is ts] for ts in TaskState}
    assert {ts: len(tasks) for ts, tasks in owners.items()} == {ts: 1 for ts in TaskState}
    assert set(TASK_BY_STATE) == set(TaskState)
    for ts, task in TASK_BY_STATE.items():
        assert task.task_state is ts


def test_every_action_has_exactly_one_task() -> None:
    assert sorted(TASK_BY_ACTION) == sorted(Action)
    assert len(TASKS) == len(Action)
    for action, task in TASK_BY_ACTION.items():
        assert task.action is action


def test_the_table_is_sane() -> None:
    for task in ALL_TASKS:
        assert task.deadline > 0, task
        assert VmState.DELETED not in task.allowed_from, task
        # a task keeps the vm_state exactly when no power state can show it is done
        assert (task.target is None) is (task.done_when is None), task
        if task.task_state is not TaskState.DELETING and task.done_when is not None:
            # a task that succeeded is seen on the host as the state it lands in
            assert vm_state_for_power(task.done_when) is task.target, task
    assert TASK_BY_ACTION[Action.DELETE].allowed_from == frozenset(LIVE)
    assert TASK_BY_ACTION[Action.DELETE].done_when is PowerState.MISSING
    assert SPAWN.allowed_from == frozenset({VmState.BUILDING})


# --- begin -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_begin_accepts_every_allowed_state(task: Task) -> None:
    for vm_state in task.allowed_from:
        assert begin(task.action, vm_state, None, has_host=True) is task
        assert begin(task.action, vm_state.value, None, has_host=True) is task


@pytest.mark.parametrize("task", [t for t in TASKS if t.action is not Action.DELETE], ids=_ids)
def test_begin_refuses_every_other_state_naming_the_status(task: Task) -> None:
    refused = [v for v in VmState if v not in task.allowed_from]
    assert refused
    for vm_state in refused:
        for has_host in (True, False):
            with pytest.raises(InvalidAction) as info:
                begin(task.action, vm_state, None, has_host=has_host)
            exc = info.value
            assert EXPECTED_STATUS[vm_state] in str(exc), (vm_state, str(exc))
            assert task.action.value in str(exc)
            assert exc.status == EXPECTED_STATUS[vm_state]
            assert (exc.action, exc.vm_state, exc.task_state) == (task.action, vm_state, None)


def test_pause_of_a_stopped_instance_names_shutoff() -> None:
    with pytest.raises(InvalidAction, match="SHUTOFF"):
        begin(Action.PAUSE, VmState.STOPPED, None, has_host=True)


def test_create_is_never_begun_through_the_table() -> None:
    for vm_state, task_state in itertools.product(VmState, [None, *TaskState]):
        with pytest.raises(InvalidAction):
            begin(Action.CREATE, vm_state, task_state, has_host=True)


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.DELETE])
def test_begin_refuses_any_action_while_a_task_is_in_flight(action: Action) -> None:
    for vm_state, task_state in itertools.product(VmState, TaskState):
        with pytest.raises(InvalidAction) as info:
            begin(action, vm_state, task_state, has_host=True)
        exc = info.value
        shown = status(vm_state, task_state)
        if vm_state in TASK_BY_ACTION[action].allowed_from:
            # refused only because of the task in flight: the message says so
            assert task_state.value in str(exc), str(exc)
        assert shown in str(exc), (vm_state, task_state, str(exc))
        assert exc.status == shown
        assert exc.task_state is task_state


def test_in_flight_refusal_names_the_task_and_status() -> None:
    with pytest.raises(InvalidAction) as info:
        begin(Action.STOP, VmState.ACTIVE, TaskState.REBOOTING, has_host=True)
    assert "rebooting" in str(info.value)
    assert "REBOOT" in str(info.value)
    assert info.value.status == "REBOOT"


def test_delete_is_accepted_while_any_other_task_is_in_flight() -> None:
    delete = TASK_BY_ACTION[Action.DELETE]
    for vm_state in LIVE:
        for task_state in [None, *TaskState]:
            if task_state is TaskState.DELETING:
                continue
            for has_host in (True, False):
                assert begin(Action.DELETE, vm_state, task_state, has_host) is delete
    assert begin(Action.DELETE, "building", "scheduling", has_host=False) is delete


def test_delete_is_refused_when_already_deleting_or_deleted() -> None:
    for vm_state in VmState:
        with pytest.raises(InvalidAction):
            begin(Action.DELETE, vm_state, TaskState.DELETING, has_host=True)
    for task_state in [None, *TaskState]:
        with pytest.raises(InvalidAction):
            begin(Action.DELETE, VmState.DELETED, task_state, has_host=True)


def test_delete_refusal_names_the_status() -> None:
    """begin's docstring: refusals raise InvalidAction "with a message naming the current
    status"; the API returns that message as its 409."""
    with pytest.raises(InvalidAction) as info:
        begin(Action.DELETE, VmState.DELETED, None, has_host=False)
    assert info.value.status == "DELETED"
    assert "DELETED" in str(info.value), str(info.value)
    with pytest.raises(InvalidAction) as info:
        begin(Action.DELETE, VmState.STOPPED, TaskState.DELETING, has_host=True)
    assert info.value.status == "SHUTOFF"
    assert "SHUTOFF" in str(info.value), str(info.value)


@pytest.mark.parametrize("task", [t for t in TASKS if t.needs_host], ids=_ids)
def test_begin_refuses_a_task_that_needs_a_host_when_there_is_none(task: Task) -> None:
    assert task.allowed_from
    for vm_state in task.allowed_from:
        with pytest.raises(InvalidAction) as info:
            begin(task.action, vm_state, None, has_host=False)
        assert "no host" in str(info.value)
        assert EXPECTED_STATUS[vm_state] in str(info.value)


def test_only_create_and_delete_need_no_host() -> None:
    assert {t.action for t in TASKS if not t.needs_host} == {Action.CREATE, Action.DELETE}
    assert SPAWN.needs_host


# --- status ----------------------------------------------------------------------------


@pytest.mark.parametrize("vm_state", list(VmState))
def test_status_of_every_resting_state(vm_state: VmState) -> None:
    assert status(vm_state, None) == EXPECTED_STATUS[vm_state]
    assert status(vm_state.value, None) == EXPECTED_STATUS[vm_state]


@pytest.mark.parametrize("vm_state", list(VmState))
def test_reboot_tasks_show_their_own_status(vm_state: VmState) -> None:
    assert status(vm_state, TaskState.REBOOTING) == "REBOOT"
    assert status(vm_state, TaskState.REBOOTING_HARD) == "HARD_REBOOT"
    assert status(vm_state.value, "rebooting_hard") == "HARD_REBOOT"


def test_other_tasks_leave_the_status_of_the_vm_state() -> None:
    others = set(TaskState) - {TaskState.REBOOTING, TaskState.REBOOTING_HARD}
    for vm_state, task_state in itertools.product(VmState, others):
        assert status(vm_state, task_state) == EXPECTED_STATUS[vm_state]
    assert status(VmState.ACTIVE, TaskState.DELETING) == "ACTIVE"
    assert status(VmState.BUILDING, TaskState.SCHEDULING) == "BUILD"


def test_status_rejects_unknown_states() -> None:
    with pytest.raises(ValueError):
        status("floating", None)
    with pytest.raises(ValueError):
        status(VmState.ACTIVE, "dancing")


def test_is_stable() -> None:
    for vm_state in VmState:
        assert is_stable(vm_state, None) is (vm_state is not VmState.BUILDING)
        for task_state in TaskState:
            assert not is_stable(vm_state, task_state)


# --- apply_event -----------------------------------------------------------------------


def _legal_events() -> list[tuple[Event, VmState, TaskState, VmState, TaskState | None]]:
    """Every (event, vm_state, task in flight) the table accepts, with where it lands."""
    legal = [
        (Event.SCHEDULED, VmState.BUILDING, TaskState.SCHEDULING, VmState.BUILDING,
         TaskState.SPAWNING),
        (Event.SPAWNED, VmState.BUILDING, TaskState.SPAWNING, VmState.ACTIVE, None),
        # "spawned" may overtake "scheduled" when several Cloud Managers consume updates
        (Event.SPAWNED, VmState.BUILDING, TaskState.SCHEDULING, VmState.ACTIVE, None),
        (Event.BUILD_FAILED, VmState.BUILDING, TaskState.SCHEDULING, VmState.ERROR, None),
        (Event.BUILD_FAILED, VmState.BUILDING, TaskState.SPAWNING, VmState.ERROR, None),
    ]
    for task in POWER_TASKS:
        for vm_state in sorted(task.allowed_from):
            legal.append((Event.ACTION_DONE, vm_state, task.task_state,
                          task.lands_in(vm_state), None))
            legal.append((Event.ACTION_FAILED, vm_state, task.task_state, vm_state, None))
    for vm_state in LIVE:
        legal.append((Event.DESTROYED, vm_state, TaskState.DELETING, VmState.DELETED, None))
    return legal


LEGAL = _legal_events()


@pytest.mark.parametrize(
    ("event", "vm_state", "task_state", "vm_after", "task_after"), LEGAL,
    ids=[f"{e.value}@{v.value}/{t.value}" for e, v, t, _, _ in LEGAL],
)
def test_apply_event_for_every_legal_pair(
    event: Event, vm_state: VmState, task_state: TaskState, vm_after: VmState,
    task_after: TaskState | None,
) -> None:
    assert apply_event(event, vm_state, task_state) == (vm_after, task_after)
    assert apply_event(event, vm_state.value, task_state.value) == (vm_after, task_after)


def test_apply_event_power_tasks_land_where_the_table_says() -> None:
    assert apply_event(Event.ACTION_DONE, VmState.ACTIVE, TaskState.POWERING_OFF) == (
        VmState.STOPPED, None)
    assert apply_event(Event.ACTION_DONE, VmState.STOPPED, TaskState.POWERING_ON) == (
        VmState.ACTIVE, None)
    assert apply_event(Event.ACTION_DONE, VmState.PAUSED, TaskState.SUSPENDING) == (
        VmState.SUSPENDED, None)
    assert apply_event(Event.ACTION_FAILED, VmState.ERROR, TaskState.POWERING_OFF) == (
        VmState.ERROR, None)


def _states_for(task_state: TaskState) -> list[VmState]:
    """The vm_states an instance can rest in while ``task_state`` is in flight."""
    if task_state in (TaskState.SCHEDULING, TaskState.SPAWNING):
        return [VmState.BUILDING]
    if task_state is TaskState.DELETING:
        return [v for v in LIVE if v is not VmState.BUILDING]  # BUILDING: see the test below
    return sorted(TASK_BY_STATE[task_state].allowed_from)


def test_apply_event_refuses_every_event_that_does_not_end_the_task_in_flight() -> None:
    legal = {(e, v, t) for e, v, t, _, _ in LEGAL}
    checked = 0
    for task_state in TaskState:
        for vm_state in _states_for(task_state):
            for event in Event:
                if (event, vm_state, task_state) in legal or event is Event.DESTROYED:
                    continue
                with pytest.raises(InvalidAction) as info:
                    apply_event(event, vm_state, task_state)
                assert task_state.value in str(info.value), (event, task_state, str(info.value))
                checked += 1
    assert checked > 50  # the loop really ran over the table


def test_destroyed_is_final_whatever_is_in_flight() -> None:
    """The guest and its claim are gone: no other outcome can follow, so the table takes
    DESTROYED at face value (the Cloud Manager only applies it to its delete task)."""
    for vm_state, task_state in itertools.product(VmState, [None, *TaskState]):
        assert apply_event(Event.DESTROYED, vm_state, task_state) == (VmState.DELETED, None)


def test_build_failed_does_not_end_a_delete_of_a_building_instance() -> None:
    """A delete may start while a build is in flight (BUILDING, deleting); a late
    BUILD_FAILED must not end that delete and leave the instance in ERROR."""
    with pytest.raises(InvalidAction):
        apply_event(Event.BUILD_FAILED, VmState.BUILDING, TaskState.DELETING)


def test_spawned_while_powering_off_is_refused() -> None:
    with pytest.raises(InvalidAction, match="powering-off"):
        apply_event(Event.SPAWNED, VmState.ACTIVE, TaskState.POWERING_OFF)


def test_action_events_do_not_end_a_build_or_delete() -> None:
    for event, task_state in itertools.product(
        (Event.ACTION_DONE, Event.ACTION_FAILED),
        (TaskState.SCHEDULING, TaskState.SPAWNING, TaskState.DELETING),
    ):
        with pytest.raises(InvalidAction):
            apply_event(event, VmState.BUILDING, task_state)


def test_events_with_no_task_in_flight_are_refused_except_destroyed() -> None:
    for vm_state in VmState:
        for event in Event:
            if event is Event.DESTROYED:
                # a late or duplicated DESTROYED keeps a deleted instance deleted
                assert apply_event(event, vm_state, None) == (VmState.DELETED, None)
                continue
            with pytest.raises(InvalidAction, match="no task in flight"):
                apply_event(event, vm_state, None)


# --- power states ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        (PowerState.RUNNING, VmState.ACTIVE),
        (PowerState.PAUSED, VmState.PAUSED),
        (PowerState.SUSPENDED, VmState.SUSPENDED),
        (PowerState.SHUTDOWN, VmState.STOPPED),
        (PowerState.CRASHED, VmState.STOPPED),
        (PowerState.MISSING, None),
    ],
)
def test_vm_state_for_power(power: PowerState, expected: VmState | None) -> None:
    assert vm_state_for_power(power) is expected
    assert vm_state_for_power(power.value) is expected


def test_vm_state_for_power_covers_every_power_state() -> None:
    assert {p for p in PowerState if vm_state_for_power(p) is None} == {PowerState.MISSING}
    with pytest.raises(ValueError):
        vm_state_for_power("exploded")


# --- reconcile -------------------------------------------------------------------------

SETTLING = [t for t in ALL_TASKS if t.task_state is not TaskState.DELETING]
# The tasks that move the instance: the host's power state shows whether they are done.
MOVING = [t for t in SETTLING if t.done_when is not None]


def _resting(task: Task) -> VmState:
    return min(task.allowed_from) if task.allowed_from else VmState.BUILDING


@pytest.mark.parametrize("task", MOVING, ids=_ids)
def test_reconcile_finishes_a_task_the_host_shows_done(task: Task) -> None:
    assert task.done_when is not None
    for vm_state in task.allowed_from or {VmState.BUILDING}:
        outcome = reconcile(vm_state, task.task_state, task.done_when, task.deadline, "hv1")
        assert outcome == Outcome(task.target, None)
    outcome = reconcile(_resting(task).value, task.task_state.value, task.done_when.value,
                        task.deadline, "hv1")
    assert outcome == Outcome(task.target, None)


@pytest.mark.parametrize("task", SETTLING, ids=_ids)
def test_reconcile_settles_where_the_host_says_with_a_fault(task: Task) -> None:
    others = [p for p in PowerState if p not in (task.done_when, PowerState.MISSING)]
    assert others
    for observed in others:
        outcome = reconcile(_resting(task), task.task_state, observed, 42.5, "hv7")
        assert outcome.vm_state is vm_state_for_power(observed), observed
        assert outcome.fault is not None
        for part in (task.task_state.value, "42.5", "hv7", observed.value):
            assert part in outcome.fault, (part, outcome.fault)


def test_reconcile_a_stop_that_left_the_guest_running() -> None:
    outcome = reconcile(VmState.ACTIVE, TaskState.POWERING_OFF, PowerState.RUNNING, 120.0, "hv1")
    assert outcome.vm_state is VmState.ACTIVE
    assert outcome.fault == ("task 'powering-off' did not finish within 120 s; "
                             "host hv1 reports the guest running")


@pytest.mark.parametrize("task", SETTLING, ids=_ids)
def test_reconcile_a_missing_domain_is_an_error(task: Task) -> None:
    outcome = reconcile(_resting(task), task.task_state, PowerState.MISSING, 30.0, "hv3")
    assert outcome.vm_state is VmState.ERROR
    assert outcome.fault is not None
    for part in (task.task_state.value, "30", "hv3", "no domain"):
        assert part in outcome.fault, (part, outcome.fault)


@pytest.mark.parametrize("task", MOVING, ids=_ids)
def test_reconcile_without_an_observation_is_an_error_naming_why(task: Task) -> None:
    outcome = reconcile(_resting(task), task.task_state, None, 60.0, "hv2",
                        "host hv2 did not answer")
    assert outcome.vm_state is VmState.ERROR
    assert outcome.fault is not None
    for part in (task.task_state.value, "60", "hv2", "host hv2 did not answer"):
        assert part in outcome.fault, (part, outcome.fault)

    outcome = reconcile(_resting(task), task.task_state, None, 60.0, None)
    assert outcome.vm_state is VmState.ERROR
    assert outcome.fault is not None
    assert "no host was chosen" in outcome.fault
    assert task.task_state.value in outcome.fault


def test_reconcile_a_build_that_never_found_a_host() -> None:
    outcome = reconcile(VmState.BUILDING, TaskState.SCHEDULING, None, 60.0, None,
                        "group rack1 did not answer")
    assert outcome == Outcome(
        VmState.ERROR,
        "task 'scheduling' did not finish within 60 s; no host was chosen: "
        "group rack1 did not answer",
    )


@pytest.mark.parametrize("vm_state", LIVE)
def test_reconcile_a_delete_always_ends_deleted(vm_state: VmState) -> None:
    gone = reconcile(vm_state, TaskState.DELETING, PowerState.MISSING, 300.0, "hv1")
    assert gone == Outcome(VmState.DELETED, None)
    for observed in [None, *(p for p in PowerState if p is not PowerState.MISSING)]:
        outcome = reconcile(vm_state, TaskState.DELETING, observed, 300.0, "hv1",
                            "hv1 is down")
        assert outcome.vm_state is VmState.DELETED, observed
        assert outcome.fault is not None
        assert "deleting" in outcome.fault and "300" in outcome.fault
        assert "hv1 is down" in outcome.fault
    outcome = reconcile(vm_state, TaskState.DELETING, None, 300.0, None)
    assert outcome.vm_state is VmState.DELETED
    assert outcome.fault is not None and "cleanup pending" in outcome.fault


# --- the snapshot: a task that leaves the instance where it rests ----------------------


def test_the_snapshot_row() -> None:
    assert SNAPSHOT.task_state is TaskState.IMAGE_UPLOADING
    assert TaskState.IMAGE_UPLOADING.value == "image_uploading"
    assert SNAPSHOT.allowed_from == frozenset(
        {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED})
    assert (SNAPSHOT.target, SNAPSHOT.done_when) == (None, None)
    assert SNAPSHOT.needs_host
    assert TASK_BY_STATE[TaskState.IMAGE_UPLOADING] is SNAPSHOT


def test_lands_in() -> None:
    for vm_state in LIVE:
        assert SNAPSHOT.lands_in(vm_state) is vm_state
        assert TASK_BY_ACTION[Action.STOP].lands_in(vm_state) is VmState.STOPPED


@pytest.mark.parametrize("vm_state", sorted(SNAPSHOT.allowed_from))
def test_a_snapshot_keeps_the_vm_state_whether_it_succeeds_or_fails(vm_state: VmState) -> None:
    assert begin(Action.SNAPSHOT, vm_state, None, has_host=True) is SNAPSHOT
    # the status while it runs is the resting state's, as in Nova
    assert status(vm_state, TaskState.IMAGE_UPLOADING) == EXPECTED_STATUS[vm_state]
    for event in (Event.ACTION_DONE, Event.ACTION_FAILED):
        assert apply_event(event, vm_state, TaskState.IMAGE_UPLOADING) == (vm_state, None)


def test_a_snapshot_is_refused_while_building_in_error_or_during_another_task() -> None:
    for vm_state, shown in ((VmState.BUILDING, "BUILD"), (VmState.ERROR, "ERROR")):
        with pytest.raises(InvalidAction, match=f"cannot snapshot an instance in status {shown}"):
            begin(Action.SNAPSHOT, vm_state, None, has_host=True)
    with pytest.raises(InvalidAction, match="image_uploading"):
        begin(Action.SNAPSHOT, VmState.ACTIVE, TaskState.IMAGE_UPLOADING, has_host=True)
    with pytest.raises(InvalidAction, match="image_uploading"):
        begin(Action.STOP, VmState.ACTIVE, TaskState.IMAGE_UPLOADING, has_host=True)
    with pytest.raises(InvalidAction, match="no host"):
        begin(Action.SNAPSHOT, VmState.STOPPED, None, has_host=False)
    # a delete is still accepted while a snapshot runs
    assert begin(Action.DELETE, VmState.ACTIVE, TaskState.IMAGE_UPLOADING, True).action is (
        Action.DELETE)


@pytest.mark.parametrize("vm_state", sorted(SNAPSHOT.allowed_from))
def test_reconcile_an_overdue_snapshot_never_takes_it_for_done(vm_state: VmState) -> None:
    """No power state shows that a snapshot finished: an overdue one always gets a fault,
    and the instance settles where its host says it is."""
    for observed in (p for p in PowerState if p is not PowerState.MISSING):
        outcome = reconcile(vm_state, TaskState.IMAGE_UPLOADING, observed, 3600.0, "hv1")
        assert outcome.vm_state is vm_state_for_power(observed)
        assert outcome.fault == ("task 'image_uploading' did not finish within 3600 s; "
                                 f"host hv1 reports the guest {observed.value}")


@pytest.mark.parametrize("vm_state", sorted(SNAPSHOT.allowed_from))
def test_reconcile_an_overdue_snapshot_nobody_can_see_keeps_the_vm_state(
        vm_state: VmState) -> None:
    outcome = reconcile(vm_state, TaskState.IMAGE_UPLOADING, None, 90.0, "hv2",
                        "host hv2 is down")
    assert outcome == Outcome(vm_state, "task 'image_uploading' did not finish within 90 s; "
                                        "host hv2: host hv2 is down")
    missing = reconcile(vm_state, TaskState.IMAGE_UPLOADING, PowerState.MISSING, 90.0, "hv2")
    assert missing.vm_state is VmState.ERROR
    assert missing.fault is not None and "no domain" in missing.fault
