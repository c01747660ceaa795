"""The service catalog: where each API lives, as a token's body lists it.

Every API is served by the Cloud Manager on one port, under a path per service
(as devstack lays them out), so the catalog is computed from one base URL: the
``[identity] public_url`` option, or else the URL the client reached us by (the
all-in-one listens on a port chosen at start). Ids are derived from the service
names, so every process and every restart hands out the same catalog.
"""

from __future__ import annotations

import uuid
from typing import Any

_NS = uuid.UUID("0b6f3a1e-7c2d-4e55-9a61-3f8f0e2d9c47")

# (type, name, path under the base URL). Only what is served: a client that finds a
# service here expects it to answer.
SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/network"),
    ("cloud", "ironbark", "/v1"),
)
INTERFACES = ("public", "internal", "admin")


def _id(*parts: str) -> str:
    return uuid.uuid5(_NS, "/".join(parts)).hex


def catalog(base_url: str, region: str) -> list[dict[str, Any]]:
    base = base_url.rstrip("/")
    return [
        {"type": kind, "name": name, "id": _id(kind),
         "endpoints": [{"id": _id(kind, interface), "interface": interface,
                        "region": region, "region_id": region, "url": base + path}
                       for interface in INTERFACES]}
        for kind, name, path in SERVICES
    ]


def endpoint(base_url: str, kind: str) -> str:
    """The URL of one service (the native API finds the others this way in tests)."""
    for service_kind, _, path in SERVICES:
        if service_kind == kind:
            return base_url.rstrip("/") + path
    raise KeyError(kind)
