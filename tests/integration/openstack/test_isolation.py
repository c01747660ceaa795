"""Isolation and policy: every route, aimed by project beta at project alpha's resources,
answers 404 (403 where the route names a project), and changes nothing; a reader
changes nothing anywhere (403); admin-only routes answer 403 to members."""

from __future__ import annotations

import pytest

from tests.helpers import Api
from tests.integration.openstack.world import World, build


@pytest.fixture
def world(os_alpha: Api) -> World:
    return build(os_alpha)


def _routes(w: World) -> list[tuple[str, str, object]]:
    sid, nid, pid = w.server["id"], w.network["id"], w.network["project_id"]
    srv = f"/compute/v2.1/servers/{sid}"
    return [
        ("GET", srv, None), ("PUT", srv, {"server": {"name": "stolen"}}),
        ("DELETE", srv, None),
        ("GET", f"{srv}/metadata", None), ("POST", f"{srv}/metadata", {"metadata": {"a": "b"}}),
        ("PUT", f"{srv}/metadata", {"metadata": {}}), ("GET", f"{srv}/metadata/role", None),
        ("PUT", f"{srv}/metadata/role", {"meta": {"role": "x"}}),
        ("DELETE", f"{srv}/metadata/role", None),
        *[("POST", f"{srv}/action", {a: None}) for a in (
            "os-stop", "os-start", "pause", "unpause", "suspend", "resume")],
        ("POST", f"{srv}/action", {"reboot": {"type": "HARD"}}),
        ("POST", f"{srv}/action", {"createImage": {"name": "stolen"}}),
        ("POST", f"{srv}/action", {"os-getConsoleOutput": {}}),
        ("GET", f"/compute/v2.1/os-keypairs/{w.keypair}", None),
        ("DELETE", f"/compute/v2.1/os-keypairs/{w.keypair}", None),
        ("GET", f"/compute/v2.1/os-server-groups/{w.server_group['id']}", None),
        ("DELETE", f"/compute/v2.1/os-server-groups/{w.server_group['id']}", None),
        ("GET", f"/image/v2/images/{w.image['id']}", None),
        ("GET", f"/image/v2/images/{w.image['id']}/file", None),
        ("PATCH", f"/image/v2/images/{w.image['id']}",
         [{"op": "replace", "path": "/name", "value": "stolen"}]),
        ("DELETE", f"/image/v2/images/{w.image['id']}", None),
        ("GET", f"/network/v2.0/networks/{nid}", None),
        ("PUT", f"/network/v2.0/networks/{nid}", {"network": {"name": "stolen"}}),
        ("DELETE", f"/network/v2.0/networks/{nid}", None),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid,
                                                      "cidr": "10.99.0.0/24"}}),
        ("POST", "/network/v2.0/ports", {"port": {"network_id": nid}}),
        ("GET", f"/network/v2.0/subnets/{w.subnet['id']}", None),
        ("PUT", f"/network/v2.0/subnets/{w.subnet['id']}", {"subnet": {"name": "stolen"}}),
        ("DELETE", f"/network/v2.0/subnets/{w.subnet['id']}", None),
        ("GET", f"/network/v2.0/ports/{w.port['id']}", None),
        ("PUT", f"/network/v2.0/ports/{w.port['id']}", {"port": {"name": "stolen"}}),
        ("DELETE", f"/network/v2.0/ports/{w.port['id']}", None),
        ("GET", f"/network/v2.0/security-groups/{w.group['id']}", None),
        ("PUT", f"/network/v2.0/security-groups/{w.group['id']}",
         {"security_group": {"name": "stolen"}}),
        ("DELETE", f"/network/v2.0/security-groups/{w.group['id']}", None),
        ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": w.group["id"], "direction": "ingress"}}),
        ("GET", f"/network/v2.0/security-group-rules/{w.rule['id']}", None),
        ("DELETE", f"/network/v2.0/security-group-rules/{w.rule['id']}", None),
        # Routes that name the project itself: another project's is forbidden.
        ("GET", f"/compute/v2.1/os-quota-sets/{pid}", 403),
        ("GET", f"/compute/v2.1/os-quota-sets/{pid}/detail", 403),
        ("GET", f"/compute/v2.1/os-simple-tenant-usage/{pid}", 403),
        ("GET", f"/compute/v2.1/limits?tenant_id={pid}", 403),
        ("GET", f"/network/v2.0/quotas/{pid}", 403),
        ("GET", f"/identity/v3/projects/{pid}", 403),
    ]


