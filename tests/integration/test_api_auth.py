"""Tokens and tenancy: no token, bad token, admin-only routes, and project isolation."""

from __future__ import annotations

from ironbark.allinone import AllInOne
from tests.helpers import Api


def test_requests_without_a_valid_token_get_401(cloud: AllInOne) -> None:
    for token in (None, "wrong-token-0123456789"):
        api = Api(cloud.api_url, token)
        for path in ("/v1/servers", "/v1/flavors", "/v1/images", "/v1/groups", "/v1/hosts"):
            r = api.get(path)
            assert r.status == 401, (token, path, r)
            assert r.body["error"]["code"] == 401
        assert api.post("/v1/servers", {"name": "x", "flavor": "m1.tiny",
                                        "image": "demo"}).status == 401
    basic = Api(cloud.api_url, None)
    basic.session.headers["Authorization"] = f"Basic {cloud.admin_token}"
    assert basic.get("/v1/servers").status == 401
    assert Api(cloud.api_url, None).get("/v1").status == 200  # version discovery is public


def test_admin_routes_answer_403_to_projects(alpha: Api) -> None:
    assert alpha.get("/v1/hosts").status == 403
    assert alpha.get("/v1/hosts/host1").status == 403
    assert alpha.post("/v1/flavors", {"name": "f", "vcpus": 1, "memory_mb": 64,
                                      "disk_gb": 0}).status == 403
    assert alpha.delete("/v1/flavors/m1.tiny").status == 403
    assert alpha.get("/v1/servers", all_projects="true").status == 403
    assert alpha.get("/v1/flavors").status == 200


def test_project_a_cannot_see_or_touch_project_b_servers(alpha: Api, beta: Api,
                                                          admin: Api) -> None:
    mine = alpha.boot("alpha-vm")
    theirs = beta.boot("beta-vm")
    assert [s["id"] for s in alpha.get("/v1/servers").body["servers"]] == [mine["id"]]
    assert [s["id"] for s in beta.get("/v1/servers").body["servers"]] == [theirs["id"]]
    assert alpha.get("/v1/servers", name="beta-vm").body["servers"] == []
    assert mine["host"] is None  # hosts are the operator's business

    # Every way of reaching B's server from A looks exactly like a missing server.
    path = f"/v1/servers/{theirs['id']}"
    missing = alpha.get("/v1/servers/00000000-0000-0000-0000-000000000000")
    for response in (alpha.get(path), alpha.delete(path)):
        assert response.status == 404
        assert response.body["error"]["title"] == missing.body["error"]["title"]
    for action in ("stop", "start", "reboot", "pause", "unpause", "suspend", "resume"):
        assert alpha.act(theirs["id"], action).status == 404

    after = beta.server(theirs["id"])
    assert after["status"] == "ACTIVE" and after["task_state"] is None

    # The admin sees both, with their hosts, when asking for all projects.
    every = admin.get("/v1/servers", all_projects="true").body["servers"]
    assert {s["id"] for s in every} == {mine["id"], theirs["id"]}
    assert all(s["host"] for s in every)
    assert admin.get("/v1/servers").body["servers"] == []  # the admin project's own


def test_private_flavors_are_hidden_from_projects(admin: Api, alpha: Api) -> None:
    r = admin.post("/v1/flavors", {"name": "secret", "vcpus": 1, "memory_mb": 64,
                                   "disk_gb": 0, "is_public": False})
    assert r.status == 201
    assert "secret" not in [f["name"] for f in alpha.get("/v1/flavors").body["flavors"]]
    assert alpha.get("/v1/flavors/secret").status == 404
    r = alpha.post("/v1/servers", {"name": "x", "flavor": "secret", "image": "demo"})
    assert r.status == 400 and r.body["error"]["field"] == "flavor"
