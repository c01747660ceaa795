"""JSON representations of the native API's resources (docs/api.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud_manager.auth import Principal
from cloud_manager.db.models import Flavor, Group, Instance, KeyPair, ServerGroup
from message_bus.lifecycle import status
from message_bus.messages import HostView


def iso(value: dt.datetime | float | None, micro: bool = False) -> str | None:
    """UTC, ``Z``; a float is a Unix time; ``micro``: with microseconds (Keystone's)."""
    if value is None:
        return None
    if isinstance(value, float | int):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def server(instance: Instance, principal: Principal) -> dict[str, Any]:
    return {
        "id": instance.id,
        "name": instance.name,
        "project_id": instance.project_id,
        "status": status(instance.vm_state, instance.task_state),
        "vm_state": instance.vm_state,
        "task_state": instance.task_state,
        "power_state": instance.power_state,
        "flavor": {"id": instance.flavor_id, "name": instance.flavor_name,
                   "vcpus": instance.vcpus, "memory_mb": instance.memory_mb,
                   "disk_gb": instance.disk_gb},
        "image": {"id": instance.image_id, "name": instance.image_name},
        "group": instance.group_name,
        "host": instance.host if principal.is_admin else None,
        "fault": ({"message": instance.fault, "at": iso(instance.fault_at)}
                  if instance.fault else None),
        "created_at": iso(instance.created_at),
        "updated_at": iso(instance.updated_at),
        "launched_at": iso(instance.launched_at),
        "request_id": instance.request_id,
        "server_group": instance.server_group_id,
        "reservation_id": instance.reservation_id,
        "key_name": instance.key_name,
    }


def keypair(k: KeyPair) -> dict[str, Any]:
    return {"name": k.name, "type": k.type, "public_key": k.public_key,
            "fingerprint": k.fingerprint, "created_at": iso(k.created_at)}


def server_group(sg: ServerGroup, members: list[str]) -> dict[str, Any]:
    """``group``: the host group the members live in, null while there is none."""
    return {"id": sg.id, "name": sg.name, "policy": sg.policy, "project_id": sg.project_id,
            "group": sg.group_name if members else None, "members": members,
            "created_at": iso(sg.created_at)}


def flavor(f: Flavor) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "vcpus": f.vcpus, "memory_mb": f.memory_mb,
            "disk_gb": f.disk_gb, "is_public": f.is_public, "created_at": iso(f.created_at)}


IMAGE_FIELDS = ("id", "name", "status", "disk_format", "size", "checksum", "sha256",
                "visibility", "owner", "kernel_id", "ramdisk_id", "min_disk", "min_ram",
                "properties", "created_at", "updated_at")


def image(record: dict[str, Any]) -> dict[str, Any]:
    """An image store record as tenants see it: the store's internals (chunk counts,
    stored sizes) stay with the admin's ``/v1/images/stats``."""
    view = {key: record.get(key) for key in IMAGE_FIELDS}
    if view["properties"] is None:
        view["properties"] = {}
    if record.get("corrupt_chunks"):
        view["corrupt_chunks"] = record["corrupt_chunks"]
    return view


def host(h: HostView) -> dict[str, Any]:
    data = h.model_dump(mode="json")
    data["last_seen_at"] = iso(h.last_seen_at)
    return data


def group(g: Group, fresh: bool) -> dict[str, Any]:
    summary = g.summary
    return {"name": g.name, "state": "up" if fresh else "stale", "policy": g.policy,
            "hosts_up": g.hosts_up, "hosts_down": g.hosts_down,
            "hosts_empty": summary.get("hosts_empty"),
            "capacity": summary.get("capacity"), "used": summary.get("used"),
            "largest_free": summary.get("largest_free"), "last_seen_at": iso(g.last_seen_at)}
