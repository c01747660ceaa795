"""A server's ports: the networks a create asks for, their addresses, their release.

As Nova 2.1 does with Neutron: each requested network gets a new port (owned by
``compute:<zone>``) with an address from the network's subnets; a requested port
is bound as it is; no ``networks`` means the project's only network when it sees
exactly one, none when it sees none, and a 409 when the choice is ambiguous. It
all happens in the transaction that writes the servers, so a create that fails
(no address left, a quota) leaves no port behind. Deleting the server deletes the
ports made for it and frees the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import Instance, Network, Port, SecurityGroup
from cloud_manager.errors import BadInput, Conflict
from cloud_manager.services.network import resources


@dataclass(frozen=True)
class Wanted:
    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None


@dataclass(frozen=True)
class NetworkRequest:
    """``auto``: no networks named (Nova's default); ``wanted`` empty with ``auto``
    False: none at all (``"none"``)."""

    wanted: list[Wanted] = field(default_factory=list)
    groups: list[str] = field(default_factory=lambda: ["default"])
    auto: bool = True


def parse_request(networks: Any, groups: Any) -> NetworkRequest:
    names = _groups(groups)
    if networks is None or networks == "auto":
        return NetworkRequest(groups=names)
    if networks == "none":
        return NetworkRequest(groups=names, auto=False)
    if not isinstance(networks, list):
        raise BadInput("Invalid input for field/attribute networks: a list of {uuid, port, "
                       "fixed_ip}", field="server.networks")
    wanted = []
    for index, item in enumerate(networks):
        path = f"server.networks.{index}"
        if not isinstance(item, dict) or not set(item) <= {"uuid", "port", "fixed_ip", "tag"}:
            raise BadInput(f"Invalid input for field/attribute {path}: an object with 'uuid' "
                           f"or 'port' (and maybe 'fixed_ip')", field=path)
        if bool(item.get("uuid")) == bool(item.get("port")):
            raise BadInput(f"Invalid input for field/attribute {path}: give one of 'uuid' "
                           f"or 'port'", field=path)
        for key in ("uuid", "port", "fixed_ip"):
            if key in item and not isinstance(item[key], str):
                raise BadInput(f"Invalid input for field/attribute {path}.{key}: a string",
                               field=f"{path}.{key}")
        if item.get("port") and item.get("fixed_ip"):
            raise BadInput(f"Invalid input for field/attribute {path}: a port already has "
                           f"its address; fixed_ip goes with uuid", field=path)
        wanted.append(Wanted(item.get("uuid"), item.get("port"), item.get("fixed_ip")))
    return NetworkRequest(wanted=wanted, groups=names, auto=False)


def _groups(groups: Any) -> list[str]:
    if groups is None:
        return ["default"]
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups):
        raise BadInput("Invalid input for field/attribute security_groups: a list of "
                       "{name}", field="server.security_groups")
    return [g["name"] for g in groups] or ["default"]


def check(session: Session, principal: Principal, request: NetworkRequest, count: int) -> None:
    """What can be checked before anything is written (a port for several servers...)."""
    for wanted in request.wanted:
        if wanted.port_id is not None:
            if count > 1:
                raise BadInput("Unable to launch multiple instances with a single configured "
                               "port ID.", field="server.networks")
            found = resources.port(session, principal, wanted.port_id)
            if found.device_id:
                raise Conflict(f"Port {found.id} is still in use.", field="server.networks")
        elif wanted.network_id is not None:
            resources.network(session, principal, wanted.network_id)
        if wanted.fixed_ip is not None and count > 1:
            raise BadInput("Unable to launch multiple instances with a single fixed IP.",
                           field="server.networks")
    for name in request.groups:
        resources.security_groups_id(session, principal, name)


def allocate(session: Session, principal: Principal, instances: list[Instance],
             request: NetworkRequest) -> None:
    wanted = request.wanted
    if request.auto:
        networks = resources.visible_networks(session, principal)
        own = [n for n in networks if not n.external]
        if len(own) > 1:
            raise Conflict("Multiple possible networks found, use a Network ID to be more "
                           "specific.", field="server.networks")
        wanted = [Wanted(network_id=n.id) for n in own]
    for instance in instances:
        owner = f"compute:{instance.group_name or 'nova'}"
        for item in wanted:
            if item.port_id is not None:
                found = resources.port(session, principal, item.port_id)
                found.device_id, found.device_owner = instance.id, owner
                continue
            assert item.network_id is not None
            fixed = [{"ip_address": item.fixed_ip}] if item.fixed_ip else None
            resources.create_port(session, principal, network_id=item.network_id,
                                  fixed_ips=fixed, security_groups=request.groups,
                                  device_id=instance.id, device_owner=owner,
                                  auto_delete=True)


def release(session: Session, instance_ids: list[str]) -> None:
    """The server is gone: ports made for it go, ports given to it are free again."""
    if not instance_ids:
        return
    for found in session.scalars(sa.select(Port).where(Port.device_id.in_(instance_ids))):
        if found.auto_delete:
            session.delete(found)
        else:
            found.device_id, found.device_owner = "", ""
    session.flush()


def addresses(session: Session, instance_ids: list[str]
              ) -> dict[str, tuple[dict[str, list[dict[str, Any]]], list[str]]]:
    """Per server: Nova's ``addresses`` (by network name) and its security group names."""
    if not instance_ids:
        return {}
    ports = list(session.scalars(sa.select(Port).where(Port.device_id.in_(instance_ids))
                                 .order_by(Port.created_at, Port.id)))
    if not ports:
        return {}
    nets = {n.id: n.name or n.id for n in session.scalars(
        sa.select(Network).where(Network.id.in_({p.network_id for p in ports})))}
    group_ids = {g for p in ports for g in (p.security_group_ids or [])}
    group_names = {g.id: g.name for g in session.scalars(
        sa.select(SecurityGroup).where(SecurityGroup.id.in_(group_ids)))} if group_ids else {}
    ips = resources.addresses(session, [p.id for p in ports])
    out: dict[str, tuple[dict[str, list[dict[str, Any]]], list[str]]] = {}
    for p in ports:
        by_net, groups = out.setdefault(p.device_id, ({}, []))
        entries = by_net.setdefault(nets.get(p.network_id, p.network_id), [])
        entries.extend({"version": 4, "addr": a.ip_address, "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": p.mac_address} for a in ips[p.id])
        for g in p.security_group_ids or []:
            name = group_names.get(g)
            if name and name not in groups:
                groups.append(name)
    return out
