"""Network v2.0 behaviour: IPAM from pools (never one address twice, even when asked
at once), exhaustion, what a server gets and gives back, in-use rules, quotas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ironbark.allinone import AllInOne
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for
from tests.identity import member_token, project_id
from tests.integration.openstack.conftest import os_client
from tests.integration.openstack.world import wait_active


def _net(api: Api, cidr: str, **subnet: object) -> tuple[str, dict]:
    net = api.post("/network/v2.0/networks", {"network": {"name": f"n-{cidr}"}}).body
    r = api.post("/network/v2.0/subnets", {"subnet": {
        "network_id": net["network"]["id"], "cidr": cidr, "ip_version": 4, **subnet}})
    assert r.status == 201, r
    return net["network"]["id"], r.body["subnet"]


def _port(api: Api, network_id: str, **extra: object) -> tuple[int, dict]:
    r = api.post("/network/v2.0/ports", {"port": {"network_id": network_id, **extra}})
    return r.status, r.body


def test_pools_gateway_and_exhaustion(os_alpha: Api) -> None:
    net, subnet = _net(os_alpha, "10.20.0.0/29",
                       allocation_pools=[{"start": "10.20.0.3", "end": "10.20.0.5"}])
    assert subnet["gateway_ip"] == "10.20.0.1"
    got = [_port(os_alpha, net)[1]["port"]["fixed_ips"][0]["ip_address"] for _ in range(3)]
    assert got == ["10.20.0.3", "10.20.0.4", "10.20.0.5"]
    status, body = _port(os_alpha, net)
    assert status == 409 and "No more IP addresses" in body["NeutronError"]["message"]
    ports = os_alpha.get("/network/v2.0/ports", network_id=net).body["ports"]
    assert len(ports) == 3  # the refused one left nothing
    os_alpha.delete(f"/network/v2.0/ports/{ports[1]['id']}")
    assert _port(os_alpha, net)[1]["port"]["fixed_ips"][0]["ip_address"] == "10.20.0.4"
    default = _net(os_alpha, "10.21.0.0/24")[1]
    assert default["allocation_pools"] == [{"start": "10.21.0.2", "end": "10.21.0.254"}]


@pytest.mark.postgres
def test_concurrent_allocations_never_share_an_address(make_cloud: CloudFactory,
                                                       postgres_url: str) -> None:
    cloud = make_cloud(database={"url": postgres_url})
    api = os_client(cloud, member_token(cloud, "alpha"))
    net, _ = _net(api, "10.30.0.0/27")
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: _port(api, net), range(40)))
    made = [body["port"]["fixed_ips"][0]["ip_address"] for status, body in results
            if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(made) == 29 and len(set(made)) == 29  # .2 .. .30: each once
    assert all("No more IP addresses" in b["NeutronError"]["message"] for b in refused)


def test_a_server_gets_an_address_and_gives_it_back(cloud: AllInOne, os_alpha: Api) -> None:
    net, _ = _net(os_alpha, "10.40.0.0/24")
    image = os_alpha.get("/image/v2/images", name="demo").body["images"][0]["id"]
    status, port = _port(os_alpha, net, fixed_ips=[{"ip_address": "10.40.0.77"}])
    assert status == 201
    r = os_alpha.post("/compute/v2.1/servers", {"server": {
        "name": "two-nics", "imageRef": image, "flavorRef": "1",
        "networks": [{"uuid": net, "fixed_ip": "10.40.0.50"}, {"port": port["port"]["id"]}]}})
    assert r.status == 202, r
    server = wait_active(os_alpha, r.body["server"]["id"])
    assert sorted(a["addr"] for a in server["addresses"]["n-10.40.0.0/24"]) == [
        "10.40.0.50", "10.40.0.77"]
    mine = os_alpha.get("/network/v2.0/ports", device_id=server["id"]).body["ports"]
    assert len(mine) == 2 and all(p["status"] == "ACTIVE" for p in mine)
    assert os_alpha.delete(f"/network/v2.0/networks/{net}").status == 409
    assert os_alpha.delete(f"/compute/v2.1/servers/{server['id']}").status == 204
    wait_for(lambda: os_alpha.get(f"/compute/v2.1/servers/{server['id']}").status == 404,
             20, "the server to go")
    left = os_alpha.get("/network/v2.0/ports", network_id=net).body["ports"]
    # The port made for the server is gone; the one given to it is free again.
    assert [(p["id"], p["device_id"]) for p in left] == [(port["port"]["id"], "")]


def test_no_networks_means_the_only_one_and_two_mean_choose(os_alpha: Api) -> None:
    image = os_alpha.get("/image/v2/images", name="demo").body["images"][0]["id"]
    server = {"name": "auto", "imageRef": image, "flavorRef": "1"}
    none = os_alpha.post("/compute/v2.1/servers", {"server": server})
    assert none.status == 202  # no network at all: a server without ports
    _net(os_alpha, "10.50.0.0/24")
    one = os_alpha.post("/compute/v2.1/servers", {"server": server}).body["server"]["id"]
    assert list(wait_active(os_alpha, one)["addresses"]) == ["n-10.50.0.0/24"]
    _net(os_alpha, "10.51.0.0/24")
    two = os_alpha.post("/compute/v2.1/servers", {"server": server})
    assert two.status == 409 and "Multiple possible networks" in two.body[
        "conflictingRequest"]["message"]


def test_security_groups_default_and_quotas(cloud: AllInOne, os_alpha: Api,
                                            os_admin: Api) -> None:
    groups = os_alpha.get("/network/v2.0/security-groups").body["security_groups"]
    [default] = groups
    assert default["name"] == "default" and len(default["security_group_rules"]) == 4
    ingress = [r for r in default["security_group_rules"] if r["direction"] == "ingress"]
    assert {r["remote_group_id"] for r in ingress} == {default["id"]}
    pid = project_id(cloud, "alpha")
    assert os_admin.put(f"/network/v2.0/quotas/{pid}", {"quota": {"network": 1}}).status == 200
    assert os_alpha.post("/network/v2.0/networks", {"network": {"name": "a"}}).status == 201
    r = os_alpha.post("/network/v2.0/networks", {"network": {"name": "b"}})
    assert r.status == 403 and "network" in r.body["NeutronError"]["message"]
    details = os_alpha.get(f"/network/v2.0/quotas/{pid}/details.json").body["quota"]
    assert details["network"] == {"limit": 1, "used": 1, "reserved": 0}
    # Each API resets its own quotas: the compute reset leaves the network's alone.
    assert os_admin.delete(f"/compute/v2.1/os-quota-sets/{pid}").status == 202
    assert os_alpha.get(f"/network/v2.0/quotas/{pid}").body["quota"]["network"] == 1
    assert os_admin.delete(f"/network/v2.0/quotas/{pid}").status == 204
    assert os_alpha.get(f"/network/v2.0/quotas/{pid}").body["quota"]["network"] == 100
