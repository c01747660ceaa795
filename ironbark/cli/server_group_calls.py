"""The API calls behind ``ironbark server group ...`` and ``server create --min/--max``.

They sit beside ``ApiClient`` (whose module another change owns) and use only its
public ``request``; they can move into the client as methods unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import quote

from ironbark.cli.client import ApiClient, ApiError, JsonObject


def _key(body: Any, key: str, what: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise ApiError(0, f"unexpected answer to {what}: no {key!r} in it")
    return body[key]


def _path(ref: str) -> str:
    return f"/server-groups/{quote(ref, safe='')}"


def create_server_group(client: ApiClient, name: str, policy: str) -> JsonObject:
    body = client.request("POST", "/server-groups", json={"name": name, "policy": policy})
    return _key(body, "server_group", "POST /v1/server-groups")


def list_server_groups(client: ApiClient, all_projects: bool = False) -> list[JsonObject]:
    params = {"all_projects": "true"} if all_projects else None
    body = client.request("GET", "/server-groups", params=params)
    return _key(body, "server_groups", "GET /v1/server-groups")


def get_server_group(client: ApiClient, ref: str) -> JsonObject:
    """By id or name; the API resolves names (an ambiguous one is its 400)."""
    return _key(client.request("GET", _path(ref)), "server_group", "GET /v1/server-groups")


def delete_server_group(client: ApiClient, ref: str) -> None:
    client.request("DELETE", _path(ref))


class CreatedServers(NamedTuple):
    """What one create request made: one server (no reservation) or several."""

    reservation_id: str | None
    servers: list[JsonObject]


def create_servers(
    client: ApiClient, name: str, flavor: str, image: str, *, group: str | None = None,
    server_group: str | None = None, min_count: int | None = None,
    max_count: int | None = None, key_name: str | None = None, user_data: str | None = None,
) -> CreatedServers:
    """``POST /v1/servers`` with the optional fields; counts are checked by the API,
    which names the field at fault."""
    body: JsonObject = {"name": name, "flavor": flavor, "image": image}
    optional = {"group": group, "server_group": server_group, "min_count": min_count,
                "max_count": max_count, "key_name": key_name, "user_data": user_data}
    body.update({k: v for k, v in optional.items() if v is not None})
    answer = client.request("POST", "/servers", json=body)
    if isinstance(answer, dict) and "servers" in answer:
        return CreatedServers(answer.get("reservation_id"), list(answer["servers"]))
    return CreatedServers(None, [_key(answer, "server", "POST /v1/servers")])
