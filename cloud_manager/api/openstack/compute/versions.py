"""Version documents: ``/compute`` (every version) and ``/compute/v2.1`` (this one)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from cloud_manager.api.openstack.common import base_url
from cloud_manager.api.openstack.compute import MAX_VERSION, MIN_VERSION, blueprint


def _v21() -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT", "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
            "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base_url()}/compute/v2.1/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@blueprint.get("")
@blueprint.get("/")
def versions() -> Response:
    doc = _v21()
    doc.pop("media-types")
    doc["links"] = doc["links"][:1]
    return jsonify({"versions": [doc]})


@blueprint.get("/v2.1")
@blueprint.get("/v2.1/")
def version() -> Response:
    return jsonify({"version": _v21()})
