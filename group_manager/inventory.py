"""The host inventory: what each host has (from its reports), whether it is alive,
and what its instances' power states are.

A host report is the heartbeat: it refreshes the host's capacity (from libvirt),
marks the host up, and compares every domain the host runs with the claims the
group holds there. Power states that changed are returned so the Cloud Manager can
follow guests that shut themselves down or vanished; domains nobody claimed are
recorded and logged, never destroyed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from group_manager.capacity import RESOURCES, free, host_view
from group_manager.db.models import Claim, Host
from ironbark.config import GroupOptions
from ironbark.db import utcnow
from message_bus.lifecycle import PowerState
from message_bus.messages import (
    GroupSummary,
    HostReport,
    HostView,
    PowerStateChange,
    Resources,
)

log = logging.getLogger(__name__)


@dataclass
class ReportOutcome:
    changes: list[PowerStateChange] = field(default_factory=list)
    came_up: bool = False  # new host, or back from down
    restarted: bool = False  # its Instance Manager restarted since the last report


class Inventory:
    def __init__(self, sessions: sessionmaker[Session], options: GroupOptions):
        self._sessions, self._options = sessions, options

    def ratios(self, host: str) -> dict[str, float]:
        override = self._options.host_overrides.get(host)
        ratios = {
            "cpu_allocation_ratio": self._options.cpu_allocation_ratio,
            "ram_allocation_ratio": self._options.ram_allocation_ratio,
            "disk_allocation_ratio": self._options.disk_allocation_ratio,
        }
        if override is not None:
            ratios.update({k: v for k, v in override.model_dump().items() if v is not None})
        return ratios

    def apply_report(self, report: HostReport) -> ReportOutcome:
        outcome = ReportOutcome()
        now = utcnow()
        fields = dict(
            group_name=self._options.name, hypervisor_type=report.hypervisor_type,
            boot_id=report.boot_id, vcpus=report.capacity.vcpus,
            memory_mb=report.capacity.memory_mb, disk_gb=report.capacity.disk_gb,
            reserved_vcpus=report.reserved.vcpus, reserved_memory_mb=report.reserved.memory_mb,
            reserved_disk_gb=report.reserved.disk_gb, last_seen_at=now, state="up",
            **self.ratios(report.host),
        )
        with self._sessions.begin() as session:
            host = session.get(Host, report.host, with_for_update=True)
            if host is None:
                session.add(Host(name=report.host, unknown_domains=[], **fields))
                session.flush()
                host = session.get(Host, report.host)
                assert host is not None
                outcome.came_up = True
                log.info("host %s joined group %s (%s: %d vCPU, %d MiB, %d GB)", report.host,
                         self._options.name, report.hypervisor_type, report.capacity.vcpus,
                         report.capacity.memory_mb, report.capacity.disk_gb)
            else:
                outcome.came_up = host.state != "up"
                outcome.restarted = host.boot_id != report.boot_id
                for key, value in fields.items():
                    if getattr(host, key) != value:
                        setattr(host, key, value)
                if outcome.came_up:
                    log.warning("host %s is up again", report.host)
                if outcome.restarted:
                    log.warning("host %s: its Instance Manager restarted; re-reading every "
                                "domain it reports", report.host)
            outcome.changes = self._compare(session, report)
            unknown = self._unknown(session, report)
            if unknown != list(host.unknown_domains or []):
                if unknown:
                    log.warning("host %s runs domains no claim accounts for: %s (left alone)",
                                report.host, ", ".join(unknown))
                host.unknown_domains = unknown
        return outcome

    def _compare(self, session: Session, report: HostReport) -> list[PowerStateChange]:
        """Power states that differ from what the group last knew, if this news is newer."""
        seen = {d.instance_id: d.power_state for d in report.domains}
        claims = session.scalars(
            sa.select(Claim).where(Claim.host == report.host, Claim.state == "active")
        ).all()
        changes = []
        for claim in claims:
            observed = seen.get(claim.instance_id, PowerState.MISSING)
            if claim.power_state_at is not None and claim.power_state_at >= report.observed_at:
                continue  # an event newer than this report already told us
            if claim.power_state != observed:
                claim.power_state, claim.power_state_at = observed.value, report.observed_at
                changes.append(PowerStateChange(instance_id=claim.instance_id, host=report.host,
                                                power_state=observed,
                                                observed_at=report.observed_at))
        return changes

    def _unknown(self, session: Session, report: HostReport) -> list[str]:
        ours = {d.instance_id for d in report.domains}
        if not ours:
            return sorted(report.unknown_domains)
        claimed = set(session.scalars(
            sa.select(Claim.instance_id).where(Claim.host == report.host,
                                               Claim.state == "active",
                                               Claim.instance_id.in_(ours))
        ))
        orphans = [f"instance {i} (no claim on this host)" for i in sorted(ours - claimed)]
        return sorted(report.unknown_domains) + orphans

    def mark_down(self) -> list[str]:
        """Hosts whose reports stopped; they get no new work until they report again."""
        cutoff = utcnow() - timedelta(seconds=self._options.host_down_after)
        with self._sessions.begin() as session:
            stale = session.scalars(
                sa.select(Host).where(Host.group_name == self._options.name, Host.state == "up",
                                      Host.last_seen_at < cutoff)
            ).all()
            for host in stale:
                host.state = "down"
                log.warning("host %s is down: no report for %.0f s", host.name,
                            time.time() - host.last_seen_at.timestamp())
            return [h.name for h in stale]

    def host(self, name: str) -> Host | None:
        with self._sessions() as session:
            return session.get(Host, name)

    def hosts(self) -> list[HostView]:
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(Host).where(Host.group_name == self._options.name).order_by(Host.name)
            ).all()
            return [host_view(h) for h in rows]

    def summary(self) -> GroupSummary:
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(Host).where(Host.group_name == self._options.name)
            ).all()
        up = [h for h in rows if h.state == "up" and h.enabled]
        views = [host_view(h) for h in up]

        def total(attr: str) -> Resources:
            return Resources(**{
                r.key: sum(getattr(getattr(v, r.key), attr) for v in views) for r in RESOURCES
            })

        largest = Resources(**{
            r.key: max((max(int(free(h, r)), 0) for h in up), default=0) for r in RESOURCES
        })
        return GroupSummary(
            group=self._options.name, policy=self._options.scheduler_policy,
            hosts_up=len(up), hosts_down=len(rows) - len(up),
            hosts_empty=sum(1 for h in up if h.instances == 0), capacity=total("capacity"),
            used=total("used"), largest_free=largest,
        )
