"""``/network/v2.0/security-groups`` and ``security-group-rules``."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import caller, cloud
from cloud_manager.api.openstack.network import blueprint, views
from cloud_manager.api.openstack.network.common import body
from cloud_manager.errors import Conflict
from cloud_manager.services.network import security_groups


@blueprint.get("/v2.0/security-groups")
def list_groups() -> Response:
    with cloud().sessions.begin() as session:  # may make the project's default group
        rows = security_groups.visible(session, caller())
        return jsonify(views.listing("security_groups", views.groups(session, rows)))


@blueprint.post("/v2.0/security-groups")
def create_group() -> tuple[Response, int]:
    data = body("security_group", ("name", "description", "project_id", "tenant_id",
                                   "stateful", "tags"))
    with cloud().sessions.begin() as session:
        row = security_groups.create(session, caller(), str(data.get("name") or ""),
                                     str(data.get("description") or ""))
        return jsonify({"security_group": views.groups(session, [row])[0]}), 201


@blueprint.get("/v2.0/security-groups/<group_id>")
def show_group(group_id: str) -> Response:
    with cloud().sessions() as session:
        row = security_groups.get(session, caller(), group_id)
        return jsonify({"security_group": views.shown(views.groups(session, [row])[0])})


@blueprint.put("/v2.0/security-groups/<group_id>")
def update_group(group_id: str) -> Response:
    data = body("security_group", ("name", "description"))
    with cloud().sessions.begin() as session:
        row = security_groups.get(session, caller(), group_id)
        if row.name == "default" and data.get("name", "default") != "default":
            raise Conflict("Updating default security group not allowed.")
        for key in ("name", "description"):
            if key in data:
                setattr(row, key, data[key])
        row.revision += 1
        session.flush()
        return jsonify({"security_group": views.groups(session, [row])[0]})


@blueprint.delete("/v2.0/security-groups/<group_id>")
def delete_group(group_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        security_groups.delete(session, caller(), group_id)
    return "", 204


@blueprint.get("/v2.0/security-group-rules")
def list_rules() -> Response:
    with cloud().sessions.begin() as session:
        groups = security_groups.visible(session, caller())
        rules = security_groups.rules(session, [g.id for g in groups])
        return jsonify(views.listing("security_group_rules",
                                     [views.rule(r) for g in groups for r in rules[g.id]]))


@blueprint.post("/v2.0/security-group-rules")
def create_rule() -> tuple[Response, int]:
    data = body("security_group_rule", (
        "security_group_id", "direction", "ethertype", "protocol", "port_range_min",
        "port_range_max", "remote_ip_prefix", "remote_group_id", "description", "project_id",
        "tenant_id", "remote_address_group_id"))
    with cloud().sessions.begin() as session:
        rule = security_groups.add_rule(session, caller(), data)
        return jsonify({"security_group_rule": views.rule(rule)}), 201


@blueprint.get("/v2.0/security-group-rules/<rule_id>")
def show_rule(rule_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"security_group_rule": views.shown(views.rule(
            security_groups.get_rule(session, caller(), rule_id)))})


@blueprint.delete("/v2.0/security-group-rules/<rule_id>")
def delete_rule(rule_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        session.delete(security_groups.get_rule(session, caller(), rule_id))
    return "", 204
