"""Image v2 (Glance's API, the subset in docs/openstack-api.md): ``/image``, over the
image store (``services.images``), which owns the records and the bytes."""

from flask import Blueprint

blueprint = Blueprint("image", __name__)

from cloud_manager.api.openstack.image import images  # noqa: E402, F401
