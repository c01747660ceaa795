"""``ironbark server ...``: create, list, show, delete and act on servers.

A SERVER argument is an id or an exact name (see ``ApiClient.find_server``). Create
and actions print the server as the API returned it, or as it settled with
``--wait``, so a script gets the resulting state from the same call. A create of
several servers (``--min``/``--max``) prints them all, as a list.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

import click

from ironbark.cli.client import SERVER_ACTIONS, ApiClient, ApiError, is_uuid
from ironbark.cli.context import get_client
from ironbark.cli.images import IMAGE_ORDER
from ironbark.cli.output import Column, field, format_option, print_error, print_list, print_show
from ironbark.cli.server_group_calls import create_servers
from ironbark.cli.server_groups import server_group
from ironbark.cli.snapshot_wait import wait_for_snapshot
from ironbark.cli.wait import DEFAULT_TIMEOUT, WaitError, wait_for_delete, wait_for_server

STATUSES = (
    "BUILD", "ACTIVE", "PAUSED", "SUSPENDED", "SHUTOFF", "REBOOT", "HARD_REBOOT", "ERROR",
    "DELETED",
)

# The order of `server show` rows: identity, then state, then what it runs on, then times.
SERVER_ORDER = (
    "id", "name", "project_id", "status", "vm_state", "task_state", "power_state",
    "flavor", "image", "group", "server_group", "reservation_id", "key_name", "host", "fault",
    "created_at", "updated_at", "launched_at", "request_id",
)

F = TypeVar("F", bound=Callable[..., Any])


def server_columns(servers: list[dict[str, Any]]) -> list[Column]:
    """The `server list` columns; Host only when some row has one (admins only see it)."""
    columns = [
        Column("ID", field("id")),
        Column("Name", field("name")),
        Column("Status", field("status")),
        Column("Task", field("task_state")),
        Column("Power", field("power_state")),
        Column("Flavor", field("flavor", "name")),
        Column("Image", field("image", "name")),
        Column("Group", field("group")),
    ]
    if any(s.get("host") is not None for s in servers):
        columns.append(Column("Host", field("host")))
    return columns


def batch_columns(servers: list[dict[str, Any]]) -> list[Column]:
    """The servers of one multi-create: the `server list` columns and their reservation."""
    return [*server_columns(servers), Column("Reservation", field("reservation_id"))]


def wait_options(func: F) -> F:
    """``--wait`` and ``--timeout``, for every command that starts asynchronous work."""
    func = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="With --wait: give up (exit 1) after this many seconds.",
    )(func)
    return click.option(
        "--wait", is_flag=True, help="Poll until the work is over; exit 1 if it ends in ERROR."
    )(func)


def _server_id(client: ApiClient, ref: str) -> str:
    # An id is used as given (one request fewer); a name has to be looked up.
    return ref if is_uuid(ref) else client.find_server(ref)["id"]


@click.group("server")
def server() -> None:
    """Manage servers (virtual machines)."""


@server.command("create")
@click.option("--flavor", required=True, help="Flavor id or name.")
@click.option("--image", required=True, help="Image id or name.")
@click.option("--group", default=None, help="Host group to place it in (default: any).")
@click.option("--server-group", default=None, metavar="SERVER_GROUP",
              help="Server group (id or name) the new servers join.")
@click.option("--min", "min_count", type=int, default=None, metavar="N",
              help="Create at least N servers, or none (default 1).")
@click.option("--max", "max_count", type=int, default=None, metavar="N",
              help="Create up to N servers, named NAME-1 .. NAME-N (default: --min).")
@click.option("--key-name", default=None, metavar="KEYPAIR",
              help="Key pair whose public key the guest finds on its config drive.")
@click.option("--user-data", type=click.File("rb"), default=None, metavar="FILE",
              help="File the guest finds as its user data (at most 64 KiB).")
@wait_options
@format_option
@click.argument("name")
@click.pass_context
def create(
    ctx: click.Context, name: str, flavor: str, image: str, group: str | None,
    server_group: str | None, min_count: int | None, max_count: int | None,
    key_name: str | None, user_data: BinaryIO | None, wait: bool, timeout: float, fmt: str,
) -> None:
    """Create a server called NAME (or several: --min/--max)."""
    client = get_client()
    if max_count is None:
        max_count = min_count  # `--min 3` alone means exactly 3, as a user would read it
    # The bounds are left to the API, which names the field at fault in its 400 answer.
    created = create_servers(client, name, flavor, image, group=group,
                             server_group=server_group, min_count=min_count,
                             max_count=max_count, key_name=key_name,
                             user_data=(base64.b64encode(user_data.read()).decode()
                                        if user_data is not None else None))
    if created.reservation_id is None:
        (one,) = created.servers
        if wait:
            one = wait_for_server(client, one, timeout)
        print_show(one, fmt, SERVER_ORDER)
        return
    servers, errors = created.servers, []
    if wait:
        servers, errors = _wait_all(client, servers, timeout)
    print_list(servers, batch_columns(servers), fmt)
    for error in errors:
        print_error(error)
    if errors:
        ctx.exit(1)


def _wait_all(
    client: ApiClient, servers: list[dict[str, Any]], timeout: float
) -> tuple[list[dict[str, Any]], list[WaitError]]:
    """Every server as it settled (one time budget for all: they build concurrently),
    and the failures: the ones that went to ERROR or did not settle in time."""
    deadline = time.monotonic() + timeout
    settled: list[dict[str, Any]] = []
    errors: list[WaitError] = []
    for one in servers:
        try:
            settled.append(wait_for_server(client, one, timeout, deadline=deadline))
        except WaitError as exc:
            settled.append(exc.server)
            errors.append(exc)
    return settled, errors


@server.command("list")
@click.option("--all-projects", is_flag=True, help="Every project's servers (admin only).")
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only this status."
)
@click.option("--name", default=None, help="Only servers with this name.")
@format_option
def list_(all_projects: bool, status: str | None, name: str | None, fmt: str) -> None:
    """List servers."""
    servers = get_client().list_servers(
        status=status.upper() if status else None, name=name, all_projects=all_projects
    )
    print_list(servers, server_columns(servers), fmt)


@server.command("show")
@click.argument("server_ref", metavar="SERVER")
@format_option
def show(server_ref: str, fmt: str) -> None:
    """Show one server, by id or name."""
    print_show(get_client().find_server(server_ref), fmt, SERVER_ORDER)


@server.command("delete")
@click.argument("server_refs", metavar="SERVER...", nargs=-1, required=True)
@wait_options
@click.pass_context
def delete(ctx: click.Context, server_refs: tuple[str, ...], wait: bool, timeout: float) -> None:
    """Delete servers, by id or name.

    Every server is tried even if one fails; the exit code is 1 if any did.
    """
    client = get_client()
    failed = False
    deleting: list[dict[str, Any]] = []
    for ref in server_refs:
        try:
            deleting.append(client.delete_server(_server_id(client, ref)))
        except ApiError as exc:
            print_error(exc)
            failed = True
    if wait:
        # One time budget for all of them: they are deleted concurrently anyway.
        deadline = time.monotonic() + timeout
        for gone in deleting:
            try:
                wait_for_delete(client, gone, timeout, deadline=deadline)
            except (ApiError, WaitError) as exc:
                print_error(exc)
                failed = True
    if failed:
        ctx.exit(1)


def _act(
    ref: str, action: str, wait: bool, timeout: float, fmt: str, kind: str | None = None
) -> None:
    client = get_client()
    answer = client.server_action(_server_id(client, ref), action, kind)
    if wait:
        answer = wait_for_server(client, answer, timeout)
    print_show(answer, fmt, SERVER_ORDER)


_ACTION_HELP = {
    "start": "Power on a stopped (SHUTOFF) server.",
    "stop": "Power off a server.",
    "pause": "Pause a server, keeping its memory in place.",
    "unpause": "Unpause a paused server.",
    "suspend": "Suspend a server, saving its memory to disk.",
    "resume": "Resume a suspended server.",
}


def _action_command(action: str) -> click.Command:
    @server.command(action, help=_ACTION_HELP[action])
    @click.argument("server_ref", metavar="SERVER")
    @wait_options
    @format_option
    def command(server_ref: str, wait: bool, timeout: float, fmt: str) -> None:
        _act(server_ref, action, wait, timeout, fmt)

    return command


for _action in SERVER_ACTIONS:
    if _action != "reboot":
        _action_command(_action)


@server.command("reboot")
@click.option("--hard", is_flag=True, help="Power-cycle instead of asking the guest OS.")
@click.argument("server_ref", metavar="SERVER")
@wait_options
@format_option
def reboot(server_ref: str, hard: bool, wait: bool, timeout: float, fmt: str) -> None:
    """Reboot a server (soft unless --hard)."""
    _act(server_ref, "reboot", wait, timeout, fmt, kind="hard" if hard else "soft")


server.add_command(server_group)


@server.command("console-log")
@click.option("--lines", type=click.IntRange(1, 10000), default=None, metavar="N",
              help="Only the last N lines.")
@click.argument("server_ref", metavar="SERVER")
def console_log(server_ref: str, lines: int | None) -> None:
    """Print the server's serial console output, as the guest wrote it."""
    client = get_client()
    params = {"lines": str(lines)} if lines is not None else None
    body = client.request("GET", f"/servers/{_server_id(client, server_ref)}/console-log",
                          params=params)
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        raise ApiError(0, "unexpected answer to GET console-log: no 'output' in it")
    click.echo(body["output"], nl=False)


