"""``ironbark host ...`` and ``ironbark group ...``: where servers run.

Host listings come from the Group Managers; a group that does not answer in time is
reported on stderr (its hosts may be missing or stale in the table) instead of
failing the whole listing, matching the API's ``unreachable_groups``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ironbark.cli.context import get_client
from ironbark.cli.output import Column, cell, field, format_option, print_list, print_show, warn

HOST_ORDER = (
    "name", "group", "state", "enabled", "hypervisor_type", "instances", "last_seen_at",
    "unknown_domains", "vcpus", "memory_mb", "disk_gb",
)


def usage(resource: str) -> Callable[[dict[str, Any]], str | None]:
    """``used/capacity (xRATIO)`` of one host resource; capacity already applies the ratio."""

    def get(host: dict[str, Any]) -> str | None:
        res = host.get(resource)
        if not isinstance(res, dict):
            return None
        text = f"{cell(res.get('used'))}/{cell(res.get('capacity'))}"
        ratio = res.get("allocation_ratio")
        return f"{text} (x{cell(ratio)})" if ratio is not None else text

    return get


def host_state(host: dict[str, Any]) -> str:
    """``up``/``down``, marked when the host is disabled (the scheduler skips it)."""
    state = cell(host.get("state"))
    return f"{state} (disabled)" if host.get("enabled") is False else state


HOST_COLUMNS = (
    Column("Name", field("name")),
    Column("Group", field("group")),
    Column("State", host_state),
    Column("Hypervisor", field("hypervisor_type")),
    Column("Instances", field("instances"), "right"),
    Column("vCPU used/capacity (ratio)", usage("vcpus"), "right"),
    Column("RAM MiB used/capacity (ratio)", usage("memory_mb"), "right"),
    Column("Disk GB used/capacity (ratio)", usage("disk_gb"), "right"),
    Column("Last seen", field("last_seen_at")),
)


def group_usage(resource: str) -> Callable[[dict[str, Any]], str]:
    def get(group: dict[str, Any]) -> str:
        return f"{cell(field('used', resource)(group))}/{cell(field('capacity', resource)(group))}"

    return get


def largest_free(group: dict[str, Any]) -> str | None:
    """The biggest single-host hole: what the largest server placeable there can be."""
    free = group.get("largest_free")
    if not isinstance(free, dict):
        return None
    return (
        f"{cell(free.get('vcpus'))} vCPU, {cell(free.get('memory_mb'))} MiB, "
        f"{cell(free.get('disk_gb'))} GB"
    )


GROUP_COLUMNS = (
    Column("Name", field("name")),
    Column("State", field("state")),
    Column("Policy", field("policy")),
    Column("Hosts up", field("hosts_up"), "right"),
    Column("Hosts down", field("hosts_down"), "right"),
    # Up hosts running nothing (the power-save policy keeps them so, to be powered off).
    Column("Hosts empty", field("hosts_empty"), "right"),
    Column("vCPU used/capacity", group_usage("vcpus"), "right"),
    Column("RAM MiB used/capacity", group_usage("memory_mb"), "right"),
    Column("Disk GB used/capacity", group_usage("disk_gb"), "right"),
    Column("Largest free", largest_free),
    Column("Last seen", field("last_seen_at")),
)


def unreachable_warnings(groups: list[str]) -> list[str]:
    return [
        f"group {name!r} did not answer; its hosts are missing or may be stale" for name in groups
    ]


@click.group("host")
def host() -> None:
    """Look at hypervisor hosts (admin only)."""


@host.command("list")
@format_option
def host_list(fmt: str) -> None:
    """List hosts with their usage and capacity."""
    listing = get_client().list_hosts()
    for line in unreachable_warnings(listing.unreachable_groups):
        warn(line)
    print_list(listing.hosts, HOST_COLUMNS, fmt)


@host.command("show")
@click.argument("name")
@format_option
def host_show(name: str, fmt: str) -> None:
    """Show one host."""
    print_show(get_client().get_host(name), fmt, HOST_ORDER)


@click.group("group")
def group() -> None:
    """Look at host groups."""


@group.command("list")
@format_option
def group_list(fmt: str) -> None:
    """List host groups with their capacity."""
    print_list(get_client().list_groups(), GROUP_COLUMNS, fmt)
