"""Neutron's JSON for networks, subnets, ports, security groups and rules, and what
every list shares: attribute filters, ``fields``, ``limit``/``marker`` pagination."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy.orm import Session

from cloud_manager.api.openstack.common import base_url, iso, paginate, query_int
from cloud_manager.db.models import Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from cloud_manager.services.network import resources, security_groups


def _std(row: Any) -> dict[str, Any]:
    return {"description": row.description, "tags": [], "created_at": iso(row.created_at),
            "updated_at": iso(getattr(row, "updated_at", row.created_at)),
            "revision_number": getattr(row, "revision", 0)}


def network(n: Network, subnet_ids: list[str]) -> dict[str, Any]:
    return {"id": n.id, "name": n.name, "tenant_id": n.project_id, "project_id": n.project_id,
            "admin_state_up": n.admin_state_up, "mtu": n.mtu, "status": "ACTIVE",
            "subnets": subnet_ids, "shared": n.shared, "router:external": n.external,
            "availability_zone_hints": [], "availability_zones": [],
            "ipv4_address_scope": None, "ipv6_address_scope": None,
            "port_security_enabled": True, "l2_adjacency": True, **_std(n)}


def subnet(s: Subnet) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "tenant_id": s.project_id, "project_id": s.project_id,
            "network_id": s.network_id, "ip_version": s.ip_version, "cidr": s.cidr,
            "gateway_ip": s.gateway_ip, "enable_dhcp": s.enable_dhcp,
            "allocation_pools": list(s.allocation_pools), "dns_nameservers": list(
                s.dns_nameservers), "host_routes": [], "ipv6_ra_mode": None,
            "ipv6_address_mode": None, "subnetpool_id": None, "service_types": [], **_std(s)}


def port(p: Port, ips: list[Any]) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "network_id": p.network_id, "tenant_id": p.project_id,
            "project_id": p.project_id, "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up,
            "status": "ACTIVE" if p.device_id else "DOWN",
            "device_id": p.device_id, "device_owner": p.device_owner,
            "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in ips],
            "security_groups": list(p.security_group_ids or []),
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "port_security_enabled": True,
            "binding:vnic_type": "normal", **_std(p)}


def rule(r: SecurityGroupRule) -> dict[str, Any]:
    return {"id": r.id, "tenant_id": r.project_id, "project_id": r.project_id,
            "security_group_id": r.security_group_id, "direction": r.direction,
            "ethertype": r.ethertype, "protocol": r.protocol,
            "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
            "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id,
            "remote_address_group_id": None, "normalized_cidr": r.remote_ip_prefix,
            "description": r.description, "tags": [], "created_at": iso(r.created_at),
            "updated_at": iso(r.created_at), "revision_number": 0}


def security_group(g: SecurityGroup, rules: list[SecurityGroupRule]) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "tenant_id": g.project_id, "project_id": g.project_id,
            "security_group_rules": [rule(r) for r in rules], "stateful": True, **_std(g)}


def networks(session: Session, rows: list[Network]) -> list[dict[str, Any]]:
    subnets = resources.subnets_of(session, [n.id for n in rows])
    return [network(n, [s.id for s in subnets[n.id]]) for n in rows]


def ports(session: Session, rows: list[Port]) -> list[dict[str, Any]]:
    ips = resources.addresses(session, [p.id for p in rows])
    return [port(p, ips[p.id]) for p in rows]


def groups(session: Session, rows: list[SecurityGroup]) -> list[dict[str, Any]]:
    rules = security_groups.rules(session, [g.id for g in rows])
    return [security_group(g, rules[g.id]) for g in rows]


_NOT_FILTERS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


def _matches(item: dict[str, Any], key: str, wanted: list[str]) -> bool:
    value = item.get(key)
    if isinstance(value, bool):
        return str(value).lower() in [w.lower() for w in wanted]
    if isinstance(value, list):
        return any(str(v) in wanted for v in value)
    return str(value) in wanted if value is not None else "" in wanted


def listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Neutron's list answer: filter by any attribute (repeat a key for "any of"), keep
    ``fields``, paginate; unknown attributes filter nothing out, as Neutron ignores them."""
    for key in set(request.args) - _NOT_FILTERS:
        if key in ("fixed_ips",):
            continue
        if items and key not in items[0]:
            continue
        items = [i for i in items if _matches(i, key, request.args.getlist(key))]
    page, more = paginate(items, lambda i: i["id"], query_int("limit"),
                          request.args.get("marker"))
    body: dict[str, Any] = {}
    if more and page:
        body[f"{kind}_links"] = [{"rel": "next", "href": f"{base_url()}/network/v2.0/"
                                  f"{kind.replace('_', '-')}?limit={len(page)}"
                                  f"&marker={page[-1]['id']}"}]
    fields = request.args.getlist("fields")
    if fields:
        page = [{k: v for k, v in i.items() if k in fields} for i in page]
    return {kind: page, **body}


def shown(item: dict[str, Any]) -> dict[str, Any]:
    fields = request.args.getlist("fields")
    return {k: v for k, v in item.items() if k in fields} if fields else item
