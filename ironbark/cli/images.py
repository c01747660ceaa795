"""``ironbark image ...``: upload, list, show, change, download and delete images.

An IMAGE argument is an id or a name; the API resolves it (a name several images
share is refused there, with a request to use the id). Uploads and downloads stream
with a progress bar on stderr, shown only on a terminal, so piped output and
``-f json`` stay clean.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ironbark.cli.client import ApiClient, ApiError
from ironbark.cli.context import get_client
from ironbark.cli.output import (
    Column,
    field,
    for_each_ref,
    format_option,
    print_error,
    print_list,
    print_show,
    render_json,
    render_show,
)

IMAGE_ORDER = (
    "id", "name", "status", "disk_format", "size", "checksum", "sha256", "visibility",
    "owner", "kernel_id", "ramdisk_id", "min_disk", "min_ram", "properties",
    "corrupt_chunks", "created_at", "updated_at",
)
DISK_FORMATS = ("raw", "qcow2", "ami", "aki", "ari")
STATUSES = ("queued", "saving", "active", "killed")


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


# --- helpers -------------------------------------------------------------------------------


def parse_properties(pairs: tuple[str, ...], option: str = "--property") -> dict[str, str]:
    """``K=V`` options as a dict; a pair without ``=`` or with an empty key is a usage error."""
    properties: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        properties[key] = value
    return properties


@contextlib.contextmanager
def progress_bar(length: int, label: str, hidden: bool) -> Iterator[Callable[[int], None]]:
    """A ``progress(n)`` callback drawing a bar on stderr, or doing nothing.

    Hidden when asked (``--no-progress``) or when stderr is not a terminal, so logs and
    pipes never fill with carriage returns.
    """
    stderr = click.get_text_stream("stderr")
    if hidden or not stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=stderr,
                           show_pos=False, show_percent=True) as bar:
        yield bar.update


def _print_image(image: dict[str, Any], fmt: str) -> None:
    print_show(image, fmt, IMAGE_ORDER)


def no_progress_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-progress", is_flag=True,
                        help="No progress bar (it is never drawn when stderr is not a "
                             "terminal).")(func)


# --- commands ------------------------------------------------------------------------------


@click.group("image")
def image() -> None:
    """Manage images (what servers boot from)."""


@image.command("list")
@click.option("--name", default=None, help="Only images with this name.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@click.option("--public/--private", "public", default=None,
              help="Only public, or only private, images.")
@format_option
def list_(name: str | None, status: str | None, public: bool | None, fmt: str) -> None:
    """List the public images and this project's own."""
    visibility = None if public is None else ("public" if public else "private")
    images = get_client().list_images(name=name, status=status, visibility=visibility)
    print_list(images, IMAGE_COLUMNS, fmt)


@image.command("show")
@click.argument("image_ref", metavar="IMAGE")
@format_option
def show(image_ref: str, fmt: str) -> None:
    """Show one image, by id or name."""
    _print_image(get_client().get_image(image_ref), fmt)


@image.command("create")
@click.option("--file", "path", required=True,
              type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
              help="The disk image to upload.")
@click.option("--disk-format", required=True, type=click.Choice(DISK_FORMATS),
              help="Format of the file.")
@click.option("--public", is_flag=True, help="Visible to every project (admin only).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE",
              help="A property to set (repeat for several).")
@click.option("--kernel", default=None, metavar="IMAGE", help="Kernel image (id or name).")
@click.option("--ramdisk", default=None, metavar="IMAGE", help="Ramdisk image (id or name).")
@click.option("--min-disk", type=click.IntRange(min=0), default=None, metavar="GB",
              help="Smallest root disk it boots on.")
@click.option("--min-ram", type=click.IntRange(min=0), default=None, metavar="MIB",
              help="Least memory it boots with.")
@no_progress_option
@format_option
@click.argument("name")
@click.pass_context
def create(ctx: click.Context, name: str, path: Path, disk_format: str, public: bool,
           properties: tuple[str, ...], kernel: str | None, ramdisk: str | None,
           min_disk: int | None, min_ram: int | None, no_progress: bool, fmt: str) -> None:
    """Create an image called NAME from a file, and upload it."""
    props = parse_properties(properties)
    client = get_client()
    created = client.create_image(
        name, disk_format, visibility="public" if public else None,
        properties=props or None, kernel_id=kernel, ramdisk_id=ramdisk,
        min_disk=min_disk, min_ram=min_ram,
    )
    size = path.stat().st_size
    try:
        with path.open("rb") as f, progress_bar(size, f"Uploading {name}", no_progress) as bar:
            uploaded = client.upload_image(created["id"], f, size, bar)
    except ApiError as exc:
        print_error(exc)
        click.echo(f"The upload of image {created['id']} failed; it is "
                   f"{_status(client, created['id'])} (delete it and create it again).",
                   err=True)
        ctx.exit(1)
    _print_image(uploaded, fmt)


