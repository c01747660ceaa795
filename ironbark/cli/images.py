"""``ironbark image ...``: the images servers boot from (read-only for now).

Upload arrives with the image store; until then the all-in-one cloud seeds a public
image named ``demo``.
"""

from __future__ import annotations

from typing import Any

import click

from ironbark.cli.context import get_client
from ironbark.cli.output import Column, field, format_option, print_list, print_show

IMAGE_ORDER = (
    "id", "name", "status", "disk_format", "size", "sha256", "visibility", "owner",
    "created_at", "updated_at",
)


def human_size(size: Any) -> str | None:
    """Bytes as people read them (``12.3 MiB``); JSON output keeps the exact count."""
    if not isinstance(size, int) or isinstance(size, bool):
        return size
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


IMAGE_COLUMNS = (
    Column("ID", field("id")),
    Column("Name", field("name")),
    Column("Status", field("status")),
    Column("Format", field("disk_format")),
    Column("Size", lambda image: human_size(image.get("size")), "right"),
    Column("Visibility", field("visibility")),
)


@click.group("image")
def image() -> None:
    """Look at images."""


@image.command("list")
@format_option
def list_(fmt: str) -> None:
    """List the public images and this project's own."""
    print_list(get_client().list_images(), IMAGE_COLUMNS, fmt)


@image.command("show")
@click.argument("image_ref", metavar="IMAGE")
@format_option
def show(image_ref: str, fmt: str) -> None:
    """Show one image, by id or name."""
    print_show(get_client().get_image(image_ref), fmt, IMAGE_ORDER)
