"""``/compute/v2.1/os-keypairs``: a project's SSH keys (``services.keypairs``)."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import caller, cloud, field, json_body, member, no_extra
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.services import keypairs


@blueprint.get("/v2.1/os-keypairs")
def list_keypairs() -> Response:
    with cloud().sessions() as session:
        rows = keypairs.listing(session, caller())
        return jsonify({"keypairs": [views.keypair_brief(k) for k in rows]})


@blueprint.post("/v2.1/os-keypairs")
def create_keypair() -> Response:
    """2.1 answers 200; a generated pair's private key is in the answer, once."""
    data = member(json_body(), "keypair", "keypair")
    no_extra(data, ("name", "public_key"), "keypair")
    name = field(data, "name", str, "keypair", required=True)
    public_key = field(data, "public_key", str, "keypair")
    with cloud().sessions.begin() as session:
        created = keypairs.create(session, caller(), name=name, public_key=public_key)
        body = {"fingerprint": created.keypair.fingerprint, "name": created.keypair.name,
                "public_key": created.keypair.public_key, "user_id": caller().user_id}
    if created.private_key is not None:
        body["private_key"] = created.private_key
    return jsonify({"keypair": body})


@blueprint.get("/v2.1/os-keypairs/<name>")
def show_keypair(name: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"keypair": views.keypair(keypairs.get(session, caller(), name),
                                                 caller().user_id)})


@blueprint.delete("/v2.1/os-keypairs/<name>")
def delete_keypair(name: str) -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        keypairs.delete(session, caller(), name)
    return "", 202
