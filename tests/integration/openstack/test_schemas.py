"""Every route's answer checked against a schema written from the upstream API
reference (``schemas``): documented keys present and typed, nothing undocumented."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from ironbark.allinone import AllInOne
from tests.helpers import Api
from tests.integration.openstack import schemas as s
from tests.integration.openstack.world import World, build


@pytest.fixture
def world(os_alpha: Api) -> World:
    return build(os_alpha)


def check(api: Api, path: str, schema: dict[str, Any], status: int = 200,
          **params: Any) -> Any:
    r = api.get(path, **params)
    assert r.status == status, (path, r)
    jsonschema.validate(r.body, schema)
    return r.body


def test_compute_answers_match_the_2_1_reference(world: World, os_alpha: Api,
                                                 os_admin: Api, cloud: AllInOne) -> None:
    sid = world.server["id"]
    check(os_alpha, "/compute/v2.1", s.COMPUTE_VERSION)
    check(os_alpha, "/compute/v2.1/servers", s.SERVERS)
    shown = check(os_alpha, "/compute/v2.1/servers/detail", s.SERVERS_DETAIL)
    assert "OS-EXT-SRV-ATTR:host" not in shown["servers"][0]  # not the tenant's business
    admin_view = check(os_admin, f"/compute/v2.1/servers/{sid}", s.one("server", s.SERVER))
    assert admin_view["server"]["OS-EXT-SRV-ATTR:host"]
    paged = check(os_alpha, "/compute/v2.1/servers", s.SERVERS, limit=1)
    assert "servers_links" not in paged  # one server: nothing follows
    check(os_alpha, f"/compute/v2.1/servers/{sid}/metadata", s.obj(metadata=s.anymap(s.S)))
    check(os_alpha, "/compute/v2.1/flavors", s.FLAVORS)
    check(os_alpha, "/compute/v2.1/flavors/detail", s.FLAVORS_DETAIL)
    check(os_alpha, "/compute/v2.1/flavors/1", s.one("flavor", s.FLAVOR))
    check(os_alpha, "/compute/v2.1/flavors/1/os-extra_specs",
          s.obj(extra_specs=s.anymap(s.S)))
    check(os_alpha, "/compute/v2.1/os-keypairs", s.KEYPAIRS)
    check(os_alpha, f"/compute/v2.1/os-keypairs/{world.keypair}", s.KEYPAIR)
    check(os_alpha, "/compute/v2.1/os-server-groups", s.SERVER_GROUPS)
    group = check(os_alpha, f"/compute/v2.1/os-server-groups/{world.server_group['id']}",
                  s.one("server_group", s.SERVER_GROUP))
    assert group["server_group"]["members"] == [sid]
    check(os_alpha, "/compute/v2.1/os-availability-zone", s.ZONES)
    check(os_admin, "/compute/v2.1/os-availability-zone/detail", s.ZONES)
    check(os_alpha, "/compute/v2.1/limits", s.LIMITS)
    project = world.server["tenant_id"]
    check(os_alpha, f"/compute/v2.1/os-quota-sets/{project}", s.QUOTA_SET)
    check(os_alpha, f"/compute/v2.1/os-quota-sets/{project}/detail", s.QUOTA_DETAIL)
    check(os_alpha, f"/compute/v2.1/os-quota-sets/{project}/defaults", s.QUOTA_SET)
    check(os_admin, "/compute/v2.1/os-hypervisors", s.HYPERVISORS)
    detail = check(os_admin, "/compute/v2.1/os-hypervisors/detail", s.HYPERVISORS_DETAIL)
    first = detail["hypervisors"][0]["id"]
    check(os_admin, f"/compute/v2.1/os-hypervisors/{first}", s.one("hypervisor", s.HYPERVISOR))
    check(os_admin, "/compute/v2.1/os-hypervisors/statistics", s.STATISTICS)
    check(os_admin, "/compute/v2.1/os-services", s.SERVICES)
    check(os_admin, "/compute/v2.1/os-simple-tenant-usage", s.USAGES, detailed="1")
    usage = check(os_alpha, f"/compute/v2.1/os-simple-tenant-usage/{project}",
                  s.one("tenant_usage", s.TENANT_USAGE))
    assert [u["instance_id"] for u in usage["tenant_usage"]["server_usages"]] == [sid]
    created = os_alpha.post("/compute/v2.1/servers", {"server": {
        "name": "shape", "imageRef": world.image["id"], "flavorRef": "1",
        "networks": [{"uuid": world.network["id"]}]}})
    assert created.status == 202
    jsonschema.validate(created.body, s.SERVER_CREATED)
    assert created.headers["Location"].endswith(created.body["server"]["id"])
    kp = os_alpha.post("/compute/v2.1/os-keypairs", {"keypair": {"name": "shape-key"}})
    jsonschema.validate(kp.body, s.KEYPAIR_CREATED)


def test_image_network_and_identity_answers_match_their_references(
        world: World, os_alpha: Api, os_admin: Api) -> None:
    check(os_alpha, "/image/v2/images", s.IMAGES)
    image = check(os_alpha, f"/image/v2/images/{world.image['id']}", s.IMAGE)
    assert image["status"] == "active" and image["os_hash_algo"] == "sha256"
    check(os_alpha, "/network/v2.0/networks", s.many("networks", s.NETWORK))
    check(os_alpha, f"/network/v2.0/networks/{world.network['id']}", s.one("network", s.NETWORK))
    check(os_alpha, "/network/v2.0/subnets", s.many("subnets", s.SUBNET))
    check(os_alpha, f"/network/v2.0/subnets/{world.subnet['id']}", s.one("subnet", s.SUBNET))
    ports = check(os_alpha, "/network/v2.0/ports", s.many("ports", s.PORT))
    assert len(ports["ports"]) == 2  # the free one and the server's
    check(os_alpha, f"/network/v2.0/ports/{world.port['id']}", s.one("port", s.PORT))
    groups = check(os_alpha, "/network/v2.0/security-groups",
                   s.many("security_groups", s.SECURITY_GROUP))
    assert {g["name"] for g in groups["security_groups"]} == {"default", "w-sg"}
    check(os_alpha, f"/network/v2.0/security-groups/{world.group['id']}",
          s.one("security_group", s.SECURITY_GROUP))
    check(os_alpha, "/network/v2.0/security-group-rules",
          s.many("security_group_rules", s.RULE))
    check(os_alpha, f"/network/v2.0/security-group-rules/{world.rule['id']}",
          s.one("security_group_rule", s.RULE))
    check(os_alpha, f"/network/v2.0/quotas/{world.network['project_id']}", s.NETWORK_QUOTA)

    token = os_alpha.session.headers["X-Auth-Token"]
    r = os_alpha.raw("GET", "/identity/v3/auth/tokens", headers={"X-Subject-Token": token})
    jsonschema.validate(r.body, s.TOKEN)
    check(os_admin, "/identity/v3/projects", s.collection("projects", s.PROJECT))
    check(os_admin, "/identity/v3/users", s.collection("users", s.USER))
    check(os_admin, "/identity/v3/roles", s.collection("roles", s.ROLE))
    check(os_admin, "/identity/v3/domains", s.collection("domains", s.DOMAIN))
    check(os_admin, "/identity/v3/domains/default", s.one("domain", s.DOMAIN))
    check(os_admin, "/identity/v3/role_assignments",
          s.collection("role_assignments", s.ASSIGNMENT))
