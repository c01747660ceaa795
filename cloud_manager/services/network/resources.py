"""Networks, subnets and ports of a project: who sees what, and the rules Neutron keeps.

A project sees its own networks and every shared one; the admin sees all. A
network with ports cannot be deleted (409 NetworkInUse), nor a subnet with
allocated addresses (409 SubnetInUse). Each port's address comes from ``ipam``.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import IpAllocation, Network, Port, Subnet
from cloud_manager.errors import BadInput, Conflict, Forbidden, NotFound
from cloud_manager.services.network import ipam, quotas, security_groups

COMPUTE_OWNER = "compute:"  # device_owner prefix of ports the Compute API makes


# --- networks -----------------------------------------------------------------------------


def visible_networks(session: Session, principal: Principal) -> list[Network]:
    query = sa.select(Network).order_by(Network.created_at, Network.id)
    if not principal.is_admin:
        query = query.where(sa.or_(Network.project_id == principal.project_id,
                                   Network.shared.is_(True)))
    return list(session.scalars(query))


def network(session: Session, principal: Principal, network_id: str, *,
            write: bool = False) -> Network:
    """A network the caller sees; ``write``: one it may change (its own, or any for the
    admin); a shared network of another project is 404 to a writer, as in Neutron."""
    found = session.get(Network, network_id)
    if found is not None and (principal.is_admin or found.project_id == principal.project_id
                              or (found.shared and not write)):
        return found
    raise NotFound(f"Network {network_id} could not be found.")


def create_network(session: Session, principal: Principal, *, name: str, description: str,
                   admin_state_up: bool, shared: bool, external: bool, mtu: int | None,
                   project_id: str | None) -> Network:
    if (shared or external or (project_id not in (None, principal.project_id))) \
            and not principal.is_admin:
        raise Forbidden("(rule:create_network:shared) is disallowed by policy")
    owner = project_id or principal.project_id
    quotas.check(session, owner, "network")
    row = Network(id=str(uuid.uuid4()), project_id=owner, name=name, description=description,
                  admin_state_up=admin_state_up, shared=shared, external=external,
                  mtu=mtu or 1450)
    session.add(row)
    session.flush()
    return row


def delete_network(session: Session, principal: Principal, network_id: str) -> None:
    row = network(session, principal, network_id, write=True)
    ports = list(session.scalars(sa.select(Port).where(Port.network_id == row.id)))
    if ports:
        raise Conflict(f"Unable to complete operation on network {row.id}. There are one or "
                       f"more ports still in use on the network.")
    for subnet in subnets_of(session, [row.id]).get(row.id, []):
        session.delete(subnet)
    session.flush()
    session.delete(row)


def subnets_of(session: Session, network_ids: list[str]) -> dict[str, list[Subnet]]:
    out: dict[str, list[Subnet]] = {n: [] for n in network_ids}
    if network_ids:
        for s in session.scalars(sa.select(Subnet).where(Subnet.network_id.in_(network_ids))
                                 .order_by(Subnet.created_at, Subnet.id)):
            out[s.network_id].append(s)
    return out


# --- subnets ------------------------------------------------------------------------------


def visible_subnets(session: Session, principal: Principal) -> list[Subnet]:
    ids = [n.id for n in visible_networks(session, principal)]
    return [s for group in subnets_of(session, ids).values() for s in group]


def subnet(session: Session, principal: Principal, subnet_id: str, *,
           write: bool = False) -> Subnet:
    found = session.get(Subnet, subnet_id)
    if found is not None:
        try:
            network(session, principal, found.network_id, write=write)
            return found
        except NotFound:
            pass
    raise NotFound(f"Subnet {subnet_id} could not be found.")


def create_subnet(session: Session, principal: Principal, data: dict[str, Any]) -> Subnet:
    net_id = data.get("network_id")
    if not isinstance(net_id, str):
        raise BadInput("Invalid input for network_id: a network id is required",
                       field="network_id")
    net = network(session, principal, net_id, write=True)
    if data.get("ip_version", 4) != 4:
        raise BadInput("Invalid input for ip_version: only 4 is supported", field="ip_version")
    cidr = ipam.parse_cidr(data.get("cidr"))
    for other in subnets_of(session, [net.id])[net.id]:
        if ipaddress.ip_network(other.cidr).overlaps(cidr):
            raise BadInput(f"Invalid input for operation: Requested subnet with cidr: {cidr} "
                           f"for network: {net.id} overlaps with another subnet.",
                           field="cidr")
    gateway = ipam.gateway(cidr, data.get("gateway_ip"), "gateway_ip" in data)
    pools = ipam.pools(cidr, data.get("allocation_pools"), gateway)
    dns = data.get("dns_nameservers", [])
    if not isinstance(dns, list) or not all(_is_ip(d) for d in dns):
        raise BadInput("Invalid input for dns_nameservers: a list of IP addresses",
                       field="dns_nameservers")
    quotas.check(session, net.project_id, "subnet")
    row = Subnet(id=str(uuid.uuid4()), network_id=net.id, project_id=net.project_id,
                 name=str(data.get("name") or ""), description=str(data.get("description") or ""),
                 ip_version=4, cidr=str(cidr), gateway_ip=gateway,
                 enable_dhcp=bool(data.get("enable_dhcp", True)), allocation_pools=pools,
                 dns_nameservers=dns)
    session.add(row)
    session.flush()
    return row


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        return False
    return True


def delete_subnet(session: Session, principal: Principal, subnet_id: str) -> None:
    row = subnet(session, principal, subnet_id, write=True)
    if ipam.used(session, row.id):
        raise Conflict(f"Unable to complete operation on subnet {row.id}: One or more ports "
                       f"have an IP allocation from this subnet.")
    session.delete(row)


# --- ports --------------------------------------------------------------------------------


def visible_ports(session: Session, principal: Principal) -> list[Port]:
    query = sa.select(Port).order_by(Port.created_at, Port.id)
    if not principal.is_admin:
        query = query.where(Port.project_id == principal.project_id)
    return list(session.scalars(query))


def port(session: Session, principal: Principal, port_id: str) -> Port:
    found = session.get(Port, port_id)
    if found is None or (found.project_id != principal.project_id and not principal.is_admin):
        raise NotFound(f"Port {port_id} could not be found.")
    return found


def addresses(session: Session, port_ids: list[str]) -> dict[str, list[IpAllocation]]:
    out: dict[str, list[IpAllocation]] = {p: [] for p in port_ids}
    if port_ids:
        for a in session.scalars(sa.select(IpAllocation).where(
                IpAllocation.port_id.in_(port_ids)).order_by(IpAllocation.ip_address)):
            out[a.port_id].append(a)
    return out


def _mac() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def create_port(session: Session, principal: Principal, *, network_id: str, name: str = "",
                description: str = "", fixed_ips: list[dict[str, Any]] | None = None,
                security_groups: list[str] | None = None, device_id: str = "",
                device_owner: str = "", admin_state_up: bool = True,
                mac_address: str | None = None, auto_delete: bool = False) -> Port:
    """A port on a network the caller sees, with one address from each subnet asked for
    (``fixed_ips``) or from the network's first subnet that has one free."""
    net = network(session, principal, network_id)
    if device_owner.startswith("network:") and not principal.is_admin:
        raise Forbidden("(rule:create_port:device_owner) is disallowed by policy")
    owner = principal.project_id
    quotas.check(session, owner, "port")
    groups = [security_groups_id(session, principal, g) for g in
              (security_groups if security_groups is not None else ["default"])]
    row = Port(id=str(uuid.uuid4()), network_id=net.id, project_id=owner, name=name,
               description=description, mac_address=mac_address or _mac(),
               admin_state_up=admin_state_up, device_id=device_id, device_owner=device_owner,
               security_group_ids=groups, auto_delete=auto_delete)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(f"Unable to complete operation for network {net.id}. The mac address "
                       f"{row.mac_address} is in use.", field="mac_address") from None
    subnets = subnets_of(session, [net.id])[net.id]
    if fixed_ips:
        for index, wanted in enumerate(fixed_ips):
            if not isinstance(wanted, dict) or not set(wanted) <= {"subnet_id", "ip_address"}:
                raise BadInput(f"Invalid input for fixed_ips.{index}: {{subnet_id, "
                               f"ip_address}}", field="fixed_ips")
            target = _subnet_for(subnets, wanted, net.id)
            ipam.allocate(session, target, row.id, wanted.get("ip_address"))
    elif subnets:
        _first_free(session, subnets, row.id, net.id)
    return row


