"""Request bodies of the Network API: ``{"network": {...}}`` and friends, checked."""

from __future__ import annotations

from typing import Any

from cloud_manager.api.openstack.common import json_body, member, no_extra
from cloud_manager.errors import BadInput


def body(kind: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    data = member(json_body(), kind, kind)
    no_extra(data, allowed, kind)
    for key in ("name", "description"):
        if key in data and (not isinstance(data[key], str) or len(data[key]) > 255):
            raise BadInput(f"Invalid input for {key}. Reason: a string of at most 255 "
                           f"characters.", field=f"{kind}.{key}")
    for key in ("admin_state_up", "shared", "router:external", "enable_dhcp",
                "port_security_enabled"):
        if key in data and not isinstance(data[key], bool):
            raise BadInput(f"Invalid input for {key}. Reason: '{data[key]}' is not a valid "
                           f"boolean value.", field=f"{kind}.{key}")
    if data.get("tags"):
        raise BadInput(f"Invalid input for {kind}.tags: tags are not supported",
                       field=f"{kind}.tags")
    return data