# -- snapshots ---------------------------------------------------------------------------


def _properties(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``--property K=V`` (repeatable) as a dict; a later K wins."""
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--property")
        parsed[key] = val
    return parsed


@server.group("image")
def server_image() -> None:
    """Make images of servers."""


@server_image.command("create")
@click.option(
    "--property", "properties", multiple=True, callback=_properties, metavar="KEY=VALUE",
    help="A property of the new image (repeatable).",
)
@click.option(
    "--wait", is_flag=True,
    help="Poll until the image is active; exit 1 if the snapshot fails.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT,
    show_default=True, metavar="SECONDS",
    help="With --wait: give up (exit 1) after this many seconds.",
)
@format_option
@click.argument("server_ref", metavar="SERVER")
@click.argument("name")
def image_create(
    server_ref: str, name: str, properties: dict[str, str], wait: bool, timeout: float,
    fmt: str,
) -> None:
    """Snapshot SERVER's disk into a new image called NAME.

    Only the parts of the disk the image store lacks are uploaded. Prints the new
    image (queued), or with --wait the image once it is active.
    """
    client = get_client()
    server_id = _server_id(client, server_ref)
    image = client.create_server_image(server_id, name, properties or None)
    if wait:
        image = wait_for_snapshot(client, image, server_id, timeout)
    print_show(image, fmt, IMAGE_ORDER)
