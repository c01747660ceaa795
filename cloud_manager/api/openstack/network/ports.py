"""``/network/v2.0/ports``: a project's ports, each with its address from IPAM."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import caller, cloud
from cloud_manager.api.openstack.network import blueprint, views
from cloud_manager.api.openstack.network.common import body
from cloud_manager.errors import BadInput, Conflict
from cloud_manager.services.network import resources

_KEYS = ("name", "description", "network_id", "admin_state_up", "fixed_ips",
         "security_groups", "device_id", "device_owner", "mac_address", "project_id",
         "tenant_id", "tags", "port_security_enabled", "binding:vnic_type")


def _strings(data: dict, key: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"Invalid input for {key}: a list of ids", field=f"port.{key}")
    return value


@blueprint.get("/v2.0/ports")
def list_ports() -> Response:
    with cloud().sessions() as session:
        rows = resources.visible_ports(session, caller())
        return jsonify(views.listing("ports", views.ports(session, rows)))


@blueprint.post("/v2.0/ports")
def create_port() -> tuple[Response, int]:
    data = body("port", _KEYS)
    if not isinstance(data.get("network_id"), str):
        raise BadInput("Invalid input for network_id: required", field="port.network_id")
    fixed = data.get("fixed_ips")
    if fixed is not None and not isinstance(fixed, list):
        raise BadInput("Invalid input for fixed_ips: a list", field="port.fixed_ips")
    mac = data.get("mac_address")
    if mac is not None and (not isinstance(mac, str) or len(mac) != 17):
        raise BadInput(f"Invalid input for mac_address: '{mac}'", field="port.mac_address")
    if data.get("binding:vnic_type", "normal") != "normal":
        raise BadInput("Invalid input for binding:vnic_type: only 'normal'",
                       field="port.binding:vnic_type")
    for key in ("device_id", "device_owner"):
        if key in data and not isinstance(data[key], str):
            raise BadInput(f"Invalid input for {key}: a string", field=f"port.{key}")
    if data.get("device_owner", "").startswith(resources.COMPUTE_OWNER):
        raise Conflict("ports of servers are made by the Compute API (create the server "
                       "with this network or port)", field="port.device_owner")
    with cloud().sessions.begin() as session:
        row = resources.create_port(
            session, caller(), network_id=data["network_id"], name=data.get("name", ""),
            description=data.get("description", ""), fixed_ips=fixed,
            security_groups=_strings(data, "security_groups"),
            device_id=data.get("device_id", ""), device_owner=data.get("device_owner", ""),
            admin_state_up=data.get("admin_state_up", True), mac_address=mac)
        return jsonify({"port": views.ports(session, [row])[0]}), 201


@blueprint.get("/v2.0/ports/<port_id>")
def show_port(port_id: str) -> Response:
    with cloud().sessions() as session:
        row = resources.port(session, caller(), port_id)
        return jsonify({"port": views.shown(views.ports(session, [row])[0])})


@blueprint.put("/v2.0/ports/<port_id>")
def update_port(port_id: str) -> Response:
    data = body("port", ("name", "description", "admin_state_up", "security_groups"))
    with cloud().sessions.begin() as session:
        row = resources.port(session, caller(), port_id)
        for key in ("name", "description", "admin_state_up"):
            if key in data:
                setattr(row, key, data[key])
        groups = _strings(data, "security_groups")
        if groups is not None:
            row.security_group_ids = [resources.security_groups_id(session, caller(), g)
                                      for g in groups]
        row.revision += 1
        session.flush()
        return jsonify({"port": views.ports(session, [row])[0]})


@blueprint.delete("/v2.0/ports/<port_id>")
def delete_port(port_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        resources.delete_port(session, caller(), port_id)
    return "", 204
