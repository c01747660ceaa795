"""``/network``: version discovery, extensions, networks."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import base_url, caller, cloud
from cloud_manager.api.openstack.network import blueprint, views
from cloud_manager.api.openstack.network.common import body
from cloud_manager.errors import BadInput, Forbidden, NotFound
from cloud_manager.services.network import resources

# What this cloud's Neutron subset really has (clients check before using a feature).
EXTENSIONS = (("security-group", "security-group", "The security groups extension."),
              ("quotas", "Quota management support", "Expose functions for quotas."),
              ("quota_details", "Quota details extension", "Quota usage details."),
              ("project-id", "project_id field enabled", "Extension for project_id."),
              ("external-net", "Neutron external network", "Adds external network "
               "attribute to network resource."),
              ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
              ("port-security", "Port Security", "Provides port security."),
              ("standard-attr-description", "standard-attr-description",
               "Extension to add descriptions to standard attributes"),
              ("standard-attr-timestamp", "Resource timestamps",
               "Adds created_at and updated_at fields to all Neutron resources."),
              ("standard-attr-revisions", "Resource revision numbers",
               "This extension will display the revision number of neutron resources."))


@blueprint.get("")
@blueprint.get("/")
def versions() -> Response:
    return jsonify({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{base_url()}/network/v2.0/"}]}]})


@blueprint.get("/v2.0")
@blueprint.get("/v2.0/")
def resources_index() -> Response:
    names = ("networks", "subnets", "ports", "security-groups", "security-group-rules",
             "quotas")
    return jsonify({"resources": [
        {"name": n.rstrip("s").replace("-", "_"), "collection": n.replace("-", "_"),
         "links": [{"rel": "self", "href": f"{base_url()}/network/v2.0/{n}"}]}
        for n in names]})


@blueprint.get("/v2.0/extensions")
def extensions() -> Response:
    return jsonify({"extensions": [{"alias": a, "name": n, "description": d,
                                    "updated": "2013-01-01T10:00:00-00:00", "links": []}
                                   for a, n, d in EXTENSIONS]})


@blueprint.get("/v2.0/extensions/<alias>")
def extension(alias: str) -> Response:
    for a, n, d in EXTENSIONS:
        if a == alias:
            return jsonify({"extension": {"alias": a, "name": n, "description": d,
                                          "updated": "2013-01-01T10:00:00-00:00",
                                          "links": []}})
    raise NotFound(f"Extension with alias {alias} does not exist")


_NETWORK_KEYS = ("name", "description", "admin_state_up", "shared", "router:external", "mtu",
                 "project_id", "tenant_id", "port_security_enabled", "tags",
                 "availability_zone_hints")


@blueprint.get("/v2.0/networks")
def list_networks() -> Response:
    with cloud().sessions() as session:
        rows = resources.visible_networks(session, caller())
        return jsonify(views.listing("networks", views.networks(session, rows)))


@blueprint.post("/v2.0/networks")
def create_network() -> tuple[Response, int]:
    data = body("network", _NETWORK_KEYS)
    mtu = data.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)
                            or not 68 <= mtu <= 9000):
        raise BadInput(f"Invalid input for mtu. Reason: '{mtu}' is not in range 68..9000",
                       field="network.mtu")
    if data.get("port_security_enabled") is False:
        raise BadInput("Invalid input for port_security_enabled: every port is filtered "
                       "here", field="network.port_security_enabled")
    with cloud().sessions.begin() as session:
        row = resources.create_network(
            session, caller(), name=data.get("name", ""),
            description=data.get("description", ""),
            admin_state_up=data.get("admin_state_up", True), shared=data.get("shared", False),
            external=data.get("router:external", False), mtu=mtu,
            project_id=data.get("project_id", data.get("tenant_id")))
        return jsonify({"network": views.networks(session, [row])[0]}), 201


@blueprint.get("/v2.0/networks/<network_id>")
def show_network(network_id: str) -> Response:
    with cloud().sessions() as session:
        row = resources.network(session, caller(), network_id)
        return jsonify({"network": views.shown(views.networks(session, [row])[0])})


@blueprint.put("/v2.0/networks/<network_id>")
def update_network(network_id: str) -> Response:
    data = body("network", ("name", "description", "admin_state_up", "shared", "mtu"))
    with cloud().sessions.begin() as session:
        row = resources.network(session, caller(), network_id, write=True)
        if "shared" in data and not caller().is_admin:
            raise Forbidden("(rule:update_network:shared) is disallowed by policy")
        for key in ("name", "description", "admin_state_up", "shared", "mtu"):
            if key in data:
                setattr(row, key, data[key])
        row.revision += 1
        session.flush()
        return jsonify({"network": views.networks(session, [row])[0]})


@blueprint.delete("/v2.0/networks/<network_id>")
def delete_network(network_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        resources.delete_network(session, caller(), network_id)
    return "", 204
