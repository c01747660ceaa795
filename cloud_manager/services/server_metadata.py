"""A server's own key/value metadata (Nova's ``/servers/{id}/metadata``) and its name.

Keys 1-255 characters, values up to 255, strings both; the number of items is the
project's ``metadata_items`` quota. Every change locks the server's row, so two
concurrent merges both land.
"""

from __future__ import annotations

from typing import Any

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.db.models import Instance
from cloud_manager.errors import BadInput, NotFound
from cloud_manager.services import quotas, servers


def check(items: Any, path: str = "metadata") -> dict[str, str]:
    if not isinstance(items, dict):
        raise BadInput(f"Invalid input for field/attribute {path}. Value: {items!r}. "
                       f"{items!r} is not of type 'object'", field=path)
    for key, value in items.items():
        if not 1 <= len(key) <= 255:
            raise BadInput(f"Invalid input for field/attribute {path}. metadata keys must be "
                           f"1 to 255 characters, got {key!r}", field=f"{path}.{key}")
        if not isinstance(value, str) or len(value) > 255:
            raise BadInput(f"Invalid input for field/attribute {path}.{key}. Value: "
                           f"{value!r}. must be a string of at most 255 characters",
                           field=f"{path}.{key}")
    return dict(items)


def update(ctx: CloudContext, principal: Principal, server_id: str, items: dict[str, str],
           *, replace: bool = False, remove: str | None = None) -> dict[str, str]:
    with ctx.sessions.begin() as session:
        instance = servers.get(session, principal, server_id, for_update=True)
        current = {} if replace else dict(instance.server_metadata or {})
        if remove is not None:
            if remove not in current:
                raise NotFound(f"Metadata item was not found: {remove}")
            del current[remove]
        current.update(items)
        quotas.check_count(session, instance.project_id, "metadata_items", len(current))
        instance.server_metadata = current
        return current


def rename(ctx: CloudContext, principal: Principal, server_id: str, name: str) -> Instance:
    with ctx.sessions.begin() as session:
        instance = servers.get(session, principal, server_id, for_update=True)
        instance.name = name
        return instance
