"""Network v2.0 (Neutron's API, the subset in docs/openstack-api.md): ``/network``."""

from flask import Blueprint

blueprint = Blueprint("network", __name__)

from cloud_manager.api.openstack.network import (  # noqa: E402, F401
    networks,
    ports,
    quotas,
    security_groups,
    subnets,
)
