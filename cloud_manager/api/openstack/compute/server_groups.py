"""``/compute/v2.1/os-server-groups``: affinity and anti-affinity (2.1's ``policies``).

The scheduler honours them (``services.server_groups`` pins the group's host group;
the Group Manager's filters place members together or apart); servers join one with
the ``os:scheduler_hints.group`` hint at create.
"""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import (
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
    require_admin,
)
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.errors import BadInput
from cloud_manager.services import server_groups

POLICIES = ("affinity", "anti-affinity")  # the soft ones arrive in 2.15


@blueprint.get("/v2.1/os-server-groups")
def list_server_groups() -> Response:
    everyone = query_bool("all_projects") or False
    if everyone:
        require_admin("os_compute_api:os-server-groups:index:all_projects")
    with cloud().sessions() as session:
        rows = server_groups.listing(session, caller(), all_projects=everyone)
        page, _ = paginate(rows, lambda g: g.id, query_int("limit"), None)
        offset = query_int("offset") or 0
        page = page[offset:] if offset else page
        members = server_groups.members(session, [g.id for g in page])
        return jsonify({"server_groups": [views.server_group(g, members.get(g.id, []))
                                          for g in page]})


@blueprint.post("/v2.1/os-server-groups")
def create_server_group() -> Response:
    data = member(json_body(), "server_group", "server_group")
    no_extra(data, ("name", "policies"), "server_group")
    name = field(data, "name", str, "server_group", required=True, check=name_check())
    policies = field(data, "policies", list, "server_group", required=True)
    if len(policies) != 1 or policies[0] not in POLICIES:
        raise BadInput(f"Invalid input for field/attribute policies. Value: {policies!r}. "
                       f"exactly one of {list(POLICIES)}", field="server_group.policies")
    with cloud().sessions.begin() as session:
        group = server_groups.create(session, caller(), name=name, policy=policies[0])
        return jsonify({"server_group": views.server_group(group, [])})


@blueprint.get("/v2.1/os-server-groups/<group_id>")
def show_server_group(group_id: str) -> Response:
    with cloud().sessions() as session:
        group = server_groups.get(session, caller(), group_id)
        members = server_groups.members(session, [group.id]).get(group.id, [])
        return jsonify({"server_group": views.server_group(group, members)})


@blueprint.delete("/v2.1/os-server-groups/<group_id>")
def delete_server_group(group_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        server_groups.delete(session, caller(), group_id)
    return "", 204
