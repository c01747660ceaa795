"""``/v1/servers``: thin routes; the work is in cloud_manager.services.servers."""

from __future__ import annotations

from flask import Response, jsonify, request

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.schemas import (
    ServerAction,
    ServerCreate,
    parse_body,
    parse_bool,
    parse_query,
)
from cloud_manager.api.snapshot_schemas import CreateImageAction
from cloud_manager.errors import BadInput, Forbidden
from cloud_manager.services import console, servers, snapshots
from message_bus.lifecycle import Action


@blueprint.post("/servers")
def create_server() -> tuple[Response, int]:
    """One server answers ``{"server"}``; a multi-create (max_count > 1), as Nova's
    ``return_reservation_id`` does, ``{"reservation_id", "servers"}``."""
    body = parse_body(ServerCreate)
    created = servers.create(cloud(), caller(), servers.CreateRequest(
        name=body.name, flavor_ref=body.flavor, image_ref=body.image, group=body.group,
        server_group=body.server_group, min_count=body.min_count, max_count=body.max_count,
        key_name=body.key_name, user_data=body.user_data))
    shown = [views.server(i, caller()) for i in created.instances]
    if created.reservation_id is None:
        return jsonify({"server": shown[0]}), 202
    return jsonify({"reservation_id": created.reservation_id, "servers": shown}), 202


@blueprint.get("/servers")
def list_servers() -> Response:
    query = parse_query({"all_projects", "status", "name", "reservation_id"})
    all_projects = parse_bool("all_projects", query.get("all_projects"))
    if all_projects and not caller().is_admin:
        raise Forbidden("all_projects is for the cloud's administrators")
    wanted = query.get("status")
    if wanted is not None and wanted.upper() not in servers.STATUSES:
        raise BadInput(f"field 'status': unknown status '{wanted}' (one of "
                       f"{', '.join(servers.STATUSES)})", field="status")
    with cloud().sessions() as session:
        rows = servers.listing(session, caller(), all_projects=all_projects,
                               status_filter=wanted.upper() if wanted else None,
                               name=query.get("name"),
                               reservation_id=query.get("reservation_id"))
        return jsonify({"servers": [views.server(r, caller()) for r in rows]})


@blueprint.get("/servers/<server_id>")
def show_server(server_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"server": views.server(servers.get(session, caller(), server_id),
                                               caller())})


@blueprint.get("/servers/<server_id>/console-log")
def console_log(server_id: str) -> Response:
    """``{"output": text}``: the tail of the serial console; ``?lines=N``, the last N."""
    lines = console.parse_lines(parse_query({"lines"}).get("lines"))
    return jsonify({"output": console.read(cloud(), caller(), server_id, lines)})


@blueprint.delete("/servers/<server_id>")
def delete_server(server_id: str) -> tuple[Response, int]:
    instance = servers.delete(cloud(), caller(), server_id)
    return jsonify({"server": views.server(instance, caller())}), 202


@blueprint.post("/servers/<server_id>/action")
def server_action(server_id: str) -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if isinstance(data, dict) and "create_image" in data:
        return _create_image(server_id)
    body = parse_body(ServerAction)
    if body.type is not None and body.action != "reboot":
        raise BadInput("field 'type': only a reboot has a type", field="type")
    action = Action(body.action)
    if action is Action.REBOOT and body.type == "hard":
        action = Action.REBOOT_HARD
    instance = servers.act(cloud(), caller(), server_id, action)
    return jsonify({"server": views.server(instance, caller())}), 202


def _create_image(server_id: str) -> tuple[Response, int]:
    """Nova's createImage: 202 with the new image; ``Location`` names it too."""
    body = parse_body(CreateImageAction).create_image
    _, image = snapshots.create_image(cloud(), caller(), server_id, name=body.name,
                                      properties=body.properties)
    answer = jsonify({"image": views.image(image)})
    answer.headers["Location"] = f"{request.host_url.rstrip('/')}/v1/images/{image['id']}"
    return answer, 202
