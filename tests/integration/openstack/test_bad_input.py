"""Bad input to every route: wrong types, missing fields, unknown ids, bad JSON. Each
answers 4xx in its API family's error shape (never 500) and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, Response
from tests.integration.openstack.world import World, build

NOVA_FAULTS = {"badRequest", "itemNotFound", "forbidden", "conflictingRequest", "overLimit",
               "badMethod", "computeFault"}
UNKNOWN = "00000000-0000-0000-0000-000000000000"
BAD_JSON = b"{not json"


@pytest.fixture
def world(os_alpha: Api) -> World:
    return build(os_alpha)


def shape_ok(path: str, r: Response) -> bool:
    body = r.body
    if path.startswith("/compute"):
        if not isinstance(body, dict) or len(body) != 1:
            return False
        [(name, fault)] = body.items()
        return name in NOVA_FAULTS and fault["code"] == r.status and bool(fault["message"])
    if path.startswith("/network"):
        err = body["NeutronError"]
        return {"type", "message", "detail"} <= set(err) and bool(err["message"])
    if path.startswith("/image"):
        return body["code"].startswith(str(r.status)) and bool(body["message"])
    err = body["error"]
    return err["code"] == r.status and bool(err["message"])


def _cases(w: World) -> list[tuple[str, str, Any]]:
    sid, nid = w.server["id"], w.network["id"]
    img = w.image["id"]
    server = {"name": "bad", "imageRef": img, "flavorRef": "1"}
    return [
        # compute: servers
        ("POST", "/compute/v2.1/servers", BAD_JSON),
        ("POST", "/compute/v2.1/servers", []),
        ("POST", "/compute/v2.1/servers", {"server": "x"}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "name": 5}}),
        ("POST", "/compute/v2.1/servers", {"server": {"imageRef": img, "flavorRef": "1"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "flavorRef": "nope"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "imageRef": UNKNOWN}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "min_count": "many"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "max_count": 0}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "networks": [{"uuid": UNKNOWN}]}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "networks": "some"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "key_name": "nokey"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "user_data": "%%%"}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "metadata": {"k": 1}}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "unknown": 1}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "availability_zone": "nowhere"}}),
        ("POST", "/compute/v2.1/servers", {"server": server,
                                           "os:scheduler_hints": {"group": UNKNOWN}}),
        ("POST", "/compute/v2.1/servers", {"server": {**server, "security_groups": [
            {"name": "nosuch"}]}}),
        ("GET", f"/compute/v2.1/servers/{UNKNOWN}", None),
        ("GET", "/compute/v2.1/servers?limit=x", None),
        ("GET", "/compute/v2.1/servers?marker=nosuch", None),
        ("GET", "/compute/v2.1/servers?status=SLEEPY", None),
        ("PUT", f"/compute/v2.1/servers/{sid}", {"server": {"name": ""}}),
        ("PUT", f"/compute/v2.1/servers/{sid}", {"server": {"name": ["x"]}}),
        ("DELETE", f"/compute/v2.1/servers/{UNKNOWN}", None),
        ("POST", f"/compute/v2.1/servers/{sid}/metadata", {"metadata": "x"}),
        ("PUT", f"/compute/v2.1/servers/{sid}/metadata/a", {"meta": {"b": "c"}}),
        ("DELETE", f"/compute/v2.1/servers/{sid}/metadata/nokey", None),
        # compute: actions
        ("POST", f"/compute/v2.1/servers/{sid}/action", BAD_JSON),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"explode": None}),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"os-stop": None, "os-start": None}),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"reboot": {"type": "GENTLE"}}),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"reboot": {}}),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"os-start": None}),  # 409: running
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"resume": None}),  # 409
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"createImage": {}}),
        ("POST", f"/compute/v2.1/servers/{sid}/action", {"os-getConsoleOutput": {
            "length": "lots"}}),
        ("POST", f"/compute/v2.1/servers/{UNKNOWN}/action", {"os-stop": None}),
        # compute: the rest
        ("GET", "/compute/v2.1/flavors/nosuch", None),
        ("GET", "/compute/v2.1/flavors/1/os-extra_specs/nokey", None),
        ("POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": 3}}),
        ("POST", "/compute/v2.1/os-keypairs", {"keypair": {}}),
        ("POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": "x", "public_key": "junk"}}),
        ("POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": w.keypair}}),  # 409
        ("GET", "/compute/v2.1/os-keypairs/nokey", None),
        ("DELETE", "/compute/v2.1/os-keypairs/nokey", None),
        ("POST", "/compute/v2.1/os-server-groups", {"server_group": {"name": "g"}}),
        ("POST", "/compute/v2.1/os-server-groups", {"server_group": {
            "name": "g", "policies": ["sideways"]}}),
        ("GET", f"/compute/v2.1/os-server-groups/{UNKNOWN}", None),
        ("GET", f"/compute/v2.1/os-quota-sets/{UNKNOWN}", None),
        ("GET", "/compute/v2.1/os-simple-tenant-usage/x?start=yesterday", None),
        ("GET", "/compute/v2.1/no-such-route", None),
        # image
        ("POST", "/image/v2/images", BAD_JSON),
        ("POST", "/image/v2/images", {"name": "i", "disk_format": "vhdx"}),
        ("POST", "/image/v2/images", {"name": "i", "visibility": "community"}),
        ("POST", "/image/v2/images", {"name": "i", "min_ram": "lots"}),
        ("POST", "/image/v2/images", {"name": "i", "status": "active"}),
        ("POST", "/image/v2/images", {"name": "i", "id": "not-a-uuid"}),
        ("GET", f"/image/v2/images/{UNKNOWN}", None),
        ("GET", "/image/v2/images?sort_dir=sideways", None),
        ("GET", "/image/v2/images?limit=-1", None),
        ("PATCH", f"/image/v2/images/{img}", [{"op": "move", "path": "/name"}]),
        ("PATCH", f"/image/v2/images/{img}", [{"op": "replace", "path": "/size",
                                               "value": 1}]),
        ("PATCH", f"/image/v2/images/{img}", [{"op": "remove", "path": "/nosuch"}]),
        ("PATCH", f"/image/v2/images/{img}", {"op": "add"}),
        ("PUT", f"/image/v2/images/{img}/file", b"again"),  # 409: it has its data
        ("DELETE", f"/image/v2/images/{UNKNOWN}", None),
        # network
        ("POST", "/network/v2.0/networks", BAD_JSON),
        ("POST", "/network/v2.0/networks", {"network": {"name": 1}}),
        ("POST", "/network/v2.0/networks", {"network": {"admin_state_up": "yes"}}),
        ("POST", "/network/v2.0/networks", {"network": {"mtu": 20}}),
        ("POST", "/network/v2.0/networks", {"network": {"flavour": "x"}}),
        ("GET", f"/network/v2.0/networks/{UNKNOWN}", None),
        ("DELETE", f"/network/v2.0/networks/{nid}", None),  # 409: ports on it
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid, "cidr": "10.9.0.0/33"}}),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid, "cidr": "10.9.0.0/25"}}),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid, "cidr": "fd00::/64",
                                                      "ip_version": 6}}),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": UNKNOWN,
                                                      "cidr": "10.8.0.0/24"}}),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid, "cidr": "10.8.0.0/24",
                                                      "allocation_pools": [{"start": "10.8.1.1",
                                                                            "end": "10.8.1.9"}]}}),
        ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": nid, "cidr": "10.8.0.0/24",
                                                      "gateway_ip": "10.8.0.5",
                                                      "allocation_pools": [{"start": "10.8.0.2",
                                                                            "end": "10.8.0.9"}]}}),
        ("DELETE", f"/network/v2.0/subnets/{w.subnet['id']}", None),  # 409: in use
        ("POST", "/network/v2.0/ports", {"port": {}}),
        ("POST", "/network/v2.0/ports", {"port": {"network_id": nid, "fixed_ips": [
            {"ip_address": "10.9.0.1"}]}}),  # the gateway
        ("POST", "/network/v2.0/ports", {"port": {"network_id": nid, "fixed_ips": [
            {"ip_address": "192.0.2.1"}]}}),
        ("POST", "/network/v2.0/ports", {"port": {"network_id": nid, "fixed_ips": [
            {"ip_address": w.server["addresses"]["w-net"][0]["addr"]}]}}),  # taken
        ("GET", f"/network/v2.0/ports/{UNKNOWN}", None),
        ("POST", "/network/v2.0/security-groups", {"security_group": {"name": "default"}}),
        ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": w.group["id"], "direction": "sideways"}}),
        ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": w.group["id"], "direction": "ingress",
            "port_range_min": 80}}),
        ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": w.group["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": "0.0.0.0/0"}}),  # 409: exists
        ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": w.group["id"], "direction": "ingress",
            "remote_ip_prefix": "not-a-cidr"}}),
        ("DELETE", f"/network/v2.0/security-groups/{UNKNOWN}", None),
        # identity
        ("POST", "/identity/v3/auth/tokens", BAD_JSON),
        ("POST", "/identity/v3/auth/tokens", {"auth": {}}),
        ("POST", "/identity/v3/auth/tokens", {"auth": {"identity": {"methods": ["totp"]}}}),
        ("POST", "/identity/v3/auth/tokens", {"auth": {"identity": {
            "methods": ["password"], "password": {"user": {"name": "x"}}}}}),
        ("GET", "/identity/v3/auth/tokens", None),  # no X-Subject-Token
        ("GET", f"/identity/v3/projects/{UNKNOWN}", None),
    ]


def _counts(api: Api, admin: Api) -> dict[str, int]:
    return {
        "servers": len(api.get("/compute/v2.1/servers").body["servers"]),
        "keypairs": len(api.get("/compute/v2.1/os-keypairs").body["keypairs"]),
        "groups": len(api.get("/compute/v2.1/os-server-groups").body["server_groups"]),
        "images": len(api.get("/image/v2/images").body["images"]),
        "networks": len(api.get("/network/v2.0/networks").body["networks"]),
        "subnets": len(api.get("/network/v2.0/subnets").body["subnets"]),
        "ports": len(api.get("/network/v2.0/ports").body["ports"]),
        "rules": len(api.get("/network/v2.0/security-group-rules").body[
            "security_group_rules"]),
        "sgs": len(api.get("/network/v2.0/security-groups").body["security_groups"]),
        "flavors": len(admin.get("/compute/v2.1/flavors").body["flavors"]),
        "projects": len(admin.get("/identity/v3/projects").body["projects"]),
    }


def test_every_route_refuses_bad_input_in_its_own_shape(world: World, os_alpha: Api,
                                                        os_admin: Api) -> None:
    before = _counts(os_alpha, os_admin)
    server_before = os_alpha.get(f"/compute/v2.1/servers/{world.server['id']}").body
    for method, path, body in _cases(world):
        if body is BAD_JSON or isinstance(body, bytes):
            r = os_alpha.raw(method, path, data=body,
                             headers={"Content-Type": "application/json"})
        elif method == "PATCH":
            r = os_alpha.raw(method, path, json=body, headers={
                "Content-Type": "application/openstack-images-v2.1-json-patch"})
        elif body is None:
            r = os_alpha.raw(method, path)
        else:
            r = os_alpha.raw(method, path, json=body)
        assert 400 <= r.status < 500, (method, path, body, r)
        assert shape_ok(path, r), (method, path, r)
    assert _counts(os_alpha, os_admin) == before
    after = os_alpha.get(f"/compute/v2.1/servers/{world.server['id']}").body
    assert after == server_before


def test_microversions_are_echoed_and_others_refused(os_alpha: Api) -> None:
    for headers in ({}, {"OpenStack-API-Version": "compute 2.1"},
                    {"X-OpenStack-Nova-API-Version": "2.1"},
                    {"OpenStack-API-Version": "compute latest"}):
        r = os_alpha.raw("GET", "/compute/v2.1/servers", headers=headers)
        assert r.status == 200
        assert r.headers["OpenStack-API-Version"] == "compute 2.1"
        assert r.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    for headers in ({"OpenStack-API-Version": "compute 2.2"},
                    {"X-OpenStack-Nova-API-Version": "3.0"},
                    {"OpenStack-API-Version": "compute 2.0"}):
        r = os_alpha.raw("GET", "/compute/v2.1/servers", headers=headers)
        assert r.status == 406 and "maximum is 2.1" in r.body["computeFault"]["message"]
    r = os_alpha.raw("GET", "/compute/v2.1/servers",
                     headers={"OpenStack-API-Version": "compute two"})
    assert r.status == 400 and "badRequest" in r.body
    versions = os_alpha.get("/compute/v2.1").body["version"]
    assert (versions["min_version"], versions["version"]) == ("2.1", "2.1")


def _admin_cases(w: World) -> list[tuple[str, str, Any]]:
    pid = w.network["project_id"]
    return [
        ("POST", "/compute/v2.1/flavors", {"flavor": {"ram": 64, "vcpus": 1, "disk": 0}}),
        ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "f", "ram": "lots", "vcpus": 1}}),
        ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "f", "ram": 64, "vcpus": 0}}),
        ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "f", "ram": 64, "vcpus": 1,
                                                      "swap": 512}}),
        ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "m1.tiny", "ram": 64,
                                                      "vcpus": 1}}),  # 409
        ("DELETE", f"/compute/v2.1/flavors/{UNKNOWN}", None),
        ("POST", "/compute/v2.1/flavors/1/os-extra_specs", {"extra_specs": {}}),
        ("PUT", "/compute/v2.1/flavors/1/os-extra_specs/a", {"b": "c"}),
        ("PUT", f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {"instances": "ten"}}),
        ("PUT", f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {"gpus": 1}}),
        ("PUT", f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {"instances": -2}}),
        ("PUT", f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {}}),
        ("GET", f"/compute/v2.1/os-hypervisors/{UNKNOWN}", None),
        ("PUT", f"/network/v2.0/quotas/{pid}", {"quota": {"network": "many"}}),
        ("PUT", f"/network/v2.0/quotas/{pid}", {"quota": {"volumes": 1}}),
        ("POST", "/identity/v3/projects", {"project": {}}),
        ("POST", "/identity/v3/projects", {"project": {"name": 5}}),
        ("POST", "/identity/v3/projects", {"project": {"name": "alpha"}}),  # 409
        ("POST", "/identity/v3/projects", {"project": {"name": "x", "domain_id": UNKNOWN}}),
        ("PATCH", f"/identity/v3/projects/{pid}", {"project": {"colour": "red"}}),
        ("PATCH", f"/identity/v3/projects/{pid}", {"project": {}}),
        ("POST", "/identity/v3/users", {"user": {"name": ["x"]}}),
        ("POST", "/identity/v3/users", {"user": {"name": "u", "enabled": "yes"}}),
        ("POST", "/identity/v3/users", {"user": {"name": "u", "default_project_id": UNKNOWN}}),
        ("GET", f"/identity/v3/users/{UNKNOWN}", None),
        ("POST", "/identity/v3/roles", {"role": {"name": "member"}}),  # 409
        ("PUT", f"/identity/v3/projects/{pid}/users/{UNKNOWN}/roles/{UNKNOWN}", None),
        ("DELETE", f"/identity/v3/projects/{pid}/users/{UNKNOWN}/roles/{UNKNOWN}", None),
        ("GET", "/identity/v3/role_assignments?group.id=x", None),
        ("POST", "/identity/v3/domains", {"domain": {"name": ""}}),
        ("PATCH", "/identity/v3/domains/default", {"domain": {"enabled": "no"}}),
        ("GET", f"/identity/v3/domains/{UNKNOWN}", None),
    ]


def _member_cases_more(w: World) -> list[tuple[str, str, Any]]:
    return [
        ("PUT", f"/network/v2.0/subnets/{w.subnet['id']}", {"subnet": {"gateway_ip": "10.9.0.7"}}),
        ("PUT", f"/network/v2.0/subnets/{w.subnet['id']}", {"subnet": {"cidr": "10.0.0.0/8"}}),
        ("PUT", f"/network/v2.0/ports/{w.port['id']}", {"port": {"security_groups": [UNKNOWN]}}),
        ("PUT", f"/network/v2.0/ports/{w.port['id']}", {"port": {"admin_state_up": "on"}}),
        ("PUT", f"/network/v2.0/networks/{w.network['id']}", {"network": {"shared": True}}),
        ("POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": "bad name!"}}),
        ("POST", "/compute/v2.1/os-server-groups", {"server_group": {"name": "",
                                                                     "policies": ["affinity"]}}),
        ("POST", f"/identity/v3/users/{UNKNOWN}/password", {"user": {"password": "x",
                                                                      "original_password": "y"}}),
        ("DELETE", "/identity/v3/auth/tokens", None),  # no X-Subject-Token
    ]


def _send(api: Api, method: str, path: str, body: Any) -> Response:
    if body is None:
        return api.raw(method, path)
    return api.raw(method, path, json=body)


def test_admin_routes_and_updates_refuse_bad_input_too(world: World, os_alpha: Api,
                                                       os_admin: Api) -> None:
    before = _counts(os_alpha, os_admin)
    users = len(os_admin.get("/identity/v3/users").body["users"])
    roles = len(os_admin.get("/identity/v3/roles").body["roles"])
    quota = os_admin.get(f"/compute/v2.1/os-quota-sets/{world.network['project_id']}").body
    port = os_alpha.get(f"/network/v2.0/ports/{world.port['id']}").body
    subnet = os_alpha.get(f"/network/v2.0/subnets/{world.subnet['id']}").body
    for api, cases in ((os_admin, _admin_cases(world)), (os_alpha, _member_cases_more(world))):
        for method, path, body in cases:
            r = _send(api, method, path, body)
            assert 400 <= r.status < 500, (method, path, body, r)
            assert shape_ok(path, r), (method, path, r)
    assert _counts(os_alpha, os_admin) == before
    assert len(os_admin.get("/identity/v3/users").body["users"]) == users
    assert len(os_admin.get("/identity/v3/roles").body["roles"]) == roles
    assert os_admin.get(f"/compute/v2.1/os-quota-sets/{world.network['project_id']}").body \
        == quota
    assert os_alpha.get(f"/network/v2.0/ports/{world.port['id']}").body == port
    assert os_alpha.get(f"/network/v2.0/subnets/{world.subnet['id']}").body == subnet
