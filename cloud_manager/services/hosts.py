"""Hosts, asked live of each group's manager (the Group Managers own the inventory)."""

from __future__ import annotations

import logging

from cloud_manager.context import CloudContext
from cloud_manager.errors import NotFound
from cloud_manager.services import groups
from cloud_manager.services.servers import group_target
from message_bus.errors import BusError
from message_bus.messages import HostList, HostView, ListHosts

log = logging.getLogger(__name__)


def listing(ctx: CloudContext) -> tuple[list[HostView], list[str]]:
    """Every host of every group, and the groups that did not answer."""
    with ctx.sessions() as session:
        known = groups.all_groups(session)
    hosts: list[HostView] = []
    unreachable: list[str] = []
    for group in known:
        if not groups.is_fresh(group, ctx.config.cloud.group_stale_after):
            unreachable.append(group.name)
            continue
        try:
            reply = ctx.bus.call(group_target(group.name), ListHosts(),
                                 timeout=min(ctx.config.bus.rpc_timeout, 5.0))
        except BusError as exc:
            log.warning("group %s did not list its hosts: %s", group.name, exc)
            unreachable.append(group.name)
            continue
        assert isinstance(reply, HostList)
        hosts.extend(reply.hosts)
    return sorted(hosts, key=lambda h: (h.group, h.name)), unreachable


def get(ctx: CloudContext, name: str) -> HostView:
    hosts, unreachable = listing(ctx)
    for host in hosts:
        if host.name == name:
            return host
    extra = f" (groups not answering: {', '.join(unreachable)})" if unreachable else ""
    raise NotFound(f"host '{name}' not found{extra}")
