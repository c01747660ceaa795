"""Power actions and destroy: one driver call each, then the outcome as an event.

An action succeeded when the guest ends in the power state the lifecycle table
expects of it (``Task.done_when``); otherwise the event says what the guest is now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from instance_manager.context import HostContext
from instance_manager.driver.base import DriverError, HypervisorDriver, InstanceNotFound
from message_bus.lifecycle import TASK_BY_ACTION, Action, Event, PowerState
from message_bus.messages import DescribeDomain, Destroy, DomainReport, PowerAction

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 60.0


def _operation(driver: HypervisorDriver, action: Action) -> Callable[[str], None]:
    return {
        Action.START: driver.power_on,
        Action.STOP: lambda i: driver.power_off(i, timeout=SHUTDOWN_TIMEOUT),
        Action.REBOOT: lambda i: driver.reboot(i, hard=False),
        Action.REBOOT_HARD: lambda i: driver.reboot(i, hard=True),
        Action.PAUSE: driver.pause,
        Action.UNPAUSE: driver.unpause,
        Action.SUSPEND: driver.suspend,
        Action.RESUME: driver.resume,
    }[action]


def act(ctx: HostContext, msg: PowerAction) -> None:
    driver, expected = ctx.driver, TASK_BY_ACTION[msg.action].done_when
    try:
        _operation(driver, msg.action)(msg.instance_id)
    except InstanceNotFound as exc:
        ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_FAILED, PowerState.MISSING,
                 reason=str(exc))
        return
    except DriverError as exc:
        log.error("%s failed: %s", msg.action.value, exc)
        ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_FAILED,
                 driver.power_state(msg.instance_id), reason=str(exc))
        return
    power = driver.power_state(msg.instance_id)
    if power is not expected:
        ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_FAILED, power,
                 reason=f"after {msg.action.value} the guest is {power.value}, "
                        f"not {expected.value}")
        return
    log.info("%s done: guest %s", msg.action.value, power.value)
    ctx.emit(msg.instance_id, msg.task_id, Event.ACTION_DONE, power)


def destroy(ctx: HostContext, msg: Destroy) -> None:
    ctx.driver.destroy(msg.instance_id)
    ctx.images.release(msg.instance_id)  # its overlay is gone: the base may be evicted
    log.info("destroyed the guest and its disk")
    ctx.emit(msg.instance_id, msg.task_id, Event.DESTROYED, PowerState.MISSING)


def describe(ctx: HostContext, msg: DescribeDomain) -> DomainReport:
    return DomainReport(instance_id=msg.instance_id,
                        power_state=ctx.driver.power_state(msg.instance_id))
