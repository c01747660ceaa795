"""openstacksdk end to end, unchanged, against an ``ironbark up`` subprocess: it connects
from the clouds.yaml entry ``ironbark up`` wrote and walks a tenant's day."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openstack
import pytest
from openstack.connection import Connection

from ironbark import demo_image
from tests.e2e.conftest import Cloud

pytestmark = pytest.mark.e2e

WAIT = 60


@pytest.fixture
def conn(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    for key, value in cloud.env.items():
        if key.startswith("OS_") or key == "HOME":
            monkeypatch.setenv(key, value)
    connection = openstack.connect(cloud="ironbark")
    yield connection
    connection.close()


def test_a_tenants_day_with_openstacksdk(conn: Connection, cloud: Cloud, tmp_path: Path) -> None:
    written = cloud.env["OS_CLIENT_CONFIG_FILE"]
    printed = cloud.stdout.read_text()
    assert Path(written).exists() and f"written to {written}" in printed
    assert "user 'admin', password '" in printed  # the first admin, printed at set-up
    flavor = conn.compute.create_flavor(name="sdk.small", ram=256, vcpus=1, disk=1)
    assert conn.compute.get_flavor(flavor.id).ram == 256

    raw = tmp_path / "disk.raw"
    raw.write_bytes(demo_image.build())
    image = conn.image.create_image(name="sdk-image", filename=str(raw), disk_format="raw",
                                    container_format="bare", wait=True)
    image = conn.image.get_image(image.id)
    assert image.status == "active" and image.size == raw.stat().st_size
    assert image.hash_algo == "sha256" and len(image.hash_value) == 64 and image.checksum

    network = conn.network.create_network(name="sdk-net")
    subnet = conn.network.create_subnet(network_id=network.id, ip_version=4,
                                        cidr="192.168.77.0/24", name="sdk-subnet")
    assert subnet.gateway_ip == "192.168.77.1"
    key = conn.compute.create_keypair(name="sdk-key")
    assert key.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")

    server = conn.create_server("sdk-vm", image=image.id, flavor=flavor.id,
                                network=network.id, key_name="sdk-key", wait=True,
                                timeout=WAIT, auto_ip=False)
    assert server.status == "ACTIVE" and server.key_name == "sdk-key"
    assert server.private_v4.startswith("192.168.77.")
    assert server.id in [s.id for s in conn.compute.servers()]
    shown = conn.compute.get_server(server.id)
    assert shown.flavor.id == flavor.id and shown.image.id == image.id
    assert shown.hypervisor_hostname  # the admin sees where it runs
    ports = list(conn.network.ports(device_id=server.id))
    assert [p.fixed_ips[0]["ip_address"] for p in ports] == [server.private_v4]

    for act, settled in ((conn.compute.stop_server, "SHUTOFF"),
                         (conn.compute.start_server, "ACTIVE"),
                         (lambda s: conn.compute.reboot_server(s, "SOFT"), "ACTIVE"),
                         (conn.compute.pause_server, "PAUSED"),
                         (conn.compute.unpause_server, "ACTIVE"),
                         (conn.compute.suspend_server, "SUSPENDED"),
                         (conn.compute.resume_server, "ACTIVE")):
        act(shown)
        # wait_for_server trusts the status of the object it is given: fetch it anew.
        shown = conn.compute.wait_for_server(conn.compute.get_server(shown.id),
                                             status=settled, wait=WAIT)
    output = conn.compute.get_server_console_output(shown)["output"]
    assert isinstance(output, str)

    snapshot = conn.compute.create_server_image(shown, "sdk-snap", wait=True, timeout=WAIT)
    assert conn.image.get_image(snapshot.id).status == "active"
    from_snapshot = conn.compute.create_server(name="sdk-vm2", image_id=snapshot.id,
                                               flavor_id=flavor.id,
                                               networks=[{"uuid": network.id}])
    from_snapshot = conn.compute.wait_for_server(from_snapshot, wait=WAIT)
    assert from_snapshot.status == "ACTIVE"

    for each in (shown, from_snapshot):
        conn.delete_server(each.id)
        conn.compute.wait_for_delete(each, wait=WAIT)
    assert list(conn.network.ports(network_id=network.id)) == []
    conn.network.delete_network(network)
    conn.image.delete_image(snapshot)
    conn.image.delete_image(image)
    conn.compute.delete_flavor(flavor)
