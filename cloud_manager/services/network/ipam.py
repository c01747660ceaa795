"""IPv4 address management for a subnet: pools, gateway, and atomic allocation.

An address is taken by inserting an ``ip_allocations`` row whose primary key is
(subnet, address): two requests that pick the same free address cannot both
commit, and the loser tries the next one, inside its own savepoint, so a concurrent
allocation never hands one address out twice (PostgreSQL) and SQLite serialises
writers anyway.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_manager.db.models import IpAllocation, Subnet
from cloud_manager.errors import BadInput, Conflict

MAX_PREFIX = 30  # a /31 or /32 leaves no address for a server


class NoMoreAddresses(Conflict):
    """Neutron's IpAddressGenerationFailure (409)."""


def parse_cidr(cidr: Any) -> ipaddress.IPv4Network:
    if not isinstance(cidr, str):
        raise BadInput("Invalid input for cidr: a string such as '10.0.0.0/24'", field="cidr")
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise BadInput(f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet "
                       f"({exc})", field="cidr") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise BadInput("Invalid input for cidr: only IPv4 subnets are supported", field="cidr")
    if network.prefixlen > MAX_PREFIX:
        raise BadInput(f"Invalid input for cidr: a /{network.prefixlen} has no room for "
                       f"servers (at most /{MAX_PREFIX})", field="cidr")
    return network


def _address(value: Any, network: ipaddress.IPv4Network, field: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        raise BadInput(f"Invalid input for {field}: '{value}' is not an IPv4 address",
                       field=field) from None
    if address not in network or address in (network.network_address,
                                             network.broadcast_address):
        raise BadInput(f"Invalid input for {field}: {address} is not a host address of "
                       f"{network}", field=field)
    return address


def gateway(network: ipaddress.IPv4Network, given: Any, present: bool) -> str | None:
    """The gateway: given, null (none), or by default the first host address."""
    if present and given is None:
        return None
    if not present:
        return str(network.network_address + 1)
    return str(_address(given, network, "gateway_ip"))


def pools(network: ipaddress.IPv4Network, given: Any, gateway_ip: str | None
          ) -> list[dict[str, str]]:
    """Validated allocation pools; by default every host address but the gateway."""
    if given is None:
        first, last = network.network_address + 1, network.broadcast_address - 1
        if gateway_ip is not None and ipaddress.IPv4Address(gateway_ip) == first:
            first += 1
        return [{"start": str(first), "end": str(last)}]
    if not isinstance(given, list) or not given:
        raise BadInput("Invalid input for allocation_pools: a non-empty list of "
                       "{start, end}", field="allocation_pools")
    ranges = []
    for pool in given:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise BadInput("Invalid input for allocation_pools: each pool is {start, end}",
                           field="allocation_pools")
        start = _address(pool["start"], network, "allocation_pools.start")
        end = _address(pool["end"], network, "allocation_pools.end")
        if start > end:
            raise BadInput(f"Invalid allocation pool {start}-{end}: the start is after the "
                           f"end", field="allocation_pools")
        ranges.append((start, end))
    ranges.sort()
    for (_, end_a), (start_b, _) in itertools.pairwise(ranges):
        if start_b <= end_a:
            raise BadInput("Found overlapping allocation pools", field="allocation_pools")
    if gateway_ip is not None:
        gw = ipaddress.IPv4Address(gateway_ip)
        if any(start <= gw <= end for start, end in ranges):
            raise BadInput(f"Gateway ip {gw} conflicts with allocation pool",
                           field="gateway_ip")
    return [{"start": str(s), "end": str(e)} for s, e in ranges]


def _candidates(subnet: Subnet) -> Iterator[ipaddress.IPv4Address]:
    """Pool addresses in order, lazily (a /8's pool is 16 million of them)."""
    for pool in subnet.allocation_pools:
        start, end = ipaddress.IPv4Address(pool["start"]), ipaddress.IPv4Address(pool["end"])
        for n in range(int(start), int(end) + 1):
            yield ipaddress.IPv4Address(n)


def allocate(session: Session, subnet: Subnet, port_id: str, wanted: str | None = None) -> str:
    """Take ``wanted`` (which must be free) or the lowest free pool address."""
    network = ipaddress.ip_network(subnet.cidr)
    if wanted is not None:
        address = _address(wanted, network, "fixed_ips.ip_address")
        if subnet.gateway_ip is not None and str(address) == subnet.gateway_ip:
            raise Conflict(f"IP address {address} is the gateway of subnet {subnet.id}",
                           field="fixed_ips.ip_address")
        if not _insert(session, subnet, port_id, str(address)):
            raise Conflict(f"IP address {address} already allocated in subnet {subnet.id}",
                           field="fixed_ips.ip_address")
        return str(address)
    taken = set(session.scalars(sa.select(IpAllocation.ip_address)
                                .where(IpAllocation.subnet_id == subnet.id)))
    for candidate in _candidates(subnet):
        text = str(candidate)
        if text not in taken and _insert(session, subnet, port_id, text):
            return text
    raise NoMoreAddresses(f"No more IP addresses available on network {subnet.network_id}.")


def _insert(session: Session, subnet: Subnet, port_id: str, address: str) -> bool:
    try:
        with session.begin_nested():
            session.add(IpAllocation(subnet_id=subnet.id, ip_address=address,
                                     port_id=port_id, network_id=subnet.network_id))
            session.flush()
    except IntegrityError:
        return False
    return True


def used(session: Session, subnet_id: str) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(IpAllocation)
                              .where(IpAllocation.subnet_id == subnet_id)) or 0)
