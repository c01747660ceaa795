"""``/network/v2.0/subnets``: IPv4 subnets, their gateway and allocation pools."""

from __future__ import annotations

import ipaddress

from flask import Response, jsonify

from cloud_manager.api.openstack.common import caller, cloud
from cloud_manager.api.openstack.network import blueprint, views
from cloud_manager.api.openstack.network.common import body
from cloud_manager.errors import BadInput
from cloud_manager.services.network import ipam, resources

_KEYS = ("name", "description", "network_id", "ip_version", "cidr", "gateway_ip",
         "enable_dhcp", "allocation_pools", "dns_nameservers", "host_routes", "project_id",
         "tenant_id", "tags", "subnetpool_id", "ipv6_ra_mode", "ipv6_address_mode")


@blueprint.get("/v2.0/subnets")
def list_subnets() -> Response:
    with cloud().sessions() as session:
        rows = resources.visible_subnets(session, caller())
        return jsonify(views.listing("subnets", [views.subnet(s) for s in rows]))


@blueprint.post("/v2.0/subnets")
def create_subnet() -> tuple[Response, int]:
    data = body("subnet", _KEYS)
    if data.get("host_routes") or data.get("subnetpool_id") or data.get("ipv6_ra_mode") \
            or data.get("ipv6_address_mode"):
        raise BadInput("Invalid input: host routes, subnet pools and IPv6 modes are not "
                       "supported", field="subnet")
    if data.get("ip_version", 4) != 4:
        raise BadInput("Invalid input for ip_version: only 4 is supported",
                       field="subnet.ip_version")
    with cloud().sessions.begin() as session:
        row = resources.create_subnet(session, caller(), data)
        return jsonify({"subnet": views.subnet(row)}), 201


@blueprint.get("/v2.0/subnets/<subnet_id>")
def show_subnet(subnet_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"subnet": views.shown(views.subnet(
            resources.subnet(session, caller(), subnet_id)))})


@blueprint.put("/v2.0/subnets/<subnet_id>")
def update_subnet(subnet_id: str) -> Response:
    data = body("subnet", ("name", "description", "enable_dhcp", "dns_nameservers",
                           "gateway_ip"))
    with cloud().sessions.begin() as session:
        row = resources.subnet(session, caller(), subnet_id, write=True)
        for key in ("name", "description", "enable_dhcp"):
            if key in data:
                setattr(row, key, data[key])
        if "dns_nameservers" in data:
            if not isinstance(data["dns_nameservers"], list):
                raise BadInput("Invalid input for dns_nameservers", field="dns_nameservers")
            row.dns_nameservers = data["dns_nameservers"]
        if "gateway_ip" in data:
            network = ipaddress.ip_network(row.cidr)
            gateway = ipam.gateway(network, data["gateway_ip"], True)
            ipam.pools(network, row.allocation_pools, gateway)  # must stay outside them
            row.gateway_ip = gateway
        row.revision += 1
        session.flush()
        return jsonify({"subnet": views.subnet(row)})


@blueprint.delete("/v2.0/subnets/<subnet_id>")
def delete_subnet(subnet_id: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        resources.delete_subnet(session, caller(), subnet_id)
    return "", 204
