"""Compute v2.1 behaviour beyond the shapes: quotas enforced atomically, list filters
and pagination, metadata, actions in a wrong state, flavors and extra specs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ironbark.allinone import AllInOne
from tests.helpers import Api
from tests.identity import project_id
from tests.integration.openstack.world import wait_active

DEMO = "demo"


def _create(api: Api, name: str, **extra: object) -> tuple[int, dict]:
    image = api.get("/image/v2/images", name=DEMO).body["images"][0]["id"]
    r = api.post("/compute/v2.1/servers", {"server": {
        "name": name, "imageRef": image, "flavorRef": "1", **extra}})
    return r.status, r.body


def test_quotas_hold_under_concurrent_creates(cloud: AllInOne, os_admin: Api,
                                              os_alpha: Api) -> None:
    pid = project_id(cloud, "alpha")
    r = os_admin.put(f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {
        "instances": 5, "cores": 20, "ram": 51200}})
    assert r.status == 200 and r.body["quota_set"]["instances"] == 5
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda i: _create(os_alpha, f"q{i}"), range(12)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [202] * 5 + [403] * 7, statuses
    refused = next(body for status, body in results if status == 403)
    assert "Quota exceeded for instances" in refused["forbidden"]["message"]
    detail = os_alpha.get(f"/compute/v2.1/os-quota-sets/{pid}/detail").body["quota_set"]
    assert detail["instances"] == {"in_use": 5, "limit": 5, "reserved": 0}
    limits = os_alpha.get("/compute/v2.1/limits").body["limits"]["absolute"]
    assert (limits["totalInstancesUsed"], limits["maxTotalInstances"]) == (5, 5)
    # A limit under what is used is refused without force; the reset goes to defaults.
    assert os_admin.put(f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {
        "instances": 2}}).status == 400
    assert os_admin.put(f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {
        "instances": 2, "force": True}}).status == 200
    assert os_admin.delete(f"/compute/v2.1/os-quota-sets/{pid}").status == 202
    assert os_alpha.get(f"/compute/v2.1/os-quota-sets/{pid}").body["quota_set"][
        "instances"] == -1  # the tests' configured default


def test_cores_and_multi_create_count_against_quota(cloud: AllInOne, os_admin: Api,
                                                    os_alpha: Api) -> None:
    pid = project_id(cloud, "alpha")
    os_admin.put(f"/compute/v2.1/os-quota-sets/{pid}", {"quota_set": {"cores": 3}})
    status, body = _create(os_alpha, "many", min_count=4, max_count=4)
    assert status == 403 and "cores" in body["forbidden"]["message"]
    status, body = _create(os_alpha, "some", min_count=2, max_count=6)
    assert status == 202  # as Nova: fewer, as long as min_count fit
    names = sorted(s["name"] for s in os_alpha.get("/compute/v2.1/servers").body["servers"])
    assert names == ["some-1", "some-2", "some-3"]


def test_list_filters_and_pagination(cloud: AllInOne, os_alpha: Api, os_admin: Api) -> None:
    ids = [_create(os_alpha, f"page-{i}")[1]["server"]["id"] for i in range(5)]
    for server_id in ids:
        wait_active(os_alpha, server_id)
    first = os_alpha.get("/compute/v2.1/servers", limit=2).body
    assert [s["id"] for s in first["servers"]] == ids[::-1][:2]  # newest first
    follow = first["servers_links"][0]["href"].split("/compute", 1)[1]
    second = os_alpha.get("/compute" + follow).body
    assert [s["id"] for s in second["servers"]] == ids[::-1][2:4]
    assert os_alpha.get("/compute/v2.1/servers/detail", name="page-[13]").body["servers"][0][
        "name"] in ("page-1", "page-3")
    assert len(os_alpha.get("/compute/v2.1/servers/detail", name="^page-[13]$")
               .body["servers"]) == 2
    assert os_alpha.get("/compute/v2.1/servers", status="SHUTOFF").body["servers"] == []
    detail = os_admin.get("/compute/v2.1/servers/detail", all_tenants="1").body["servers"]
    host = detail[0]["OS-EXT-SRV-ATTR:host"]
    on_host = os_admin.get("/compute/v2.1/servers/detail", all_tenants="1", host=host).body
    assert {s["OS-EXT-SRV-ATTR:host"] for s in on_host["servers"]} == {host}
    assert os_admin.get("/compute/v2.1/servers").body["servers"] == []  # its own project


def test_metadata_rename_and_actions_in_a_wrong_state(os_alpha: Api) -> None:
    _, body = _create(os_alpha, "meta", metadata={"a": "1"})
    sid = body["server"]["id"]
    wait_active(os_alpha, sid)
    path = f"/compute/v2.1/servers/{sid}"
    assert os_alpha.post(f"{path}/metadata", {"metadata": {"b": "2"}}).body["metadata"] == {
        "a": "1", "b": "2"}
    assert os_alpha.put(f"{path}/metadata/c", {"meta": {"c": "3"}}).body == {"meta": {"c": "3"}}
    assert os_alpha.delete(f"{path}/metadata/a").status == 204
    assert os_alpha.put(f"{path}/metadata", {"metadata": {"z": "9"}}).body["metadata"] == {
        "z": "9"}
    renamed = os_alpha.put(path, {"server": {"name": "renamed"}})
    assert renamed.status == 200 and renamed.body["server"]["name"] == "renamed"
    r = os_alpha.post(f"{path}/action", {"unpause": None})
    assert r.status == 409 and r.body["conflictingRequest"]["code"] == 409
    assert os_alpha.post(f"{path}/action", {"reboot": {"type": "HARD"}}).status == 202
    assert wait_active(os_alpha, sid)["status"] == "ACTIVE"
    assert os_alpha.post(f"{path}/action", {"os-stop": None}).status == 202
    server = wait_active(os_alpha, sid, statuses=("SHUTOFF", "ERROR"))
    assert server["status"] == "SHUTOFF" and server["OS-EXT-STS:power_state"] == 4
    assert os_alpha.post(f"{path}/action", {"reboot": {"type": "SOFT"}}).status == 409
    assert os_alpha.delete(path).status == 204


def test_flavors_extra_specs_and_availability_zones(os_admin: Api, os_alpha: Api) -> None:
    r = os_admin.post("/compute/v2.1/flavors", {"flavor": {
        "name": "spec.small", "ram": 256, "vcpus": 1, "disk": 1, "id": "spec-1",
        "os-flavor-access:is_public": False}})
    assert r.status == 200 and r.body["flavor"]["os-flavor-access:is_public"] is False
    assert os_alpha.get("/compute/v2.1/flavors/spec-1").status == 404  # private
    assert os_admin.post("/compute/v2.1/flavors/spec-1/os-extra_specs", {"extra_specs": {
        "hw:cpu_policy": "shared"}}).status == 200
    assert os_admin.put("/compute/v2.1/flavors/spec-1/os-extra_specs/hw:cpu_policy", {
        "hw:cpu_policy": "dedicated"}).status == 200
    assert os_admin.get("/compute/v2.1/flavors/spec-1/os-extra_specs").body == {
        "extra_specs": {"hw:cpu_policy": "dedicated"}}
    assert os_admin.delete("/compute/v2.1/flavors/spec-1").status == 202
    zones = os_alpha.get("/compute/v2.1/os-availability-zone").body["availabilityZoneInfo"]
    assert [(z["zoneName"], z["zoneState"]["available"]) for z in zones] == [("default", True)]
    status, body = _create(os_alpha, "zoned", availability_zone="default")
    assert status == 202
    assert wait_active(os_alpha, body["server"]["id"])["OS-EXT-AZ:availability_zone"] \
        == "default"


def test_hypervisor_statistics_are_usage_next_to_capacity_times_ratio(
        os_admin: Api, admin: Api, os_alpha: Api) -> None:
    _create(os_alpha, "counted")
    hosts = admin.get("/v1/hosts").body["hosts"]
    stats = os_admin.get("/compute/v2.1/os-hypervisors/statistics").body[
        "hypervisor_statistics"]
    for key, resource in (("vcpus", "vcpus"), ("memory_mb", "memory_mb"),
                          ("local_gb", "disk_gb")):
        capacity = sum(h[resource]["capacity"] for h in hosts)
        assert capacity == sum(int((h[resource]["total"] - h[resource]["reserved"])
                                   * h[resource]["allocation_ratio"]) for h in hosts)
        assert stats[key] == capacity, key
    assert stats["vcpus_used"] == sum(h["vcpus"]["used"] for h in hosts) == 1
    assert stats["memory_mb_used"] == 512 and stats["count"] == len(hosts) == 2


def test_anti_affinity_from_the_scheduler_hint(os_alpha: Api, os_admin: Api) -> None:
    group = os_alpha.post("/compute/v2.1/os-server-groups", {"server_group": {
        "name": "apart", "policies": ["anti-affinity"]}}).body["server_group"]
    ids = []
    for name in ("a1", "a2"):
        image = os_alpha.get("/image/v2/images", name=DEMO).body["images"][0]["id"]
        r = os_alpha.post("/compute/v2.1/servers", {
            "server": {"name": name, "imageRef": image, "flavorRef": "1"},
            "os:scheduler_hints": {"group": group["id"]}})
        assert r.status == 202, r
        ids.append(r.body["server"]["id"])
    hosts = {wait_active(os_admin, i)["OS-EXT-SRV-ATTR:host"] for i in ids}
    assert len(hosts) == 2
    shown = os_alpha.get(f"/compute/v2.1/os-server-groups/{group['id']}").body
    assert sorted(shown["server_group"]["members"]) == sorted(ids)
