"""A small populated cloud the schema, isolation and bad-input tests share: project
alpha's network, subnet, port, security group and rule, key pair, server group,
image and an ACTIVE server on its network (made through the OpenStack APIs)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ironbark import demo_image
from tests.helpers import Api


@dataclass
class World:
    network: dict[str, Any]
    subnet: dict[str, Any]
    port: dict[str, Any]
    group: dict[str, Any]
    rule: dict[str, Any]
    keypair: str
    server_group: dict[str, Any]
    image: dict[str, Any]
    server: dict[str, Any]


def _ok(r: Any, status: int) -> Any:
    assert r.status == status, r
    return r.body


def wait_active(api: Api, server_id: str, timeout: float = 30,
                statuses: tuple[str, ...] = ("ACTIVE", "ERROR")) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        server = _ok(api.get(f"/compute/v2.1/servers/{server_id}"), 200)["server"]
        if server["status"] in statuses and server["OS-EXT-STS:task_state"] is None:
            return server
        assert time.monotonic() < deadline, server
        time.sleep(0.05)


def build(api: Api) -> World:
    net = _ok(api.post("/network/v2.0/networks", {"network": {"name": "w-net"}}),
              201)["network"]
    subnet = _ok(api.post("/network/v2.0/subnets", {"subnet": {
        "network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4, "name": "w-sub"}}),
        201)["subnet"]
    port = _ok(api.post("/network/v2.0/ports", {"port": {"network_id": net["id"],
                                                         "name": "w-port"}}), 201)["port"]
    group = _ok(api.post("/network/v2.0/security-groups", {"security_group": {
        "name": "w-sg"}}), 201)["security_group"]
    rule = _ok(api.post("/network/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}}),
        201)["security_group_rule"]
    _ok(api.post("/compute/v2.1/os-keypairs", {"keypair": {"name": "w-key"}}), 200)
    server_group = _ok(api.post("/compute/v2.1/os-server-groups", {"server_group": {
        "name": "w-sg", "policies": ["anti-affinity"]}}), 200)["server_group"]
    image = _ok(api.post("/image/v2/images", {"name": "w-image", "disk_format": "raw",
                                             "container_format": "bare"}), 201)
    assert api.raw("PUT", f"/image/v2/images/{image['id']}/file", data=demo_image.build(),
                   headers={"Content-Type": "application/octet-stream"}).status == 204
    created = _ok(api.post("/compute/v2.1/servers", {
        "server": {"name": "w-vm", "imageRef": image["id"], "flavorRef": "1",
                   "networks": [{"uuid": net["id"]}], "key_name": "w-key",
                   "metadata": {"role": "web"}},
        "os:scheduler_hints": {"group": server_group["id"]}}), 202)["server"]
    server = wait_active(api, created["id"])
    assert server["status"] == "ACTIVE", server
    image = _ok(api.get(f"/image/v2/images/{image['id']}"), 200)
    return World(net, subnet, port, group, rule, "w-key", server_group, image, server)
