"""The instance lifecycle: every state, action, event and transition, in one table.

Every tier asks this module what is legal; nothing else decides. The Cloud Manager
uses it to accept or refuse an API action (409 naming the current status), to apply
events coming back from the hosts, and to reconcile a task that outlived its
deadline. The Group and Instance Managers use it to map what a hypervisor reports
onto the vocabulary the API speaks.

States follow OpenStack's split: ``vm_state`` is where the instance rests,
``task_state`` is what is in flight, and the API ``status`` is derived from both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class VmState(StrEnum):
    BUILDING = "building"
    ACTIVE = "active"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    ERROR = "error"
    DELETED = "deleted"


class TaskState(StrEnum):
    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    POWERING_ON = "powering-on"
    POWERING_OFF = "powering-off"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    IMAGE_UPLOADING = "image_uploading"
    DELETING = "deleting"


class PowerState(StrEnum):
    """What a host observes of a guest. ``missing`` means: no such domain there."""

    RUNNING = "running"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    MISSING = "missing"


class Action(StrEnum):
    """What a user (or the control plane on a user's behalf) asks of an instance."""

    CREATE = "create"
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    REBOOT_HARD = "reboot_hard"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    SUSPEND = "suspend"
    RESUME = "resume"
    SNAPSHOT = "snapshot"  # copy the instance's disk into a new image
    DELETE = "delete"


class Event(StrEnum):
    """What the lower tiers report back about a task."""

    SCHEDULED = "scheduled"  # a host was claimed for a build
    SPAWNED = "spawned"  # the guest is running
    BUILD_FAILED = "build_failed"  # no valid host, or the spawn failed
    ACTION_DONE = "action_done"  # a power action or a snapshot finished
    ACTION_FAILED = "action_failed"  # it failed; the instance keeps its state
    DESTROYED = "destroyed"  # the guest and its claim are gone


_V, _T, _P = VmState, TaskState, PowerState
_ANY_LIVE = frozenset(set(VmState) - {VmState.DELETED})


def _from(*states: VmState) -> frozenset[VmState]:
    return frozenset(states)


@dataclass(frozen=True)
class Task:
    """One transitional task: where it may start, where it lands, how long it may take.

    ``done_when`` is the power state a host reports once the task has succeeded;
    the reconciler uses it to finish a task whose completion event was lost.

    A task that works *on* the instance without moving it (a snapshot) has no
    ``target`` (the instance keeps its vm_state, see ``lands_in``) and no
    ``done_when``: the guest's power state cannot tell whether it finished, so an
    overdue one is never taken for done.
    """

    action: Action
    task_state: TaskState
    allowed_from: frozenset[VmState]
    target: VmState | None  # None: the instance keeps the vm_state it had
    done_when: PowerState | None  # None: no power state shows that it succeeded
    deadline: float  # seconds, overridable per task in configuration
    needs_host: bool = True

    def lands_in(self, vm_state: VmState) -> VmState:
        """Where an instance resting in ``vm_state`` goes when this task succeeds."""
        return self.target if self.target is not None else vm_state


# The whole table of user actions. Nothing else in Ironbark decides what is legal.
# Columns: action, task in flight, allowed from, lands in, done when the host reports, deadline (s).
# None in "lands in" and "done when": the task leaves the instance where it rests.
TASKS: tuple[Task, ...] = (
    Task(Action.CREATE, _T.SCHEDULING, _from(), _V.ACTIVE, _P.RUNNING, 60.0, needs_host=False),
    Task(Action.START, _T.POWERING_ON, _from(_V.STOPPED), _V.ACTIVE, _P.RUNNING, 120.0),
    Task(Action.STOP, _T.POWERING_OFF, _from(_V.ACTIVE, _V.ERROR), _V.STOPPED, _P.SHUTDOWN, 120.0),
    Task(Action.REBOOT, _T.REBOOTING, _from(_V.ACTIVE), _V.ACTIVE, _P.RUNNING, 180.0),
    Task(Action.REBOOT_HARD, _T.REBOOTING_HARD,
         _from(_V.ACTIVE, _V.STOPPED, _V.PAUSED, _V.SUSPENDED, _V.ERROR),
         _V.ACTIVE, _P.RUNNING, 180.0),
    Task(Action.PAUSE, _T.PAUSING, _from(_V.ACTIVE), _V.PAUSED, _P.PAUSED, 60.0),
    Task(Action.UNPAUSE, _T.UNPAUSING, _from(_V.PAUSED), _V.ACTIVE, _P.RUNNING, 60.0),
    Task(Action.SUSPEND, _T.SUSPENDING, _from(_V.ACTIVE, _V.PAUSED), _V.SUSPENDED,
         _P.SUSPENDED, 300.0),
    Task(Action.RESUME, _T.RESUMING, _from(_V.SUSPENDED), _V.ACTIVE, _P.RUNNING, 300.0),
    Task(Action.SNAPSHOT, _T.IMAGE_UPLOADING,
         _from(_V.ACTIVE, _V.STOPPED, _V.PAUSED, _V.SUSPENDED), None, None, 3600.0),
    Task(Action.DELETE, _T.DELETING, _ANY_LIVE, _V.DELETED, _P.MISSING, 300.0, needs_host=False),
)

# The second half of a build: after the Group Manager claims a host.
SPAWN = Task(Action.CREATE, _T.SPAWNING, _from(_V.BUILDING), _V.ACTIVE, _P.RUNNING, 600.0)

TASK_BY_ACTION: dict[Action, Task] = {t.action: t for t in TASKS}
TASK_BY_STATE: dict[TaskState, Task] = {t.task_state: t for t in (*TASKS, SPAWN)}

# Which API status a (vm_state, task_state) pair shows; task states not listed
# leave the vm_state's status unchanged (as in Nova, a deleting ACTIVE server shows ACTIVE).
_STATUS: dict[VmState, str] = {
    _V.BUILDING: "BUILD",
    _V.ACTIVE: "ACTIVE",
    _V.PAUSED: "PAUSED",
    _V.SUSPENDED: "SUSPENDED",
    _V.STOPPED: "SHUTOFF",
    _V.ERROR: "ERROR",
    _V.DELETED: "DELETED",
}
_STATUS_BY_TASK: dict[TaskState, str] = {_T.REBOOTING: "REBOOT", _T.REBOOTING_HARD: "HARD_REBOOT"}

# Where an instance rests when its host reports a power state and nothing is in flight.
_VM_STATE_FOR_POWER: dict[PowerState, VmState] = {
    _P.RUNNING: _V.ACTIVE,
    _P.PAUSED: _V.PAUSED,
    _P.SUSPENDED: _V.SUSPENDED,
    _P.SHUTDOWN: _V.STOPPED,
    _P.CRASHED: _V.STOPPED,
}


class InvalidAction(Exception):
    """An action is not legal in the instance's current state (the API answers 409)."""

    def __init__(self, action: Action, vm_state: VmState, task_state: TaskState | None, why: str):
        self.action, self.vm_state, self.task_state = action, vm_state, task_state
        self.status = status(vm_state, task_state)
        super().__init__(why)


def status(vm_state: VmState | str, task_state: TaskState | str | None) -> str:
    """The API status of an instance, as OpenStack derives it."""
    if task_state is not None and TaskState(task_state) in _STATUS_BY_TASK:
        return _STATUS_BY_TASK[TaskState(task_state)]
    return _STATUS[VmState(vm_state)]


def is_stable(vm_state: VmState | str, task_state: TaskState | str | None) -> bool:
    return task_state is None and VmState(vm_state) != VmState.BUILDING


def begin(
    action: Action, vm_state: VmState | str, task_state: TaskState | str | None, has_host: bool
) -> Task:
    """Check that ``action`` may start now and return the task it starts.

    Raises InvalidAction with a message naming the current status otherwise.
    """
    vm_state = VmState(vm_state)
    current = TaskState(task_state) if task_state is not None else None
    task = TASK_BY_ACTION[action]
    shown = status(vm_state, current)
    if action is Action.DELETE:
        if vm_state is VmState.DELETED or current is TaskState.DELETING:
            raise InvalidAction(action, vm_state, current,
                                f"the instance is already being deleted (status {shown})")
        return task
    if current is not None:
        raise InvalidAction(
            action, vm_state, current,
            f"cannot {action.value} an instance while task '{current.value}' is in progress "
            f"(status {shown})",
        )
    if vm_state not in task.allowed_from:
        raise InvalidAction(
            action, vm_state, current,
            f"cannot {action.value} an instance in status {shown}",
        )
    if task.needs_host and not has_host:
        raise InvalidAction(
            action, vm_state, current,
            f"cannot {action.value} an instance that has no host (status {shown})",
        )
    return task


def apply_event(
    event: Event, vm_state: VmState | str, task_state: TaskState | str | None
) -> tuple[VmState, TaskState | None]:
    """Where an instance goes when a lower tier reports ``event`` for its current task.

    Raises InvalidAction when the event does not belong to the task in flight; the
    caller drops such a (late or duplicated) event rather than corrupt the state.
    """
    vm_state = VmState(vm_state)
    current = TaskState(task_state) if task_state is not None else None
    if event is Event.DESTROYED:
        return VmState.DELETED, None
    if current is None:
        raise InvalidAction(Action.CREATE, vm_state, current, f"no task in flight for {event}")
    if event is Event.SCHEDULED and current is TaskState.SCHEDULING:
        return VmState.BUILDING, TaskState.SPAWNING
    if event is Event.SPAWNED and current in (TaskState.SCHEDULING, TaskState.SPAWNING):
        # From SCHEDULING too: with several Cloud Manager processes consuming updates,
        # "spawned" can overtake "scheduled" (per-key order holds within one process).
        return VmState.ACTIVE, None
    if event is Event.BUILD_FAILED and current in (TaskState.SCHEDULING, TaskState.SPAWNING):
        return VmState.ERROR, None
    if current in (TaskState.SCHEDULING, TaskState.SPAWNING, TaskState.DELETING):
        raise InvalidAction(Action.CREATE, vm_state, current, f"{event} does not end {current}")
    if event is Event.ACTION_DONE:
        return TASK_BY_STATE[current].lands_in(vm_state), None
    if event is Event.ACTION_FAILED:
        return vm_state, None
    raise InvalidAction(Action.CREATE, vm_state, current, f"{event} does not end {current}")


def vm_state_for_power(power: PowerState | str) -> VmState | None:
    """The resting state that matches what a host reports; None for a missing domain."""
    return _VM_STATE_FOR_POWER.get(PowerState(power))


@dataclass(frozen=True)
class Outcome:
    vm_state: VmState
    fault: str | None


def reconcile(
    vm_state: VmState | str,
    task_state: TaskState | str,
    observed: PowerState | str | None,
    deadline: float,
    host: str | None,
    host_note: str = "",
) -> Outcome:
    """Settle a task that outlived its deadline, from what the host reports now.

    ``observed`` is None when nobody could tell (no host chosen, or the host did not
    answer); ``host_note`` explains why, for the fault message the user reads.
    """
    vm_state, current = VmState(vm_state), TaskState(task_state)
    task = TASK_BY_STATE[current]
    took = f"task '{current.value}' did not finish within {deadline:g} s"
    if current is TaskState.DELETING:
        # A delete always ends in DELETED: the claim and domain are cleaned up by the
        # Group Manager when the host comes back (the destroy stays queued for it).
        pending = host_note or "host cleanup pending"
        note = None if observed == PowerState.MISSING else f"{took}; {pending}"
        return Outcome(VmState.DELETED, note)
    if observed is None:
        where = f"host {host}" if host else "no host was chosen"
        fault = f"{took}; {where}: {host_note or 'no report'}"
        # A task that never moves the instance (a snapshot) left it where it rested;
        # whatever the host reports later is applied by the power-state sync.
        return Outcome(VmState.ERROR if task.target is not None else vm_state, fault)
    observed = PowerState(observed)
    if observed is PowerState.MISSING:
        return Outcome(VmState.ERROR, f"{took}; host {host} has no domain for this instance")
    settled = vm_state_for_power(observed)
    assert settled is not None
    if observed is task.done_when:
        return Outcome(task.lands_in(vm_state), None)
    return Outcome(settled, f"{took}; host {host} reports the guest {observed.value}")