def _send(api: Api, method: str, path: str, body: object) -> int:
    if method == "PATCH":
        return api.raw(method, path, json=body, headers={
            "Content-Type": "application/openstack-images-v2.1-json-patch"}).status
    if body == 403 or body is None:
        return api.raw(method, path).status
    return api.raw(method, path, json=body).status


def test_another_project_sees_nothing_and_changes_nothing(world: World, os_alpha: Api,
                                                          os_beta: Api) -> None:
    before = os_alpha.get(f"/compute/v2.1/servers/{world.server['id']}").body
    for method, path, body in _routes(world):
        expected = 403 if body == 403 else 404
        assert _send(os_beta, method, path, body) == expected, (method, path)
    # Lists show none of alpha's resources.
    for path, key in (("/compute/v2.1/servers", "servers"),
                      ("/compute/v2.1/os-keypairs", "keypairs"),
                      ("/compute/v2.1/os-server-groups", "server_groups"),
                      ("/network/v2.0/networks", "networks"),
                      ("/network/v2.0/subnets", "subnets"),
                      ("/network/v2.0/ports", "ports")):
        assert os_beta.get(path).body[key] == [], path
    assert world.image["id"] not in [i["id"] for i in os_beta.get("/image/v2/images")
                                     .body["images"]]
    names = {g["name"] for g in os_beta.get("/network/v2.0/security-groups")
             .body["security_groups"]}
    assert names == {"default"}  # beta's own, made for it
    after = os_alpha.get(f"/compute/v2.1/servers/{world.server['id']}").body
    assert after["server"]["name"] == before["server"]["name"] == "w-vm"
    assert after["server"]["status"] == "ACTIVE" and after["server"]["metadata"] == {
        "role": "web"}
    assert os_alpha.get(f"/network/v2.0/ports/{world.port['id']}").status == 200
    assert os_alpha.get(f"/image/v2/images/{world.image['id']}").body["name"] == "w-image"


def test_a_reader_may_look_but_not_change(world: World, os_reader: Api) -> None:
    assert os_reader.get(f"/compute/v2.1/servers/{world.server['id']}").status == 200
    assert os_reader.get("/network/v2.0/networks").body["networks"][0]["id"] \
        == world.network["id"]
    for method, path, body in _routes(world):
        if method == "GET" or body == 403:
            continue
        assert _send(os_reader, method, path, body) == 403, (method, path)
    for path, body in (("/compute/v2.1/servers", {"server": {"name": "x", "imageRef": "y",
                                                             "flavorRef": "1"}}),
                       ("/compute/v2.1/os-keypairs", {"keypair": {"name": "r"}}),
                       ("/network/v2.0/networks", {"network": {"name": "r"}}),
                       ("/image/v2/images", {"name": "r", "disk_format": "raw"}),
                       ("/v1/servers", {"name": "x", "flavor": "m1.tiny", "image": "demo"})):
        r = os_reader.post(path, body)
        assert r.status == 403, (path, r)


def test_admin_only_routes_answer_403_to_members(world: World, os_alpha: Api) -> None:
    for method, path, body in (
            ("GET", "/compute/v2.1/os-hypervisors", None),
            ("GET", "/compute/v2.1/os-hypervisors/detail", None),
            ("GET", "/compute/v2.1/os-hypervisors/statistics", None),
            ("GET", "/compute/v2.1/os-services", None),
            ("GET", "/compute/v2.1/os-simple-tenant-usage", None),
            ("GET", "/compute/v2.1/os-availability-zone/detail", None),
            ("GET", "/compute/v2.1/servers?all_tenants=1", None),
            ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "f", "ram": 64,
                                                           "vcpus": 1, "disk": 0}}),
            ("DELETE", "/compute/v2.1/flavors/1", None),
            ("POST", "/compute/v2.1/flavors/1/os-extra_specs", {"extra_specs": {"a": "b"}}),
            ("PUT", f"/compute/v2.1/os-quota-sets/{world.network['project_id']}",
             {"quota_set": {"instances": 100}}),
            ("PUT", f"/network/v2.0/quotas/{world.network['project_id']}",
             {"quota": {"network": 1000}}),
            ("POST", "/network/v2.0/networks", {"network": {"name": "s", "shared": True}}),
            ("GET", "/identity/v3/users", None),
            ("POST", "/identity/v3/projects", {"project": {"name": "mine"}}),
            ("GET", "/identity/v3/domains", None)):
        r = os_alpha.raw(method, path, json=body) if body else os_alpha.raw(method, path)
        assert r.status == 403, (method, path, r)
        assert r.body is not None
