"""An Instance Manager: serves ``host.<name>`` and reports the host to its group.

Handlers are thin: validate (the bus did), hand off to a workflow, and ask the
reporter for a fresh report after anything that changed a domain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from instance_manager import console, power, snapshot, spawn
from instance_manager.context import HostContext
from instance_manager.reporter import Reporter
from ironbark.periodic import Periodic
from message_bus.envelope import Message
from message_bus.idempotency import FileStore
from message_bus.messages import (
    DescribeDomain,
    Destroy,
    GetConsoleOutput,
    PowerAction,
    SnapshotDisk,
    Spawn,
)

M = TypeVar("M", bound=Message)


class InstanceManager:
    def __init__(self, ctx: HostContext):
        self.ctx = ctx
        self.reporter = Reporter(ctx)
        assert ctx.options.state_dir is not None
        self._keys = FileStore(ctx.options.state_dir / "processed-messages.jsonl")
        self._reports = Periodic(f"{ctx.name}-report", ctx.options.report_interval,
                                 self.reporter.send)

    def register(self) -> None:
        ctx = self.ctx
        self.ctx.bus.serve(
            f"host.{ctx.name}",
            {
                Spawn: self._changing(lambda m: spawn.spawn(ctx, m)),
                PowerAction: self._changing(lambda m: power.act(ctx, m)),
                SnapshotDisk: self._changing(lambda m: snapshot.snapshot(ctx, m)),
                Destroy: self._changing(lambda m: power.destroy(ctx, m)),
                DescribeDomain: lambda m: power.describe(ctx, m),
                GetConsoleOutput: lambda m: console.read(ctx, m),
            },
            workers=ctx.options.workers, idempotency=self._keys,
        )

    def _changing(self, workflow: Callable[[M], None]) -> Callable[[M], None]:
        def handler(message: M) -> None:
            try:
                workflow(message)
            finally:
                self._reports.trigger()
        return handler

    def start(self) -> None:
        self._reports.start()

    def stop(self) -> None:
        """Stop reporting (call before stopping the bus, which drains the handlers)."""
        self._reports.stop()

    def close(self) -> None:
        """Release the journal and the hypervisor (after the bus has stopped)."""
        self._keys.close()
        self.ctx.driver.close()
