"""``ironbark server group ...``: server groups (affinity and anti-affinity).

A SERVER_GROUP argument is an id or a name of the project's groups; the API resolves
it and refuses a name several groups share. Members join a group when they are
created (``ironbark server create --server-group G``), and leave it when they are
deleted or when the group is.
"""

from __future__ import annotations

from typing import Any

import click

from ironbark.cli.context import get_client
from ironbark.cli.output import (
    Column,
    field,
    for_each_ref,
    format_option,
    print_list,
    print_show,
)
from ironbark.cli.server_group_calls import (
    create_server_group,
    delete_server_group,
    get_server_group,
    list_server_groups,
)

# The API's list (message_bus.messages.SERVER_GROUP_POLICIES); the CLI loads no server code.
POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")

SERVER_GROUP_ORDER = ("id", "name", "policy", "project_id", "group", "members", "created_at")


def member_count(group: dict[str, Any]) -> int | None:
    members = group.get("members")
    return len(members) if isinstance(members, list) else None


def server_group_columns(all_projects: bool) -> list[Column]:
    columns = [
        Column("ID", field("id")),
        Column("Name", field("name")),
        Column("Policy", field("policy")),
        Column("Group", field("group")),
        Column("Members", member_count, "right"),
    ]
    if all_projects:
        columns.insert(2, Column("Project", field("project_id")))
    return columns


@click.group("group")
def server_group() -> None:
    """Manage server groups (keep servers together or apart)."""


@server_group.command("create")
@click.option("--policy", type=click.Choice(POLICIES), required=True,
              help="affinity: one host; anti-affinity: different hosts; soft-*: preferred.")
@format_option
@click.argument("name")
def create(name: str, policy: str, fmt: str) -> None:
    """Create a server group called NAME."""
    print_show(create_server_group(get_client(), name, policy), fmt, SERVER_GROUP_ORDER)


@server_group.command("list")
@click.option("--all-projects", is_flag=True, help="Every project's groups (admin only).")
@format_option
def list_(all_projects: bool, fmt: str) -> None:
    """List server groups."""
    groups = list_server_groups(get_client(), all_projects=all_projects)
    print_list(groups, server_group_columns(all_projects), fmt)


@server_group.command("show")
@click.argument("ref", metavar="SERVER_GROUP")
@format_option
def show(ref: str, fmt: str) -> None:
    """Show one server group, by id or name."""
    print_show(get_server_group(get_client(), ref), fmt, SERVER_GROUP_ORDER)


@server_group.command("delete")
@click.argument("refs", metavar="SERVER_GROUP...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Delete server groups, by id or name; their members keep running.

    Every group is tried even if one fails; the exit code is 1 if any did.
    """
    client = get_client()
    if not for_each_ref(refs, lambda ref: delete_server_group(client, ref)):
        ctx.exit(1)
