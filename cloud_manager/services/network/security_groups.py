"""Security groups and their rules; every project has a ``default`` group, made the
first time the project's groups are needed (as Neutron does), with Neutron's
default rules: all egress, and ingress from members of the same group."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import Port, SecurityGroup, SecurityGroupRule
from cloud_manager.errors import BadInput, Conflict, NotFound
from cloud_manager.services.network import quotas

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}


def default_group(session: Session, project_id: str) -> SecurityGroup:
    found = session.scalars(sa.select(SecurityGroup).where(
        SecurityGroup.project_id == project_id, SecurityGroup.name == "default")).first()
    if found is not None:
        return found
    group = SecurityGroup(id=str(uuid.uuid4()), project_id=project_id, name="default",
                          description="Default security group")
    session.add(group)
    session.flush()
    for direction, ethertype in (("egress", "IPv4"), ("egress", "IPv6"),
                                 ("ingress", "IPv4"), ("ingress", "IPv6")):
        session.add(SecurityGroupRule(
            id=str(uuid.uuid4()), security_group_id=group.id, project_id=project_id,
            direction=direction, ethertype=ethertype, protocol=None, port_range_min=None,
            port_range_max=None, remote_ip_prefix=None,
            remote_group_id=group.id if direction == "ingress" else None))
    session.flush()
    return group


def visible(session: Session, principal: Principal) -> list[SecurityGroup]:
    default_group(session, principal.project_id)
    query = sa.select(SecurityGroup).order_by(SecurityGroup.created_at, SecurityGroup.id)
    if not principal.is_admin:
        query = query.where(SecurityGroup.project_id == principal.project_id)
    return list(session.scalars(query))


def get(session: Session, principal: Principal, group_id: str) -> SecurityGroup:
    group = session.get(SecurityGroup, group_id)
    if group is None or (group.project_id != principal.project_id and not principal.is_admin):
        raise NotFound(f"Security group {group_id} could not be found.")
    return group


def by_name_or_id(session: Session, principal: Principal, ref: str) -> SecurityGroup:
    default_group(session, principal.project_id)
    found = session.get(SecurityGroup, ref)
    if found is not None and found.project_id == principal.project_id:
        return found
    named = list(session.scalars(sa.select(SecurityGroup).where(
        SecurityGroup.project_id == principal.project_id, SecurityGroup.name == ref)))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise Conflict(f"Multiple security groups named '{ref}': use its id")
    raise BadInput(f"Security group {ref} not found.", field="security_groups")


def rules(session: Session, group_ids: list[str]) -> dict[str, list[SecurityGroupRule]]:
    out: dict[str, list[SecurityGroupRule]] = {g: [] for g in group_ids}
    if group_ids:
        for rule in session.scalars(sa.select(SecurityGroupRule).where(
                SecurityGroupRule.security_group_id.in_(group_ids))
                .order_by(SecurityGroupRule.created_at, SecurityGroupRule.id)):
            out[rule.security_group_id].append(rule)
    return out


def create(session: Session, principal: Principal, name: str, description: str) -> SecurityGroup:
    default_group(session, principal.project_id)
    if name == "default":
        raise Conflict("Default security group already exists.", field="name")
    quotas.check(session, principal.project_id, "security_group")
    group = SecurityGroup(id=str(uuid.uuid4()), project_id=principal.project_id, name=name,
                          description=description)
    session.add(group)
    session.flush()
    for ethertype in ("IPv4", "IPv6"):  # Neutron gives a new group the two egress rules
        session.add(SecurityGroupRule(id=str(uuid.uuid4()), security_group_id=group.id,
                                      project_id=principal.project_id, direction="egress",
                                      ethertype=ethertype, protocol=None, port_range_min=None,
                                      port_range_max=None, remote_ip_prefix=None,
                                      remote_group_id=None))
    session.flush()
    return group


def delete(session: Session, principal: Principal, group_id: str) -> None:
    group = get(session, principal, group_id)
    if group.name == "default" and not principal.is_admin:
        raise Conflict("Removing default security group not allowed.")
    in_use = [p.id for p in session.scalars(sa.select(Port).where(
        Port.project_id == group.project_id)) if group.id in (p.security_group_ids or [])]
    if in_use:
        raise Conflict(f"Security Group {group_id} in use (by port {in_use[0]}).")
    session.delete(group)


def add_rule(session: Session, principal: Principal, data: dict[str, Any]) -> SecurityGroupRule:
    group = get(session, principal, str(data.get("security_group_id", "")))
    direction = data.get("direction")
    if direction not in ("ingress", "egress"):
        raise BadInput(f"Invalid input for direction. Reason: '{direction}' is not in "
                       f"['ingress', 'egress'].", field="direction")
    ethertype = data.get("ethertype", "IPv4")
    if ethertype not in ("IPv4", "IPv6"):
        raise BadInput(f"Invalid input for ethertype: '{ethertype}'", field="ethertype")
    protocol = data.get("protocol")
    if protocol is not None:
        protocol = str(protocol).lower()
        if protocol not in PROTOCOLS and not (protocol.isdigit() and 0 <= int(protocol) <= 255):
            raise BadInput(f"Security group rule protocol {protocol} not supported.",
                           field="protocol")
    low, high = data.get("port_range_min"), data.get("port_range_max")
    for name, value in (("port_range_min", low), ("port_range_max", high)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= 65535):
            raise BadInput(f"Invalid value for port {value}", field=name)
    if (low is not None or high is not None) and protocol not in ("tcp", "udp", "sctp", "6",
                                                                  "17", "132", "icmp", "1"):
        raise BadInput("Must also specify protocol if port range is given.", field="protocol")
    if low is not None and high is not None and low > high and protocol not in ("icmp", "1"):
        raise BadInput("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                       field="port_range_min")
    prefix, remote = data.get("remote_ip_prefix"), data.get("remote_group_id")
    if prefix is not None and remote is not None:
        raise BadInput("Only remote_ip_prefix or remote_group_id may be provided.",
                       field="remote_ip_prefix")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise BadInput(f"Invalid input for remote_ip_prefix: '{prefix}'",
                           field="remote_ip_prefix") from None
        if (net.version == 4) != (ethertype == "IPv4"):
            raise BadInput(f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                           field="remote_ip_prefix")
        prefix = str(net)
    if remote is not None:
        get(session, principal, str(remote))
    quotas.check(session, group.project_id, "security_group_rule")
    for existing in rules(session, [group.id])[group.id]:
        if (existing.direction, existing.ethertype, existing.protocol, existing.port_range_min,
                existing.port_range_max, existing.remote_ip_prefix, existing.remote_group_id) \
                == (direction, ethertype, protocol, low, high, prefix, remote):
            raise Conflict(f"Security group rule already exists. Rule id is {existing.id}.")
    rule = SecurityGroupRule(id=str(uuid.uuid4()), security_group_id=group.id,
                             project_id=group.project_id, direction=direction,
                             ethertype=ethertype, protocol=protocol, port_range_min=low,
                             port_range_max=high, remote_ip_prefix=prefix,
                             remote_group_id=remote,
                             description=str(data.get("description") or ""))
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, principal: Principal, rule_id: str) -> SecurityGroupRule:
    rule = session.get(SecurityGroupRule, rule_id)
    if rule is None or (rule.project_id != principal.project_id and not principal.is_admin):
        raise NotFound(f"Security group rule {rule_id} could not be found.")
    return rule
