"""What every Group Manager workflow needs: its database, its bus and its options."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from group_manager.scheduler import Scheduler
from ironbark.config import GroupOptions
from message_bus import Bus
from message_bus.envelope import Message

CLOUD = "cloud"


def host_target(host: str) -> str:
    return f"host.{host}"


def group_target(group: str) -> str:
    return f"group.{group}"


@dataclass
class GroupContext:
    options: GroupOptions
    sessions: sessionmaker[Session]
    bus: Bus
    rpc_timeout: float
    scheduler: Scheduler

    @property
    def name(self) -> str:
        return self.options.name

    def to_cloud(self, message: Message, ttl: float | None = None) -> None:
        self.bus.cast(CLOUD, message, ttl=ttl)

    def to_host(self, host: str, message: Message) -> None:
        self.bus.cast(host_target(host), message)
