"""``/compute/v2.1/servers``: create, list (+ detail), show, rename, delete, metadata.

The work is the native API's services (``services.servers``); these routes turn
Nova's request and response shapes into theirs. What Nova's 2.1 accepts and this
cloud cannot honour (volumes, personality files, fixed IPs of another shape) is a
400 naming the field, never silently dropped.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import (
    base_url,
    caller,
    cloud,
    field,
    json_body,
    member,
    name_check,
    no_extra,
    paginate,
    query_bool,
    query_int,
)
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.db.models import Instance
from cloud_manager.errors import BadInput, Forbidden, NotFound
from cloud_manager.services import server_metadata, servers
from cloud_manager.services.network import server_ports
from message_bus.lifecycle import status

_SERVER_KEYS = ("name", "imageRef", "flavorRef", "networks", "key_name", "user_data",
                "metadata", "availability_zone", "min_count", "max_count",
                "return_reservation_id", "security_groups", "config_drive",
                "OS-DCF:diskConfig", "accessIPv4", "accessIPv6", "adminPass",
                "block_device_mapping_v2")
_STATUSES = (*servers.STATUSES, "DELETED", "MIGRATING", "RESIZE", "VERIFY_RESIZE")


def _ref(value: str) -> str:
    """An id, or a link to one (2.1 accepts ``flavorRef``/``imageRef`` as URLs)."""
    return value.rstrip("/").rsplit("/", 1)[-1] if "/" in value else value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 1)
    if isinstance(value, str) and value.isdigit():  # 2.1's positive_integer takes "3"
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                       f"must be a positive integer", field=f"server.{key}")
    return value


def _image_from_mappings(data: dict[str, Any]) -> str:
    """The image of the one mapping every server has, a local root disk from an image
    (the openstack CLI sends it); volumes are not supported here."""
    mappings = data.get("block_device_mapping_v2")
    if mappings is None:
        raise BadInput("Invalid input for field/attribute server: 'imageRef' is a required "
                       "property", field="server.imageRef")
    local = {"source_type": "image", "destination_type": "local", "boot_index": 0}
    if not isinstance(mappings, list) or len(mappings) != 1 or not isinstance(
            mappings[0], dict) or any(mappings[0].get(k) not in (v, str(v))
                                      for k, v in local.items()) \
            or not isinstance(mappings[0].get("uuid"), str):
        raise BadInput("Invalid input for field/attribute block_device_mapping_v2: only the "
                       "image's local root disk (source_type image, destination_type local, "
                       "boot_index 0) is supported; there are no volumes",
                       field="server.block_device_mapping_v2")
    return str(mappings[0]["uuid"])


def _unsupported(data: dict[str, Any]) -> None:
    if data.get("accessIPv4") or data.get("accessIPv6"):
        raise BadInput("field 'server.accessIPv4': access IPs are not supported",
                       field="server.accessIPv4")
    if data.get("adminPass"):
        raise BadInput("field 'server.adminPass': this cloud does not set guest passwords; "
                       "use key_name", field="server.adminPass")
    disk = data.get("OS-DCF:diskConfig")
    if disk not in (None, "MANUAL", "AUTO"):
        raise BadInput(f"Invalid input for field/attribute OS-DCF:diskConfig. Value: {disk}",
                       field="server.OS-DCF:diskConfig")
    drive = data.get("config_drive")
    if drive is not None and not isinstance(drive, bool | str):
        raise BadInput("field 'server.config_drive': must be a boolean",
                       field="server.config_drive")


@blueprint.post("/v2.1/servers")
def create_server() -> tuple[Response, int]:
    body = json_body()
    no_extra(body, ("server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"), "body")
    data = member(body, "server", "server")
    no_extra(data, _SERVER_KEYS, "server")
    name = field(data, "name", str, "server", required=True, check=name_check())
    image = field(data, "imageRef", str, "server") or _image_from_mappings(data)
    flavor = field(data, "flavorRef", (str, int), "server", required=True)
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints")) or {}
    if not isinstance(hints, dict) or set(hints) - {"group"}:
        raise BadInput("field 'os:scheduler_hints': only the 'group' hint is supported",
                       field="os:scheduler_hints")
    _unsupported(data)
    metadata = server_metadata.check(data.get("metadata", {}), "server.metadata")
    networks = server_ports.parse_request(data.get("networks"), data.get("security_groups"))
    created = servers.create(cloud(), caller(), servers.CreateRequest(
        name=name, flavor_ref=_ref(str(flavor)), image_ref=_ref(image),
        group=field(data, "availability_zone", str, "server") or None,
        server_group=field(hints, "group", str, "os:scheduler_hints"),
        min_count=_count(data, "min_count"), max_count=_count(data, "max_count"),
        key_name=field(data, "key_name", str, "server"),
        user_data=field(data, "user_data", str, "server"), metadata=metadata,
        networks=networks))
    if field(data, "return_reservation_id", bool, "server", default=False):
        return jsonify({"reservation_id": created.reservation_id
                        or created.instances[0].reservation_id or ""}), 202
    first = created.instances[0]
    answer = jsonify({"server": {"id": first.id, "links": views.links("servers", first.id),
                                 "OS-DCF:diskConfig": "MANUAL",
                                 "security_groups": [{"name": g} for g in networks.groups]}})
    answer.headers["Location"] = f"{base_url()}/compute/v2.1/servers/{first.id}"
    return answer, 202


def _listing() -> tuple[list[Instance], bool]:
    principal = caller()
    all_tenants = query_bool("all_tenants") or False
    if all_tenants and not principal.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants "
                        "to be performed.")
    wanted = request.args.get("status")
    if wanted is not None and wanted.upper() not in _STATUSES:
        raise BadInput(f"Invalid status value: {wanted}", field="status")
    pattern = None
    if request.args.get("name") is not None:
        try:
            pattern = re.compile(request.args["name"])
        except re.error as exc:
            raise BadInput(f"Invalid input for query parameter name: not a regular "
                           f"expression ({exc})", field="name") from None
    limit, marker = query_int("limit"), request.args.get("marker")
    with cloud().sessions() as session:
        rows = servers.listing(session, principal, all_projects=all_tenants)
    if all_tenants and request.args.get("project_id", request.args.get("tenant_id")):
        wanted_project = request.args.get("project_id", request.args.get("tenant_id"))
        rows = [r for r in rows if r.project_id == wanted_project]
    if principal.is_admin and request.args.get("host"):
        rows = [r for r in rows if r.host == request.args["host"]]
    if pattern is not None:
        rows = [r for r in rows if pattern.search(r.name)]
    if wanted is not None:
        rows = [r for r in rows if status(r.vm_state, r.task_state) == wanted.upper()]
    for key, attr in (("flavor", "flavor_id"), ("image", "image_id"),
                      ("reservation_id", "reservation_id")):
        if request.args.get(key):
            rows = [r for r in rows if getattr(r, attr) == request.args[key]]
    rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)  # Nova: newest first
    page, more = paginate(rows, lambda r: r.id, limit, marker)
    return page, more and bool(page)


def _links(page: list[Instance], more: bool, path: str) -> dict[str, Any]:
    if not more:
        return {}
    args = {k: v for k, v in request.args.items() if k != "marker"}
    args["marker"] = page[-1].id
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return {"servers_links": [{"rel": "next",
                               "href": f"{base_url()}/compute/v2.1/{path}?{query}"}]}


@blueprint.get("/v2.1/servers")
def list_servers() -> Response:
    page, more = _listing()
    return jsonify({"servers": [views.server_brief(i) for i in page],
                    **_links(page, more, "servers")})


@blueprint.get("/v2.1/servers/detail")
def list_servers_detail() -> Response:
    page, more = _listing()
    with cloud().sessions() as session:
        nets = server_ports.addresses(session, [i.id for i in page])
    return jsonify({"servers": [_full(i, nets) for i in page],
                    **_links(page, more, "servers/detail")})


def _full(instance: Instance, nets: dict[str, Any]) -> dict[str, Any]:
    addresses, groups = nets.get(instance.id, ({}, None))
    return views.server(instance, caller(), addresses, groups)


def show(server_id: str) -> dict[str, Any]:
    with cloud().sessions() as session:
        instance = servers.get(session, caller(), server_id)
        nets = server_ports.addresses(session, [instance.id])
    return _full(instance, nets)


@blueprint.get("/v2.1/servers/<server_id>")
def show_server(server_id: str) -> Response:
    return jsonify({"server": show(server_id)})


@blueprint.put("/v2.1/servers/<server_id>")
def update_server(server_id: str) -> Response:
    data = member(json_body(), "server", "server")
    no_extra(data, ("name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"), "server")
    _unsupported(data)
    name = field(data, "name", str, "server", check=name_check())
    if name is not None:
        server_metadata.rename(cloud(), caller(), server_id, name)
    return jsonify({"server": show(server_id)})


@blueprint.delete("/v2.1/servers/<server_id>")
def delete_server(server_id: str) -> tuple[str, int]:
    servers.delete(cloud(), caller(), server_id)
    return "", 204


# --- metadata -----------------------------------------------------------------------------


@blueprint.get("/v2.1/servers/<server_id>/metadata")
def list_metadata(server_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"metadata": dict(servers.get(session, caller(), server_id)
                                         .server_metadata or {})})


@blueprint.route("/v2.1/servers/<server_id>/metadata", methods=["POST", "PUT"])
def set_metadata(server_id: str) -> Response:
    items = server_metadata.check(json_body().get("metadata"))
    result = server_metadata.update(cloud(), caller(), server_id, items,
                                    replace=request.method == "PUT")
    return jsonify({"metadata": result})


@blueprint.get("/v2.1/servers/<server_id>/metadata/<key>")
def show_metadata_item(server_id: str, key: str) -> Response:
    with cloud().sessions() as session:
        items = servers.get(session, caller(), server_id).server_metadata or {}
    if key not in items:
        raise NotFound(f"Metadata item was not found: {key}")
    return jsonify({"meta": {key: items[key]}})


@blueprint.put("/v2.1/servers/<server_id>/metadata/<key>")
def set_metadata_item(server_id: str, key: str) -> Response:
    meta = server_metadata.check(json_body().get("meta"), "meta")
    if list(meta) != [key]:
        raise BadInput("Request body and URI mismatch: 'meta' must hold exactly the key "
                       "named in the URL", field="meta")
    server_metadata.update(cloud(), caller(), server_id, meta)
    return jsonify({"meta": meta})


@blueprint.delete("/v2.1/servers/<server_id>/metadata/<key>")
def delete_metadata_item(server_id: str, key: str) -> tuple[str, int]:
    server_metadata.update(cloud(), caller(), server_id, {}, remove=key)
    return "", 204
