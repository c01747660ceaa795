"""``/v1/server-groups``: a project's server groups (Nova's os-server-groups).

``<ref>`` is an id or a name of the caller's project; the admin may also reach any
project's group by id, and list them all with ``?all_projects=true``.
"""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.schemas import ServerGroupCreate, parse_body, parse_bool, parse_query
from cloud_manager.errors import Forbidden
from cloud_manager.services import server_groups


@blueprint.post("/server-groups")
def create_server_group() -> tuple[Response, int]:
    body = parse_body(ServerGroupCreate)
    with cloud().sessions.begin() as session:
        group = server_groups.create(session, caller(), name=body.name, policy=body.policy)
        return jsonify({"server_group": views.server_group(group, [])}), 201


@blueprint.get("/server-groups")
def list_server_groups() -> Response:
    query = parse_query({"all_projects"})
    all_projects = parse_bool("all_projects", query.get("all_projects"))
    if all_projects and not caller().is_admin:
        raise Forbidden("all_projects is for the cloud's administrators")
    with cloud().sessions() as session:
        found = server_groups.listing(session, caller(), all_projects=all_projects)
        members = server_groups.members(session, [g.id for g in found])
        return jsonify({"server_groups": [views.server_group(g, members.get(g.id, []))
                                          for g in found]})


@blueprint.get("/server-groups/<ref>")
def show_server_group(ref: str) -> Response:
    with cloud().sessions() as session:
        group = server_groups.get(session, caller(), ref)
        members = server_groups.members(session, [group.id]).get(group.id, [])
        return jsonify({"server_group": views.server_group(group, members)})


@blueprint.delete("/server-groups/<ref>")
def delete_server_group(ref: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        server_groups.delete(session, caller(), ref)
    return "", 204
