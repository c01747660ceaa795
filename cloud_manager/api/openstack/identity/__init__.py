"""Identity v3 (Keystone's API, the subset in docs/openstack-api.md): ``/identity``."""

from flask import Blueprint

blueprint = Blueprint("identity", __name__)

from cloud_manager.api.openstack.identity import admin, auth, versions  # noqa: E402, F401
