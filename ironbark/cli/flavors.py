"""``ironbark flavor ...``: the sizes servers are created with.

Creating and deleting flavors is admin-only; the API answers 403 otherwise and the
CLI shows that message as is, rather than guessing at roles itself.
"""

from __future__ import annotations

import click

from ironbark.cli.context import get_client
from ironbark.cli.output import Column, field, format_option, print_list, print_show

FLAVOR_COLUMNS = (
    Column("ID", field("id")),
    Column("Name", field("name")),
    Column("vCPUs", field("vcpus"), "right"),
    Column("RAM MiB", field("memory_mb"), "right"),
    Column("Disk GB", field("disk_gb"), "right"),
    Column("Public", field("is_public")),
)
FLAVOR_ORDER = ("id", "name", "vcpus", "memory_mb", "disk_gb", "is_public", "created_at")


@click.group("flavor")
def flavor() -> None:
    """Manage flavors (server sizes)."""


@flavor.command("list")
@format_option
def list_(fmt: str) -> None:
    """List the flavors this project may use."""
    print_list(get_client().list_flavors(), FLAVOR_COLUMNS, fmt)


@flavor.command("show")
@click.argument("flavor_ref", metavar="FLAVOR")
@format_option
def show(flavor_ref: str, fmt: str) -> None:
    """Show one flavor, by id or name."""
    print_show(get_client().get_flavor(flavor_ref), fmt, FLAVOR_ORDER)


@flavor.command("create")
@click.option("--vcpus", type=int, required=True, help="Number of virtual CPUs.")
@click.option("--ram", "ram", type=int, required=True, metavar="MIB", help="Memory in MiB.")
@click.option("--disk", type=int, required=True, metavar="GB", help="Root disk size in GB.")
@click.option("--id", "flavor_id", default=None, help="Flavor id (default: a new UUID).")
@click.option("--private", is_flag=True, help="Not visible to other projects.")
@format_option
@click.argument("name")
def create(
    name: str, vcpus: int, ram: int, disk: int, flavor_id: str | None, private: bool, fmt: str
) -> None:
    """Create a flavor called NAME (admin only)."""
    # Bounds are left to the API, which names the field at fault in its 400 answer.
    created = get_client().create_flavor(
        name, vcpus, ram, disk, flavor_id=flavor_id, is_public=not private
    )
    print_show(created, fmt, FLAVOR_ORDER)


@flavor.command("delete")
@click.argument("flavor_ref", metavar="FLAVOR")
def delete(flavor_ref: str) -> None:
    """Delete a flavor, by id or name (admin only)."""
    get_client().delete_flavor(flavor_ref)
