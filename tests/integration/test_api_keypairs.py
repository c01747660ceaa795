"""Key pairs over the native API, and what a server made with one (and user data)
finds on its config drive."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pycdlib
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ironbark.allinone import AllInOne
from tests.helpers import Api

ED25519 = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " me@laptop"


def _rsa(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def _listing(api: Api) -> list[dict]:
    r = api.get("/v1/keypairs")
    assert r.status == 200, r
    return r.body["keypairs"]


def test_generate_import_show_list_delete(alpha: Api) -> None:
    made = alpha.post("/v1/keypairs", {"name": "laptop"})
    assert made.status == 201, made
    pair = made.body["keypair"]
    private = serialization.load_ssh_private_key(pair["private_key"].encode(), None)
    assert pair["public_key"].split()[:2] == private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode().split()
    assert len(pair["fingerprint"].split(":")) == 16

    imported = alpha.post("/v1/keypairs", {"name": "desk", "public_key": ED25519})
    assert imported.status == 201 and "private_key" not in imported.body["keypair"]
    assert imported.body["keypair"]["public_key"] == ED25519
    shown = alpha.get("/v1/keypairs/laptop").body["keypair"]
    assert "private_key" not in shown and shown["fingerprint"] == pair["fingerprint"]
    assert [k["name"] for k in _listing(alpha)] == ["desk", "laptop"]
    assert alpha.delete("/v1/keypairs/laptop").status == 204
    assert alpha.get("/v1/keypairs/laptop").status == 404
    assert [k["name"] for k in _listing(alpha)] == ["desk"]


def test_a_key_pair_is_its_projects_own(alpha: Api, beta: Api) -> None:
    assert alpha.post("/v1/keypairs", {"name": "mine", "public_key": ED25519}).status == 201
    assert beta.get("/v1/keypairs/mine").status == 404
    assert beta.delete("/v1/keypairs/mine").status == 404
    assert _listing(beta) == []
    refused = beta.post("/v1/servers", {"name": "x", "flavor": "m1.tiny", "image": "demo",
                                        "key_name": "mine"})
    assert refused.status == 400 and "key_name" in refused.body["error"]["message"], refused
    assert beta.get("/v1/servers").body["servers"] == []
    # The same name in another project is another key pair.
    assert beta.post("/v1/keypairs", {"name": "mine"}).status == 201
    assert alpha.get("/v1/keypairs/mine").body["keypair"]["public_key"] == ED25519


@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"),
    ({"name": 7}, "name"),
    ({"name": "a/b"}, "name"),
    ({"name": " padded"}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": "k", "public_key": 5}, "public_key"),
    ({"name": "k", "public_key": "ssh-ed25519 not-base64"}, "public_key"),
    ({"name": "k", "public_key": "hello"}, "public_key"),
    ({"name": "k", "public_key": ED25519 + "\n" + ED25519}, "public_key"),
    ({"name": "k", "extra": 1}, "extra"),
])
def test_bad_key_pairs_are_refused_and_change_nothing(alpha: Api, body: dict,
                                                      field: str) -> None:
    r = alpha.post("/v1/keypairs", body)
    assert r.status == 400 and field in r.body["error"]["message"], r
    assert _listing(alpha) == []


def test_a_weak_rsa_key_and_a_duplicate_name(alpha: Api) -> None:
    weak = alpha.post("/v1/keypairs", {"name": "weak", "public_key": _rsa(1024)})
    assert weak.status == 400 and "2048" in weak.body["error"]["message"], weak
    assert alpha.post("/v1/keypairs", {"name": "rsa", "public_key": _rsa(2048)}).status == 201
    again = alpha.post("/v1/keypairs", {"name": "rsa", "public_key": ED25519})
    assert again.status == 409, again
    assert [k["name"] for k in _listing(alpha)] == ["rsa"]


@pytest.mark.parametrize(("user_data", "why"), [
    ("not base64!", "base64"),
    (base64.b64encode(b"x" * 65536).decode(), "65535"),
    (12, "user_data"),
])
def test_bad_user_data_is_refused(alpha: Api, user_data: object, why: str) -> None:
    r = alpha.post("/v1/servers", {"name": "x", "flavor": "m1.tiny", "image": "demo",
                                   "user_data": user_data})
    assert r.status == 400 and why in r.body["error"]["message"], r
    assert alpha.get("/v1/servers").body["servers"] == []


def _read(iso: pycdlib.PyCdlib, path: str) -> bytes:
    import io
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path=path)
    return out.getvalue()


def test_a_server_finds_its_key_and_user_data_on_its_config_drive(
        cloud: AllInOne, alpha: Api) -> None:
    assert alpha.post("/v1/keypairs", {"name": "desk", "public_key": ED25519}).status == 201
    script = b"#!/bin/sh\necho hello\n"
    server = alpha.boot("Web_Server.1", key_name="desk",
                        user_data=base64.b64encode(script).decode())
    assert server["status"] == "ACTIVE" and server["key_name"] == "desk", server
    assert "user_data" not in server and "key_data" not in server
    host_dirs = {im.ctx.name: im.ctx.options.state_dir for im in cloud.instance_managers}
    admin = Api(cloud.api_url, cloud.admin_token)
    host = admin.server(server["id"])["host"]
    drive = Path(host_dirs[host]) / "instances" / server["id"] / "disk.config"
    iso = pycdlib.PyCdlib()
    iso.open(str(drive))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "config-2"
        meta = json.loads(_read(iso, "/openstack/latest/meta_data.json"))
        assert _read(iso, "/openstack/latest/user_data") == script
        assert json.loads(_read(iso, "/openstack/2012-08-10/meta_data.json")) == meta
    finally:
        iso.close()
    assert meta["uuid"] == server["id"] and meta["name"] == "Web_Server.1"
    assert meta["hostname"] == "web-server-1"
    assert meta["public_keys"] == {"desk": ED25519}
    assert meta["availability_zone"] == server["group"]
    # Deleting the key pair changes no server; deleting the server removes its drive.
    assert alpha.delete("/v1/keypairs/desk").status == 204
    assert alpha.server(server["id"])["key_name"] == "desk"
    assert alpha.delete(f"/v1/servers/{server['id']}").status == 202
    alpha.wait_gone(server["id"])
    assert not drive.parent.exists()
