"""``/v1/images`` (read-only here; uploads come with the image store issue)."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.schemas import parse_query
from cloud_manager.services import images


@blueprint.get("/images")
def list_images() -> Response:
    parse_query(set())
    with cloud().sessions() as session:
        return jsonify({"images": [views.image(i) for i in images.visible(session, caller())]})


@blueprint.get("/images/<ref>")
def show_image(ref: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"image": views.image(images.get(session, caller(), ref))})
