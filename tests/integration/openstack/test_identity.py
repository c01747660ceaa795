"""Identity v3: discovery, password sign-in and scope, the catalog, validation,
revocation, expiry, the admin's CRUD, and what roles allow."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from cloud_manager.db.models import Token
from cloud_manager.identity import tokens as token_service
from ironbark.allinone import AllInOne
from tests.helpers import Api
from tests.identity import PASSWORD, ensure_user, member_token
from tests.integration.openstack.conftest import os_client


def _auth(user: str, password: str, scope: object = None, domain: str = "Default") -> dict:
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": domain}, "password": password}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def test_version_discovery_is_public(cloud: AllInOne) -> None:
    anyone = Api(cloud.api_url, None)
    root = anyone.get("/identity")
    assert root.status == 300
    [v3] = root.body["versions"]["values"]
    assert v3["status"] == "stable" and v3["id"].startswith("v3.")
    assert v3["links"][0]["href"] == f"{cloud.api_url}/identity/v3/"
    assert anyone.get("/identity/v3").body["version"]["id"] == v3["id"]


def test_password_sign_in_scoped_token_body_and_catalog(cloud: AllInOne) -> None:
    anyone = Api(cloud.api_url, None)
    password = cloud.config.identity.admin_password
    assert password is not None
    r = anyone.post("/identity/v3/auth/tokens", _auth("admin", password, {
        "project": {"name": "admin", "domain": {"name": "Default"}}}))
    assert r.status == 201, r
    token, body = r.headers["X-Subject-Token"], r.body["token"]
    assert body["methods"] == ["password"] and body["user"]["name"] == "admin"
    assert body["project"]["name"] == "admin" and body["project"]["domain"]["id"] == "default"
    assert {role["name"] for role in body["roles"]} == {"admin"}
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=59) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    services = {s["type"]: s for s in body["catalog"]}
    assert set(services) == {"identity", "compute", "image", "network", "cloud"}
    for service in services.values():
        assert {e["interface"] for e in service["endpoints"]} == {"public", "internal", "admin"}
        assert {e["region"] for e in service["endpoints"]} == {"RegionOne"}
    assert services["compute"]["endpoints"][0]["url"] == f"{cloud.api_url}/compute/v2.1"
    assert os_client(cloud, token).get("/compute/v2.1/servers").status == 200


def test_unscoped_default_project_and_bad_credentials(cloud: AllInOne) -> None:
    anyone = Api(cloud.api_url, None)
    name, _ = ensure_user(cloud, "alpha")
    unscoped = anyone.post("/identity/v3/auth/tokens", _auth(name, PASSWORD, "unscoped"))
    assert unscoped.status == 201 and "project" not in unscoped.body["token"]
    assert "catalog" not in unscoped.body["token"]
    user = os_client(cloud, unscoped.headers["X-Subject-Token"])
    assert user.get("/compute/v2.1/servers").status == 403  # not scoped to a project
    assert [p["name"] for p in user.get("/identity/v3/auth/projects").body["projects"]] \
        == ["alpha"]
    # No scope: the user's default project, as Keystone does.
    defaulted = anyone.post("/identity/v3/auth/tokens", _auth(name, PASSWORD))
    assert defaulted.body["token"]["project"]["name"] == "alpha"
    # Rescoping an unscoped token with the token method.
    rescoped = anyone.post("/identity/v3/auth/tokens", {"auth": {"identity": {
        "methods": ["token"], "token": {"id": unscoped.headers["X-Subject-Token"]}},
        "scope": {"project": {"name": "alpha", "domain": {"id": "default"}}}}})
    assert rescoped.status == 201 and rescoped.body["token"]["project"]["name"] == "alpha"

    for body in (_auth(name, "wrong"), _auth("nobody", PASSWORD),
                 _auth(name, PASSWORD, {"project": {"name": "beta",
                                                    "domain": {"id": "default"}}})):
        refused = anyone.post("/identity/v3/auth/tokens", body)
        assert refused.status == 401, refused
        assert refused.body["error"]["code"] == 401


def test_validate_revoke_and_expiry(cloud: AllInOne, os_admin: Api) -> None:
    token = member_token(cloud, "alpha")
    alpha = os_client(cloud, token)
    seen = alpha.raw("GET", "/identity/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert seen.status == 200 and seen.body["token"]["project"]["name"] == "alpha"
    assert alpha.raw("HEAD", "/identity/v3/auth/tokens",
                     headers={"X-Subject-Token": token}).status == 200
    # Someone else's token is the admin's business only.
    admins = cloud.admin_token
    assert alpha.raw("GET", "/identity/v3/auth/tokens",
                     headers={"X-Subject-Token": admins}).status == 403
    assert os_admin.raw("GET", "/identity/v3/auth/tokens",
                        headers={"X-Subject-Token": token}).status == 200

    assert alpha.raw("DELETE", "/identity/v3/auth/tokens",
                     headers={"X-Subject-Token": token}).status == 204
    assert alpha.get("/compute/v2.1/servers").status == 401
    assert os_admin.raw("GET", "/identity/v3/auth/tokens",
                        headers={"X-Subject-Token": token}).status == 404

    # Expiry: a token whose time has passed stops working (moved into the past here,
    # rather than waiting out the configured lifetime).
    fresh = Api(cloud.api_url, None).post("/identity/v3/auth/tokens", _auth(
        "alpha-member", PASSWORD)).headers["X-Subject-Token"]
    assert os_client(cloud, fresh).get("/compute/v2.1/servers").status == 200
    with cloud.cloud.sessions.begin() as session:
        session.execute(sa.update(Token).where(Token.id == token_service.digest(fresh))
                        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert os_client(cloud, fresh).get("/compute/v2.1/servers").status == 401


def test_admin_crud_and_role_changes_take_effect_at_once(cloud: AllInOne,
                                                          os_admin: Api) -> None:
    project = os_admin.post("/identity/v3/projects", {"project": {
        "name": "gamma", "description": "third"}})
    assert project.status == 201 and project.body["project"]["domain_id"] == "default"
    pid = project.body["project"]["id"]
    assert os_admin.post("/identity/v3/projects", {"project": {"name": "gamma"}}).status == 409
    user = os_admin.post("/identity/v3/users", {"user": {
        "name": "gina", "password": "gina-password-1", "default_project_id": pid}})
    assert user.status == 201 and "password" not in user.body["user"]
    uid = user.body["user"]["id"]
    roles = {r["name"]: r["id"] for r in os_admin.get("/identity/v3/roles").body["roles"]}
    assert {"admin", "member", "reader"} <= set(roles)
    assert os_admin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/"
                        f"{roles['member']}").status == 204
    listed = os_admin.get("/identity/v3/role_assignments", **{"user.id": uid,
                                                                "include_names": "1"})
    [assignment] = listed.body["role_assignments"]
    assert assignment["role"]["name"] == "member"
    assert assignment["scope"]["project"]["name"] == "gamma"

    signed = Api(cloud.api_url, None).post("/identity/v3/auth/tokens",
                                           _auth("gina", "gina-password-1"))
    gina = os_client(cloud, signed.headers["X-Subject-Token"])
    assert gina.get("/compute/v2.1/servers").status == 200
    assert gina.get(f"/identity/v3/users/{uid}").status == 200
    assert gina.get("/identity/v3/users").status == 403
    # Removing the role ends the token's use at the next request; so does disabling.
    assert os_admin.delete(f"/identity/v3/projects/{pid}/users/{uid}/roles/"
                           f"{roles['member']}").status == 204
    assert gina.get("/compute/v2.1/servers").status == 401
    assert os_admin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/"
                        f"{roles['reader']}").status == 204
    again = Api(cloud.api_url, None).post("/identity/v3/auth/tokens",
                                          _auth("gina", "gina-password-1"))
    reader = os_client(cloud, again.headers["X-Subject-Token"])
    assert reader.get("/compute/v2.1/servers").status == 200
    assert reader.post("/compute/v2.1/os-keypairs", {"keypair": {"name": "k"}}).status == 403
    assert os_admin.patch(f"/identity/v3/users/{uid}", {"user": {"enabled": False}}).status \
        == 200
    assert reader.get("/compute/v2.1/servers").status == 401

    # Own password change (with the old one), then sign in with the new one.
    assert os_admin.patch(f"/identity/v3/users/{uid}", {"user": {"enabled": True}}).status \
        == 200
    fresh = Api(cloud.api_url, None).post("/identity/v3/auth/tokens",
                                          _auth("gina", "gina-password-1"))
    me = os_client(cloud, fresh.headers["X-Subject-Token"])
    assert me.post(f"/identity/v3/users/{uid}/password", {"user": {
        "password": "gina-password-2", "original_password": "wrong"}}).status == 401
    assert me.post(f"/identity/v3/users/{uid}/password", {"user": {
        "password": "gina-password-2", "original_password": "gina-password-1"}}).status == 204
    assert Api(cloud.api_url, None).post("/identity/v3/auth/tokens", _auth(
        "gina", "gina-password-2")).status == 201

    assert os_admin.delete(f"/identity/v3/users/{uid}").status == 204
    assert os_admin.delete(f"/identity/v3/projects/{pid}").status == 204
    assert os_admin.get(f"/identity/v3/projects/{pid}").status == 404
    assert os_admin.get("/identity/v3/domains").body["domains"][0]["id"] == "default"


def test_domain_crud(os_admin: Api) -> None:
    made = os_admin.post("/identity/v3/domains", {"domain": {"name": "lab", "description": "x"}})
    assert made.status == 201
    did = made.body["domain"]["id"]
    assert os_admin.post("/identity/v3/domains", {"domain": {"name": "lab"}}).status == 409
    project = os_admin.post("/identity/v3/projects", {"project": {"name": "in-lab",
                                                                  "domain_id": did}})
    assert project.status == 201 and project.body["project"]["domain_id"] == did
    assert os_admin.delete(f"/identity/v3/domains/{did}").status == 409  # still enabled
    renamed = os_admin.patch(f"/identity/v3/domains/{did}", {"domain": {
        "name": "lab2", "enabled": False}})
    assert renamed.status == 200 and renamed.body["domain"]["enabled"] is False
    assert os_admin.delete(f"/identity/v3/domains/{did}").status == 204
    assert os_admin.get(f"/identity/v3/domains/{did}").status == 404
    assert os_admin.get(f"/identity/v3/projects/{project.body['project']['id']}").status == 404
    assert os_admin.delete("/identity/v3/domains/default").status == 409


def test_passwords_are_stored_as_argon2id_hashes(cloud: AllInOne) -> None:
    from cloud_manager.db.models import User

    ensure_user(cloud, "alpha")
    with cloud.cloud.sessions() as session:
        stored = session.scalars(sa.select(User.password_hash)
                                 .where(User.name == "alpha-member")).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_project_with_servers_cannot_be_deleted(cloud: AllInOne, os_admin: Api,
                                                   alpha: Api) -> None:
    alpha.boot("keeps-alpha")
    pid = alpha.get("/v1/servers").body["servers"][0]["project_id"]
    r = os_admin.delete(f"/identity/v3/projects/{pid}")
    assert r.status == 409 and "server" in r.body["error"]["message"]
