"""The OpenStack-compatible APIs, each a blueprint under its own path (as devstack
serves them): ``/identity`` (Keystone v3), ``/compute`` (Nova v2.1), ``/image``
(Glance v2) and ``/network`` (Neutron v2.0). The service catalog
(``cloud_manager.identity.catalog``) points clients at them, so openstacksdk and
the ``openstack`` CLI need nothing but an auth URL.
"""

from __future__ import annotations

from flask import Flask, Request

from cloud_manager.api.openstack import compute, identity, image, network

# Version documents and the sign-in itself need no token.
_PUBLIC_PATHS = {"/identity", "/identity/", "/identity/v3", "/identity/v3/",
                 "/compute", "/compute/", "/compute/v2.1", "/compute/v2.1/",
                 "/image", "/image/", "/image/versions",
                 "/network", "/network/", "/network/v2.0", "/network/v2.0/"}


def is_public(request: Request) -> bool:
    if request.path in _PUBLIC_PATHS:
        return True
    return request.path.rstrip("/") == "/identity/v3/auth/tokens" and request.method == "POST"


def register(app: Flask) -> None:
    app.register_blueprint(identity.blueprint, url_prefix="/identity")
    app.register_blueprint(compute.blueprint, url_prefix="/compute")
    app.register_blueprint(image.blueprint, url_prefix="/image")
    app.register_blueprint(network.blueprint, url_prefix="/network")
