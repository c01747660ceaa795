"""Placement through the whole cloud: overcommit limits, policies, refusals, races.

Capacity is checked three ways: the API's view of each host, the sum of the servers
the API shows ACTIVE, and libvirt's own count of the domains on each host.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor

from ironbark.allinone import AllInOne
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for


def _flavor(api: Api, name: str, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    r = api.post("/v1/flavors", {"name": name, "vcpus": vcpus, "memory_mb": memory_mb,
                                 "disk_gb": disk_gb})
    assert r.status == 201, r


def _domains_per_host(cloud: AllInOne) -> dict[str, int]:
    """libvirt's own view: running domains on each simulated host."""
    return {im.ctx.name: len(im.ctx.driver.inventory().instances)
            for im in cloud.instance_managers}


def _hosts(api: Api) -> dict[str, dict]:
    return {h["name"]: h for h in api.get("/v1/hosts").body["hosts"]}


def test_1000_concurrent_creates_fill_capacity_exactly(make_cloud: CloudFactory) -> None:
    # 4 hosts x 1 vCPU x ratio 16 = 64 one-vCPU servers; RAM and disk are ample.
    cloud = make_cloud(hosts=4, host={"simulated_vcpus": 1, "simulated_memory_mb": 65536})
    api = Api(cloud.api_url, cloud.admin_token)
    _flavor(api, "one", 1, 256, 1)

    def create(i: int) -> str:
        return api.create(f"vm{i}", "one")["id"]

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(create, range(1000)))
    servers = [api.wait(i, timeout=120) for i in ids]

    by_status = collections.Counter(s["status"] for s in servers)
    assert by_status == {"ACTIVE": 64, "ERROR": 936}, by_status
    for s in servers:
        if s["status"] == "ERROR":
            assert "not enough vCPUs (need 1 vCPU, largest free 0 vCPU)" in \
                s["fault"]["message"], s["fault"]
    hosts = _hosts(api)
    for host in hosts.values():
        assert host["vcpus"]["used"] == host["vcpus"]["capacity"] == 16
        assert host["instances"] == 16
    active_per_host = collections.Counter(s["host"] for s in servers if s["status"] == "ACTIVE")
    assert active_per_host == {name: 16 for name in hosts}
    assert _domains_per_host(cloud) == {name: 16 for name in hosts}


def test_cpu_overcommit_16_fits_64_on_4_vcpus_and_not_65(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1, host={"simulated_vcpus": 4, "simulated_memory_mb": 65536})
    api = Api(cloud.api_url, cloud.admin_token)
    _flavor(api, "cpu1", 1, 64, 0)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: api.create(f"c{i}", "cpu1")["id"], range(64)))
    assert all(api.wait(i)["status"] == "ACTIVE" for i in ids)
    extra = api.boot("c64", "cpu1")
    assert extra["status"] == "ERROR"
    assert "1 host: not enough vCPUs (need 1 vCPU, largest free 0 vCPU)" in \
        extra["fault"]["message"]
    host = _hosts(api)["host1"]["vcpus"]
    assert (host["total"], host["allocation_ratio"], host["capacity"], host["used"]) == \
        (4, 16.0, 64, 64)


def test_ram_overcommit_1_5(make_cloud: CloudFactory) -> None:
    # (4096 - 0 reserved) x 1.5 = 6144 MiB: six 1024 MiB servers, not seven.
    cloud = make_cloud(hosts=1, host={"simulated_vcpus": 16, "simulated_memory_mb": 4096,
                                      "reserved_memory_mb": 0})
    api = Api(cloud.api_url, cloud.admin_token)
    _flavor(api, "ram1g", 1, 1024, 0)
    assert [api.boot(f"r{i}", "ram1g")["status"] for i in range(6)] == ["ACTIVE"] * 6
    seventh = api.boot("r6", "ram1g")
    assert seventh["status"] == "ERROR"
    assert "not enough RAM (need 1024 MiB, largest free 0 MiB)" in seventh["fault"]["message"]
    ram = _hosts(api)["host1"]["memory_mb"]
    assert (ram["capacity"], ram["used"], ram["free"]) == (6144, 6144, 0)


