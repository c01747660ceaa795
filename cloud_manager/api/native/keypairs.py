"""``/v1/keypairs``: a project's SSH key pairs (Nova's os-keypairs), by name."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.schemas import KeyPairCreate, parse_body, parse_query
from cloud_manager.services import keypairs


@blueprint.post("/keypairs")
def create_keypair() -> tuple[Response, int]:
    """201; ``private_key`` only when the cloud generated the pair (it keeps no copy)."""
    body = parse_body(KeyPairCreate)
    with cloud().sessions.begin() as session:
        created = keypairs.create(session, caller(), name=body.name,
                                  public_key=body.public_key)
        shown = views.keypair(created.keypair)
    if created.private_key is not None:
        shown["private_key"] = created.private_key
    return jsonify({"keypair": shown}), 201


@blueprint.get("/keypairs")
def list_keypairs() -> Response:
    parse_query(set())
    with cloud().sessions() as session:
        return jsonify({"keypairs": [views.keypair(k)
                                     for k in keypairs.listing(session, caller())]})


@blueprint.get("/keypairs/<name>")
def show_keypair(name: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"keypair": views.keypair(keypairs.get(session, caller(), name))})


@blueprint.delete("/keypairs/<name>")
def delete_keypair(name: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        keypairs.delete(session, caller(), name)
    return "", 204
