"""Version discovery: ``/identity`` (300, the list) and ``/identity/v3`` (200)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from cloud_manager.api.openstack.common import base_url
from cloud_manager.api.openstack.identity import blueprint

VERSION = "v3.14"


def _v3() -> dict[str, Any]:
    return {"id": VERSION, "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base_url()}/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@blueprint.get("")
@blueprint.get("/")
def versions() -> tuple[Response, int]:
    return jsonify({"versions": {"values": [_v3()]}}), 300


@blueprint.get("/v3")
@blueprint.get("/v3/")
def version_v3() -> Response:
    return jsonify({"version": _v3()})