def test_reserved_memory_comes_off_before_the_ratio(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1, host={"simulated_memory_mb": 4096, "reserved_memory_mb": 1024})
    api = Api(cloud.api_url, cloud.admin_token)
    ram = _hosts(api)["host1"]["memory_mb"]
    assert (ram["total"], ram["reserved"], ram["capacity"]) == (4096, 1024, 4608)


def test_ratios_per_group_and_per_host(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=2, host={"simulated_vcpus": 4},
                       group={"cpu_allocation_ratio": 2.0,
                              "host_overrides": {"host2": {"cpu_allocation_ratio": 8.0,
                                                           "disk_allocation_ratio": 0.5}}})
    hosts = _hosts(Api(cloud.api_url, cloud.admin_token))
    assert hosts["host1"]["vcpus"]["capacity"] == 8
    assert hosts["host2"]["vcpus"]["capacity"] == 32
    assert hosts["host2"]["disk_gb"]["allocation_ratio"] == 0.5
    assert hosts["host1"]["memory_mb"]["allocation_ratio"] == 1.5


def test_spread_puts_each_server_on_the_least_loaded_host(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=3, group={"scheduler_policy": "spread"})
    api = Api(cloud.api_url, cloud.admin_token)
    hosts = [api.boot(f"s{i}")["host"] for i in range(6)]
    assert collections.Counter(hosts) == {"host1": 2, "host2": 2, "host3": 2}
    assert len(set(hosts[:3])) == 3  # the first three go to three different hosts


def test_pack_fills_one_host_before_the_next(make_cloud: CloudFactory) -> None:
    # Each host takes 4 vCPU x 1.0 = 4 one-vCPU servers.
    cloud = make_cloud(hosts=3, host={"simulated_vcpus": 4},
                       group={"scheduler_policy": "pack", "cpu_allocation_ratio": 1.0})
    api = Api(cloud.api_url, cloud.admin_token)
    hosts = [api.boot(f"p{i}")["host"] for i in range(6)]
    assert hosts[:4] == [hosts[0]] * 4
    assert hosts[4] == hosts[5] != hosts[0]
    assert len(set(hosts)) == 2  # the third host stays empty


def test_round_robin_rotates_whatever_the_load(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=3, group={"scheduler_policy": "round-robin"})
    api = Api(cloud.api_url, cloud.admin_token)
    first = api.boot("r0")
    assert first["host"] == "host1"
    assert api.delete(f"/v1/servers/{first['id']}").status == 202
    wait_for(lambda: api.get(f"/v1/servers/{first['id']}").status == 404, what="r0 gone")
    # Every host is empty again: spread would pick host1 again; round-robin moves on.
    hosts = [api.boot(f"r{i}")["host"] for i in range(1, 7)]
    assert hosts == ["host2", "host3", "host1", "host2", "host3", "host1"]


def test_power_save_fills_running_hosts_and_leaves_the_rest_empty(
        make_cloud: CloudFactory) -> None:
    # Each host takes 4 one-vCPU servers; host3 is twice as big.
    cloud = make_cloud(hosts=3, host={"simulated_vcpus": 4},
                       group={"scheduler_policy": "power-save", "cpu_allocation_ratio": 1.0,
                              "host_overrides": {"host3": {"cpu_allocation_ratio": 2.0}}})
    api = Api(cloud.api_url, cloud.admin_token)
    hosts = [api.boot(f"p{i}")["host"] for i in range(6)]
    assert hosts[:4] == ["host1"] * 4  # woken first (least free, then name), filled first
    assert hosts[4] == hosts[5] != "host1"  # one more host woken, and filled next
    listing = _hosts(api)
    assert sorted(h["instances"] for h in listing.values()) == [0, 2, 4]
    # The group reports how many hosts are empty (could be powered off).
    wait_for(lambda: api.get("/v1/groups").body["groups"][0]["hosts_empty"] == 1,
             what="the group summary to count one empty host")