def _status(client: ApiClient, image_id: str, settle: float = 5.0) -> str:
    """The image's status after a failed upload, once the store has noticed the failure
    (``saving`` turns ``killed`` when the store sees the body cut short)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            status = str(client.get_image(image_id).get("status"))
        except ApiError as exc:
            return f"in an unknown state ({exc})"
        if status != "saving" or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@image.command("set")
@click.option("--name", default=None, help="New name.")
@click.option("--public/--private", "public", default=None,
              help="Make it visible to every project (admin only), or to its own.")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE",
              help="A property to set (repeat for several).")
@click.option("--unset-property", "unset", multiple=True, metavar="KEY",
              help="A property to remove (repeat for several).")
@click.option("--kernel", default=None, metavar="IMAGE", help="Kernel image (id or name).")
@click.option("--ramdisk", default=None, metavar="IMAGE", help="Ramdisk image (id or name).")
@click.option("--min-disk", type=click.IntRange(min=0), default=None, metavar="GB",
              help="Smallest root disk it boots on.")
@click.option("--min-ram", type=click.IntRange(min=0), default=None, metavar="MIB",
              help="Least memory it boots with.")
@format_option
@click.argument("image_ref", metavar="IMAGE")
def set_(image_ref: str, name: str | None, public: bool | None, properties: tuple[str, ...],
         unset: tuple[str, ...], kernel: str | None, ramdisk: str | None,
         min_disk: int | None, min_ram: int | None, fmt: str) -> None:
    """Change an image's name, visibility or properties (owner or admin)."""
    props: dict[str, str | None] = dict(parse_properties(properties))
    for key in unset:
        if key in props:
            raise click.BadParameter(f"{key!r} is both set and unset",
                                     param_hint="--unset-property")
        props[key] = None
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if public is not None:
        changes["visibility"] = "public" if public else "private"
    if props:
        changes["properties"] = props
    for key, value in (("kernel_id", kernel), ("ramdisk_id", ramdisk),
                       ("min_disk", min_disk), ("min_ram", min_ram)):
        if value is not None:
            changes[key] = value
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    _print_image(get_client().update_image(image_ref, changes), fmt)


@image.command("delete")
@click.argument("image_refs", metavar="IMAGE...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, image_refs: tuple[str, ...]) -> None:
    """Delete images, by id or name (owner or admin).

    Every image is tried even if one fails; the exit code is 1 if any did.
    """
    if not for_each_ref(image_refs, get_client().delete_image):
        ctx.exit(1)


@image.command("download")
@click.option("--file", "path", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Where to write the image (via FILE.part, renamed once verified).")
@no_progress_option
@click.argument("image_ref", metavar="IMAGE")
def download(image_ref: str, path: Path, no_progress: bool) -> None:
    """Download an image to a file, verified against its sha256."""
    client = get_client()
    found = client.get_image(image_ref)
    size = found.get("size") or 0
    with progress_bar(size, f"Downloading {found.get('name')}", no_progress) as bar:
        image_ = client.download_image(found["id"], path, bar)
    click.echo(f"Saved image {image_['id']} ({human_size(image_.get('size'))}, "
               f"sha256 {image_.get('sha256')}) to {path}", err=True)


STATS_ROWS = (
    ("images", "Images", str),
    ("active_images", "Active images", str),
    ("logical_bytes", "Logical size", human_size),
    ("stored_bytes", "Stored size", human_size),
    ("zero_bytes", "Zero bytes (holes)", human_size),
    ("chunk_count", "Chunks", str),
    ("dedup_ratio", "Dedup ratio", lambda r: f"{r:.2f}x" if isinstance(r, int | float) else r),
)


@image.command("stats")
@format_option
def stats(fmt: str) -> None:
    """How much the image store holds and saves by deduplication (admin only)."""
    data = get_client().image_stats()
    if fmt == "json":
        click.echo(render_json(data))
        return
    rows = {label: (show(data[key]) if data.get(key) is not None else None)
            for key, label, show in STATS_ROWS if key in data}
    click.echo(render_show(rows, tuple(rows)))
