"""``/v1/flavors``."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud, require_admin
from cloud_manager.api.schemas import FlavorCreate, parse_body, parse_query
from cloud_manager.services import flavors


@blueprint.get("/flavors")
def list_flavors() -> Response:
    parse_query(set())
    with cloud().sessions() as session:
        return jsonify({"flavors": [views.flavor(f)
                                    for f in flavors.visible(session, caller())]})


@blueprint.post("/flavors")
def create_flavor() -> tuple[Response, int]:
    require_admin()
    body = parse_body(FlavorCreate)
    with cloud().sessions.begin() as session:
        flavor = flavors.create(session, name=body.name, vcpus=body.vcpus,
                                memory_mb=body.memory_mb, disk_gb=body.disk_gb,
                                flavor_id=body.id, is_public=body.is_public)
        return jsonify({"flavor": views.flavor(flavor)}), 201


@blueprint.get("/flavors/<ref>")
def show_flavor(ref: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"flavor": views.flavor(flavors.get(session, caller(), ref))})


@blueprint.delete("/flavors/<ref>")
def delete_flavor(ref: str) -> tuple[str, int]:
    principal = require_admin()
    with cloud().sessions.begin() as session:
        flavors.delete(session, principal, ref)
    return "", 204