def _subnet_for(subnets: list[Subnet], wanted: dict[str, Any], network_id: str) -> Subnet:
    if "subnet_id" in wanted:
        for s in subnets:
            if s.id == wanted["subnet_id"]:
                return s
        raise BadInput(f"Invalid input for fixed_ips: subnet {wanted['subnet_id']} is not on "
                       f"network {network_id}", field="fixed_ips.subnet_id")
    address = wanted.get("ip_address")
    for s in subnets:
        if _is_ip(address) and ipaddress.ip_address(address) in ipaddress.ip_network(s.cidr):
            return s
    raise BadInput(f"Invalid input for fixed_ips: {address} is in no subnet of network "
                   f"{network_id}", field="fixed_ips.ip_address")


def _first_free(session: Session, subnets: list[Subnet], port_id: str, network_id: str) -> None:
    for s in subnets:
        try:
            with session.begin_nested():
                ipam.allocate(session, s, port_id)
            return
        except ipam.NoMoreAddresses:
            continue
    raise ipam.NoMoreAddresses(f"No more IP addresses available on network {network_id}.")


def security_groups_id(session: Session, principal: Principal, ref: str) -> str:
    return security_groups.by_name_or_id(session, principal, ref).id


def delete_port(session: Session, principal: Principal, port_id: str) -> None:
    session.delete(port(session, principal, port_id))
