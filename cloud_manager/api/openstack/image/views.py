"""Glance's image JSON from an image store record.

Core attributes sit at the top level beside the image's own properties, as Glance
shows them. ``container_format`` is kept by the store as a property of that name
and shown as the core attribute. The hash is the store's whole-image SHA-256
(``os_hash_algo`` sha256, which Glance allows); ``checksum`` its MD5.
"""

from __future__ import annotations

from typing import Any

CORE = ("id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
        "os_hash_value", "owner", "size", "virtual_size", "min_disk", "min_ram",
        "disk_format", "container_format", "created_at", "updated_at", "tags", "self", "file",
        "schema", "os_hidden")
CONTAINER = "container_format"
# What a client may not set (Glance's readonly and reserved attributes).
READ_ONLY = ("id", "status", "checksum", "os_hash_algo", "os_hash_value", "owner", "size",
             "virtual_size", "created_at", "updated_at", "self", "file", "schema", "direct_url",
             "locations")


def image(record: dict[str, Any]) -> dict[str, Any]:
    props = dict(record.get("properties") or {})
    container = props.pop(CONTAINER, None)
    kernel, ramdisk = record.get("kernel_id"), record.get("ramdisk_id")
    if kernel:
        props["kernel_id"] = kernel
    if ramdisk:
        props["ramdisk_id"] = ramdisk
    active = record.get("status") == "active"
    view = {
        "id": record["id"], "name": record.get("name"), "status": record.get("status"),
        "visibility": record.get("visibility"), "protected": False,
        "checksum": record.get("checksum"),
        "os_hash_algo": "sha256" if active else None,
        "os_hash_value": record.get("sha256"),
        "owner": record.get("owner"), "size": record.get("size"), "virtual_size": None,
        "min_disk": record.get("min_disk") or 0, "min_ram": record.get("min_ram") or 0,
        "disk_format": record.get("disk_format"), "container_format": container,
        "created_at": _seconds(record.get("created_at")),
        "updated_at": _seconds(record.get("updated_at")),
        "tags": [], "self": f"/v2/images/{record['id']}",
        "file": f"/v2/images/{record['id']}/file", "schema": "/v2/schemas/image",
        "os_hidden": False,
    }
    view.update({k: v for k, v in props.items() if k not in view})
    return view


def _seconds(value: str | None) -> str | None:
    """Glance's times: whole seconds, UTC, ``Z`` (the store keeps microseconds)."""
    if not value:
        return value
    return value.split(".")[0].rstrip("Z") + "Z"
