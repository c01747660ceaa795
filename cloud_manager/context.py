"""What every Cloud Manager service needs: configuration, database, bus and image store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from image_store.client import ImageStoreClient
from ironbark.config import Config
from message_bus import Bus
from message_bus.lifecycle import TASK_BY_STATE, TaskState


@dataclass
class CloudContext:
    """``images`` is the image store's client as the service itself (no caller).

    The store owns image records and enforces tenancy, so every use on behalf of a
    user goes through ``images.for_caller(...)`` (see ``services.images``).
    """

    config: Config
    sessions: sessionmaker[Session]
    bus: Bus
    images: ImageStoreClient

    def deadline_seconds(self, task_state: TaskState) -> float:
        default = TASK_BY_STATE[task_state].deadline
        return self.config.task_deadline(task_state.value, default)

    def deadline(self, task_state: TaskState, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.deadline_seconds(task_state))
