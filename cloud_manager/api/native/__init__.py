"""The native JSON API (``/v1``), one module per resource; see docs/api.md."""

from flask import Blueprint

blueprint = Blueprint("native", __name__)

from cloud_manager.api.native import (  # noqa: E402, F401
    flavors,
    hosts,
    images,
    keypairs,
    server_groups,
    servers,
)
