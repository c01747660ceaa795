"""A Group Manager: serves ``group.<name>`` on the bus and keeps its group's inventory.

Handlers are thin: each hands its message to a workflow module (build, operations,
events, inventory). Background work: marking silent hosts down, sending the cloud a
capacity summary, and forgetting old idempotency keys.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from group_manager import build, db, events, operations
from group_manager.context import GroupContext, group_target
from group_manager.db.models import ProcessedMessage
from group_manager.inventory import Inventory
from group_manager.scheduler import Scheduler
from ironbark.config import GroupOptions
from ironbark.periodic import Periodic
from message_bus import Bus
from message_bus.idempotency import SqlStore
from message_bus.messages import (
    BuildInstance,
    BuildInstances,
    DeleteInstance,
    DescribeInstance,
    GetConsoleOutput,
    HostList,
    HostReport,
    HostStateChanged,
    InstanceAction,
    InstanceEvent,
    ListHosts,
    PowerStateSync,
    SnapshotInstance,
)

log = logging.getLogger(__name__)


class GroupManager:
    def __init__(self, options: GroupOptions, bus: Bus, engine: sa.Engine, rpc_timeout: float):
        self.options, self.bus, self.engine = options, bus, engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.inventory = Inventory(self.sessions, options)
        self.scheduler = Scheduler(engine, options.name, options.scheduler_policy,
                                   options.scheduler_refresh_interval)
        self.ctx = GroupContext(options, self.sessions, bus, rpc_timeout, self.scheduler)
        self._keys = SqlStore(engine, ProcessedMessage.__table__)
        self._periodic: list[Periodic] = []

    def migrate(self) -> None:
        db.migrate(self.engine)

    def register(self) -> None:
        ctx = self.ctx
        self.bus.serve(
            group_target(self.options.name),
            {
                BuildInstance: lambda m: build.build(ctx, m),
                BuildInstances: lambda m: build.build_many(ctx, m),
                InstanceAction: lambda m: operations.act(ctx, m),
                SnapshotInstance: lambda m: operations.snapshot(ctx, m),
                DeleteInstance: lambda m: operations.delete(ctx, m),
                DescribeInstance: lambda m: operations.describe(ctx, m),
                GetConsoleOutput: lambda m: operations.console(ctx, m),
                InstanceEvent: lambda m: events.on_instance_event(ctx, m),
                HostReport: self._on_report,
                ListHosts: lambda m: HostList(group=self.options.name,
                                              hosts=self.inventory.hosts()),
            },
            workers=self.options.workers, idempotency=self._keys,
            transient=(OperationalError,),
        )

    def start(self) -> None:
        health_every = min(self.options.host_down_after / 3, 5.0)
        self._summary = Periodic(f"{self.options.name}-summary", self.options.summary_interval,
                                 self._send_summary)
        self._periodic = [
            self._summary,
            Periodic(f"{self.options.name}-health", health_every, self._check_health,
                     run_now=False),
            Periodic(f"{self.options.name}-prune", 3600.0, self._keys.prune_old),
        ]
        for job in self._periodic:
            job.start()

    def stop(self) -> None:
        for job in self._periodic:
            job.stop()
        self.scheduler.close()

    def _on_report(self, report: HostReport) -> None:
        outcome = self.inventory.apply_report(report)
        if outcome.changes:
            self.ctx.to_cloud(PowerStateSync(group=self.options.name, changes=outcome.changes))
        if outcome.came_up:
            self.bus.publish(HostStateChanged(host=report.host, group=self.options.name,
                                              state="up", reason="reporting"))
            self._summary.trigger()

    def _check_health(self) -> None:
        down = self.inventory.mark_down()
        for host in down:
            self.bus.publish(HostStateChanged(
                host=host, group=self.options.name, state="down",
                reason=f"no report for {self.options.host_down_after:g} s"))
        if down:
            self._summary.trigger()

    def _send_summary(self) -> None:
        # A summary older than the next one is worthless: let it expire in the queue.
        self.ctx.to_cloud(self.inventory.summary(), ttl=self.options.summary_interval * 3)
