"""The shortest path through every tier: boot, act, delete."""

from tests.helpers import Api


def test_boot_pause_and_delete(admin: Api) -> None:
    server = admin.boot("vm1", "m1.small")
    assert server["status"] == "ACTIVE" and server["power_state"] == "running"
    assert server["host"] in ("host1", "host2")
    assert admin.act(server["id"], "pause").status == 202
    assert admin.wait(server["id"])["status"] == "PAUSED"
    assert admin.delete(f"/v1/servers/{server['id']}").status == 202
    admin.wait_gone(server["id"])