def test_no_valid_host_names_every_reason(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=3, host={"simulated_vcpus": 2, "simulated_memory_mb": 2048,
                                      "reserved_memory_mb": 0},
                       group={"host_down_after": 1.0})
    api = Api(cloud.api_url, cloud.admin_token)
    cloud.instance_managers[2].stop()  # host3 stops reporting: it will be marked down
    wait_for(lambda: _hosts(api)["host3"]["state"] == "down", what="host3 down")
    _flavor(api, "big", 1, 4096, 0)
    server = api.boot("big", "big")
    assert server["status"] == "ERROR"
    message = server["fault"]["message"]
    assert message.startswith("No valid host in group 'default' for 1 vCPU, 4096 MiB RAM")
    assert "2 hosts: not enough RAM (need 4096 MiB, largest free 3072 MiB)" in message
    assert "1 host: down" in message


def test_a_down_host_gets_no_new_work(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=2, group={"host_down_after": 1.0})
    api = Api(cloud.api_url, cloud.admin_token)
    cloud.instance_managers[0].stop()
    wait_for(lambda: _hosts(api)["host1"]["state"] == "down", what="host1 down")
    assert {api.boot(f"d{i}")["host"] for i in range(4)} == {"host2"}
    cloud.instance_managers[0].start()  # reports resume: the host is up again
    wait_for(lambda: _hosts(api)["host1"]["state"] == "up", what="host1 up again")


def _anti_affinity_group(api: Api, name: str) -> str:
    r = api.post("/v1/server-groups", {"name": name, "policy": "anti-affinity"})
    assert r.status == 201, r
    return r.body["server_group"]["id"]


def _six_on_five(servers: list[dict], group_id: str) -> None:
    by_status = collections.Counter(s["status"] for s in servers)
    assert by_status == {"ACTIVE": 5, "ERROR": 1}, servers
    assert len({s["host"] for s in servers if s["status"] == "ACTIVE"}) == 5
    refused = next(s for s in servers if s["status"] == "ERROR")
    assert "already run a member of anti-affinity server group 'web'" in \
        refused["fault"]["message"] and group_id in refused["fault"]["message"], refused


def test_anti_affinity_group_of_6_on_5_hosts(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=5, group={"scheduler_policy": "pack"})  # pack would stack them
    api = Api(cloud.api_url, cloud.admin_token)
    group_id = _anti_affinity_group(api, "web")
    servers = [api.boot(f"web{i}", server_group="web") for i in range(6)]
    _six_on_five(servers, group_id)
    assert servers[5]["status"] == "ERROR"


def test_anti_affinity_group_of_6_on_5_hosts_created_concurrently(
        make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=5, group={"scheduler_policy": "pack"})
    api = Api(cloud.api_url, cloud.admin_token)
    group_id = _anti_affinity_group(api, "web")
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(lambda i: api.create(f"web{i}", server_group="web")["id"],
                            range(6)))
    _six_on_five([api.wait(i) for i in ids], group_id)
    assert _domains_per_host(cloud) == {f"host{i}": 1 for i in range(1, 6)}


def test_a_virtual_cluster_that_cannot_all_fit_apart_is_not_built_at_all(
        make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=5)
    api = Api(cloud.api_url, cloud.admin_token)
    _anti_affinity_group(api, "web")
    r = api.post("/v1/servers", {"name": "web", "flavor": "m1.tiny", "image": "demo",
                                 "server_group": "web", "min_count": 6, "max_count": 6})
    assert r.status == 202, r
    servers = [api.wait(s["id"]) for s in r.body["servers"]]
    assert {s["status"] for s in servers} == {"ERROR"}, servers
    assert "only 5 of the 6 servers" in servers[0]["fault"]["message"]
    assert all(h["instances"] == 0 for h in _hosts(api).values())
    assert _domains_per_host(cloud) == {f"host{i}": 0 for i in range(1, 6)}
