"""What every Cloud Manager service needs: configuration, database and bus."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ironbark.config import Config
from message_bus import Bus
from message_bus.lifecycle import TASK_BY_STATE, TaskState


@dataclass
class CloudContext:
    config: Config
    sessions: sessionmaker[Session]
    bus: Bus

    def deadline_seconds(self, task_state: TaskState) -> float:
        default = TASK_BY_STATE[task_state].deadline
        return self.config.task_deadline(task_state.value, default)

    def deadline(self, task_state: TaskState, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.deadline_seconds(task_state))
